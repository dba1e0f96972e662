#include "sse_parser.hpp"

namespace chatstream::bench {

EventType classify_event_type(std::string_view name) {
  if (name == "token") return EventType::kToken;
  if (name == "meta") return EventType::kMeta;
  if (name == "generation_start") return EventType::kGenerationStart;
  if (name == "done") return EventType::kDone;
  if (name == "error") return EventType::kError;
  if (name == "cancelled") return EventType::kCancelled;
  return EventType::kOther;
}

void SseParser::reset() {
  partial_line_.clear();
  data_.clear();
  id_.clear();
  type_ = EventType::kOther;
  has_data_ = false;
  has_id_ = false;
  skip_next_lf_ = false;
}

bool SseParser::feed(std::string_view input, Sink& sink) {
  size_t pos = 0;
  if (skip_next_lf_ && !input.empty()) {
    skip_next_lf_ = false;
    if (input.front() == '\n') pos = 1;
  }
  while (pos < input.size()) {
    size_t end = pos;
    while (end < input.size() && input[end] != '\n' && input[end] != '\r') ++end;
    if (end == input.size()) {
      partial_line_.append(input.substr(pos));
      return true;
    }
    bool keep_going;
    if (partial_line_.empty()) {
      keep_going = process_line(input.substr(pos, end - pos), sink);
    } else {
      partial_line_.append(input.substr(pos, end - pos));
      keep_going = process_line(partial_line_, sink);
      partial_line_.clear();
    }
    if (!keep_going) return false;
    if (input[end] == '\r') {
      if (end + 1 == input.size()) {
        skip_next_lf_ = true;
      } else if (input[end + 1] == '\n') {
        ++end;
      }
    }
    pos = end + 1;
  }
  return true;
}

bool SseParser::process_line(std::string_view line, Sink& sink) {
  if (line.empty()) {
    // Dispatch. An event without any data line is dropped, as in the spec (e.g. a lone "retry:").
    bool keep_going = true;
    if (has_data_) {
      SseEvent event{type_, has_id_, id_, data_};
      keep_going = sink.on_event(event);
    }
    data_.clear();
    id_.clear();
    type_ = EventType::kOther;
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
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  } else if (field == "event") {
    type_ = classify_event_type(value);
  } else if (field == "id") {
    id_.assign(value);
    has_id_ = true;
  }
  return true;
}

}  // namespace chatstream::bench
