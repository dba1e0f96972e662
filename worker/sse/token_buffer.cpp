#include "sse/token_buffer.hpp"

#include "json/utf8.hpp"

namespace chatstream::sse {

std::string_view TokenBuffer::ready(bool final) const {
  std::string_view all = text_;
  return final ? all : all.substr(0, json::complete_utf8_prefix(all));
}

void TokenBuffer::add(std::string_view text) {
  if (text.empty()) return;
  text_.append(text);
  ++tokens_;
  if (recent_count_ == kRecent) {
    for (size_t i = 1; i < kRecent; ++i) recent_ends_[i - 1] = recent_ends_[i];
    --recent_count_;
  }
  recent_ends_[recent_count_++] = text_.size();
}

uint64_t TokenBuffer::take(size_t length) {
  text_.erase(0, length);
  // Deltas that end beyond the taken piece stay pending; every other one is completed by it.
  size_t kept = 0;
  for (size_t i = 0; i < recent_count_; ++i) {
    if (recent_ends_[i] > length) recent_ends_[kept++] = recent_ends_[i] - length;
  }
  recent_count_ = kept;
  uint64_t completed = tokens_ - kept;
  tokens_ = kept;
  if (text_.empty() && text_.capacity() > 4096) std::string().swap(text_);  // give back a burst's memory
  return completed;
}

}  // namespace chatstream::sse
