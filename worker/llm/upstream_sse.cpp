#include "llm/upstream_sse.hpp"

namespace chatstream::llm {

void UpstreamSseParser::reset() {
  line_.clear();
  data_.clear();
  has_data_ = false;
  after_cr_ = false;
}

bool UpstreamSseParser::feed(std::string_view bytes, const std::function<bool(std::string_view)>& on_data) {
  for (char c : bytes) {
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') continue;  // the LF of a CRLF pair
    }
    if (c == '\r' || c == '\n') {
      after_cr_ = c == '\r';
      if (!end_line(on_data)) return false;
      continue;
    }
    line_.push_back(c);
    if (line_.size() + data_.size() > max_event_bytes_) return false;
  }
  return true;
}

bool UpstreamSseParser::end_line(const std::function<bool(std::string_view)>& on_data) {
  if (line_.empty()) {  // blank line: dispatch
    bool keep_going = true;
    if (has_data_) keep_going = on_data(data_);
    data_.clear();
    has_data_ = false;
    return keep_going;
  }
  std::string_view line = line_;
  if (line.front() != ':') {  // comments are skipped
    size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      if (has_data_) data_.push_back('\n');
      data_.append(value);
      has_data_ = true;
    }
    // event:, id:, retry: carry nothing an OpenAI-compatible stream needs.
  }
  line_.clear();
  return true;
}

}  // namespace chatstream::llm
