#include "sse/token_buffer.hpp"

#include "json/utf8.hpp"

namespace chatstream::sse {

std::string_view TokenBuffer::ready(bool final) const {
  std::string_view all = text_;
  return final ? all : all.substr(0, json::complete_utf8_prefix(all));
}

uint64_t TokenBuffer::take(size_t length) {
  text_.erase(0, length);
  uint64_t completed = tokens_;
  if (text_.empty()) {
    tokens_ = 0;
    // Keep a small buffer for the next tokens, give back what a burst made large.
    if (text_.capacity() > 4096) std::string().swap(text_);
  } else if (tokens_ > 0) {
    completed = tokens_ - 1;
    tokens_ = 1;
  }
  return completed;
}

}  // namespace chatstream::sse
