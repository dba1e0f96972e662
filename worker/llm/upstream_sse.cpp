#include "llm/upstream_sse.hpp"

namespace chatstream::llm {

namespace {
// Adapts a data-only callback to the Sink interface.
class DataSink final : public UpstreamSseParser::Sink {
 public:
  explicit DataSink(const std::function<bool(std::string_view)>& on_data) : on_data_(on_data) {}
  bool on_event(const SseEvent& event) override { return on_data_(event.data); }

 private:
  const std::function<bool(std::string_view)>& on_data_;
};
}  // namespace

void UpstreamSseParser::reset() {
  line_.clear();
  data_.clear();
  type_.clear();
  id_.clear();
  has_data_ = false;
  has_id_ = false;
  after_cr_ = false;
}

bool UpstreamSseParser::feed(std::string_view bytes, const std::function<bool(std::string_view)>& on_data) {
  DataSink sink(on_data);
  return feed(bytes, sink);
}

bool UpstreamSseParser::feed(std::string_view bytes, Sink& sink) {
  size_t pos = 0;
  if (after_cr_ && !bytes.empty()) {
    after_cr_ = false;
    if (bytes.front() == '\n') pos = 1;  // the LF of a CRLF pair cut between two reads
  }
  while (pos < bytes.size()) {
    // Whole lines are parsed in place; only a line cut by the end of the input is copied.
    size_t end = bytes.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(pos));
      return line_.size() + data_.size() <= max_event_bytes_;
    }
    std::string_view line = bytes.substr(pos, end - pos);
    if (!line_.empty()) {
      line_.append(line);
      line = line_;
    }
    if (line.size() + data_.size() > max_event_bytes_) return false;
    bool keep_going = end_line(line, sink);
    line_.clear();
    if (!keep_going) return false;
    if (bytes[end] == '\r') {
      if (end + 1 == bytes.size()) after_cr_ = true;
      else if (bytes[end + 1] == '\n') ++end;
    }
    pos = end + 1;
  }
  return true;
}

bool UpstreamSseParser::end_line(std::string_view line, Sink& sink) {
  if (line.empty()) {  // blank line: dispatch
    bool keep_going = true;
    if (has_data_) keep_going = sink.on_event(SseEvent{data_, type_, id_, has_id_});
    data_.clear();
    type_.clear();
    id_.clear();
    has_data_ = false;
    has_id_ = false;
    return keep_going;
  }
  if (line.front() == ':') {
    sink.on_comment();
    return true;
  }
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  } else if (field == "event") {
    type_.assign(value);
  } else if (field == "id") {
    id_.assign(value);
    has_id_ = true;
  }
  return true;
}

}  // namespace chatstream::llm
