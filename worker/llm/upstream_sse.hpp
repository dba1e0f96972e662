#pragma once
// Incremental parser of Server-Sent Events as a client reads them (an OpenAI-compatible upstream's
// stream here; bench/sseload reads chatstream's own streams with it): bytes arrive in arbitrary
// pieces (a line, a CRLF pair or a UTF-8 character may be split across reads); lines end with LF,
// CRLF or CR; comment lines (":") are reported but carry nothing; several "data:" lines of one event
// are joined with "\n"; an event is dispatched at its blank line if it has data (the "event:" and
// "id:" fields seen since the last dispatch go with it, then are forgotten; "retry:" and unknown
// fields are ignored). Bounded: an event larger than `max_event_bytes` is an error.

#include <functional>
#include <string>
#include <string_view>

namespace chatstream::llm {

// One dispatched event; the views are valid during the call only.
struct SseEvent {
  std::string_view data;
  std::string_view type;  // the "event:" field, empty when absent
  std::string_view id;    // the "id:" field (may be empty even when has_id)
  bool has_id = false;
};

class UpstreamSseParser {
 public:
  class Sink {
   public:
    // Returning false stops the current feed() at once.
    virtual bool on_event(const SseEvent& event) = 0;
    virtual void on_comment() {}

   protected:
    ~Sink() = default;
  };

  explicit UpstreamSseParser(size_t max_event_bytes = 4 << 20) : max_event_bytes_(max_event_bytes) {}

  // Returns false when the input broke the bound or the sink asked to stop.
  bool feed(std::string_view bytes, Sink& sink);
  // The same for a reader that needs only the data: on_data(data) per event.
  bool feed(std::string_view bytes, const std::function<bool(std::string_view data)>& on_data);
  // Forgets a partial event and line (a new response on the same parser); keeps buffer capacity.
  void reset();

 private:
  bool end_line(std::string_view line, Sink& sink);

  size_t max_event_bytes_;
  std::string line_;  // the start of a line whose end has not arrived yet
  std::string data_;
  std::string type_;
  std::string id_;
  bool has_data_ = false;
  bool has_id_ = false;
  bool after_cr_ = false;  // the last byte was a CR: a LF right after it ends no second line
};

}  // namespace chatstream::llm
