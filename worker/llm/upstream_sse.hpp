#pragma once
// Incremental parser of an upstream's Server-Sent Events: bytes arrive in arbitrary pieces (a line,
// a CRLF pair or a UTF-8 character may be split across reads); lines end with LF, CRLF or CR;
// comment lines (":") are skipped; several "data:" lines of one event are joined with "\n"; an event
// is dispatched at its blank line. Bounded: an event larger than `max_event_bytes` is an error.

#include <functional>
#include <string>
#include <string_view>

namespace chatstream::llm {

class UpstreamSseParser {
 public:
  explicit UpstreamSseParser(size_t max_event_bytes = 4 << 20) : max_event_bytes_(max_event_bytes) {}

  // Calls on_data(data) for each complete event that has data. Returns false when the input broke a
  // bound or on_data returned false (stop).
  bool feed(std::string_view bytes, const std::function<bool(std::string_view data)>& on_data);
  void reset();

 private:
  bool end_line(const std::function<bool(std::string_view)>& on_data);

  size_t max_event_bytes_;
  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool after_cr_ = false;
};

}  // namespace chatstream::llm
