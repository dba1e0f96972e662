// Counters tests read through GET /stats (and zero with POST /reset).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "options.hpp"

namespace chatstream::fakellm {

struct Stats {
  static constexpr size_t kMaxBodyShown = 4096;  // last_request_body is cut to this many bytes

  uint64_t requests = 0;             // POST /v1/chat/completions, whatever the outcome
  uint64_t streams_started = 0;      // 200 text/event-stream answers begun
  uint64_t streams_completed = 0;    // ... that reached "data: [DONE]"
  uint64_t answers_completed = 0;    // stream:false answers sent whole
  uint64_t client_closed_early = 0;  // the client closed while a response was still in progress
  uint64_t open_streams = 0;         // streams begun and not yet ended (a stalled one stays open)
  uint64_t max_concurrent_streams = 0;
  uint64_t paused_detected = 0;       // a socket's unsent output stayed above 64 KiB for 200 ms
  uint64_t tokens_sent = 0;           // content tokens and tool-call fragments, streamed or whole
  uint64_t tokens_late = 0;           // streamed > 20 ms after their deadline (rate > 0, no split mode)
                                      // with the client reading:
                                      // fake-llm itself fell behind (should stay 0 in a benchmark)
  uint64_t tool_call_requests = 0;    // answered with a tool call
  uint64_t tool_result_requests = 0;  // whose last message was a tool result
  uint64_t bad_requests = 0;          // answered 400 / 404 / 405 / 413 / 431
  uint64_t connections_accepted = 0;
  uint64_t open_connections = 0;
  std::array<uint64_t, kFaultCount> faults{};  // injected, by mode (index 0, "none", unused)
  std::string last_request_body;               // of the last chat completion request, cut
  uint64_t last_request_body_bytes = 0;        // its whole length
  std::optional<std::string> last_authorization;

  void stream_opened() {
    ++streams_started;
    if (++open_streams > max_concurrent_streams) max_concurrent_streams = open_streams;
  }
  // Zeroes every counter; the gauges (open_streams, open_connections) keep describing the present.
  void reset();
  std::string to_json() const;
};

}  // namespace chatstream::fakellm
