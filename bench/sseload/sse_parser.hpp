// Incremental Server-Sent Events parser (the WHATWG "event stream interpretation"), fed with body
// bytes in pieces of any size: lines may be split across reads and chunks, end in \n, \r\n or \r.
// Only what chatstream's protocol uses is kept: `event`, `data`, `id`; `retry` and unknown fields
// are ignored; comment lines (":" first) are reported as heartbeats.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chatstream::bench {

enum class EventType : uint8_t {
  kOther,  // a type the load client does not look into (stages, citations, tools, unknown)
  kMeta,
  kGenerationStart,
  kToken,
  kDone,
  kError,
  kCancelled,
};

struct SseEvent {
  EventType type = EventType::kOther;
  bool has_id = false;
  std::string_view id;    // valid during the on_event call only
  std::string_view data;  // data lines joined with \n; valid during the on_event call only
};

class SseParser {
 public:
  class Sink {
   public:
    // Returning false stops the current feed() at once (the stream is being closed).
    virtual bool on_event(const SseEvent& event) = 0;
    virtual void on_comment() = 0;

   protected:
    ~Sink() = default;
  };

  // False when a sink call asked to stop.
  bool feed(std::string_view input, Sink& sink);
  // Prepares for the next response on the same connection; keeps buffer capacity.
  void reset();

 private:
  bool process_line(std::string_view line, Sink& sink);

  std::string partial_line_;  // a line whose end has not arrived yet
  std::string data_;          // data of the event being assembled
  std::string id_;
  EventType type_ = EventType::kOther;
  bool has_data_ = false;
  bool has_id_ = false;
  bool skip_next_lf_ = false;  // the last input ended in \r: a \n starting the next one ends no line
};

EventType classify_event_type(std::string_view name);

}  // namespace chatstream::bench
