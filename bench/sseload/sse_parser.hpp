// Server-Sent Events of chatstream's streams as the load client sees them: the worker's incremental
// parser (the WHATWG "event stream interpretation": lines split anywhere, ending in \n, \r\n or \r;
// `event`, `data`, `id` kept, `retry` and unknown fields ignored) with the event type classified and
// comment lines (":" first) reported as heartbeats.
#pragma once

#include <cstdint>
#include <limits>
#include <string_view>

#include "llm/upstream_sse.hpp"

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
  void reset() { parser_.reset(); }

 private:
  // The worker's own SSE parser (worker/llm/upstream_sse.*), without a size bound: chatstream's
  // events are what is being measured, not judged.
  llm::UpstreamSseParser parser_{std::numeric_limits<size_t>::max()};
};

EventType classify_event_type(std::string_view name);

}  // namespace chatstream::bench
