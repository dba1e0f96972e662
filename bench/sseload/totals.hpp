// The figures of a whole run, accumulated by every stream as it goes. Fixed size whatever the
// number of streams or events (histograms are bucketed; only failure reasons form a small map).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "histogram.hpp"

namespace chatstream::bench {

struct Totals {
  uint64_t streams_started = 0;      // requests sent or attempted (connections opened or reused)
  uint64_t streams_established = 0;  // got "200" with Content-Type: text/event-stream
  uint64_t streams_completed = 0;    // ended with a `done` event
  uint64_t streams_failed = 0;       // anything else, except held streams in --hold
  uint64_t streams_held = 0;         // --hold: still open, as intended, when the hold ended
  std::map<std::string, uint64_t> failures_by_reason;

  uint64_t events = 0;
  uint64_t token_events = 0;
  uint64_t tokens = 0;  // scripted words ("t<i> ") while the text follows the pattern, else token events
  uint64_t heartbeats = 0;
  uint64_t bytes = 0;  // everything read from the sockets, headers and framing included

  Histogram first_event_us;  // request written -> first complete SSE event
  Histogram first_token_us;  // request written -> first `token` event
  Histogram gap_us;          // between consecutive `token` events of one stream

  uint64_t tokens_timed = 0;    // tokens judged against --expect-rate
  uint64_t tokens_on_time = 0;  // ... that arrived by first_token + i/R + 100 ms

  uint64_t order_errors = 0;  // --check-order: streams whose text deviates or misses tokens
  uint64_t id_errors = 0;     // events whose id is missing or not <run_id>:<previous seq + 1>
  uint64_t data_errors = 0;   // events whose data is not the JSON the protocol describes

  // --max-token-event-rate: streams ending with `done` and at least two token events.
  uint64_t rate_checked = 0;
  uint64_t rate_held = 0;
  double rate_max_observed = 0;  // highest token events per second of one stream

  // --cut-after-tokens / --resume. A resumed stream is still one stream: it is completed or failed
  // once, at the end of its resumed part; its ids and text are checked across the cut.
  uint64_t streams_cut = 0;            // connections closed by the client at the cut
  uint64_t resumes_sent = 0;           // resume requests sent or attempted
  uint64_t resumes_established = 0;    // answered "200" with Content-Type: text/event-stream
  uint64_t resumes_completed = 0;      // resumed streams that ended with `done`
  uint64_t resume_id_errors = 0;       // id_errors on the resumed part (after a gap, every later id counts)
  uint64_t resume_seq_mismatches = 0;  // resumed streams whose first replayed id is not the last read + 1
  Histogram resume_first_event_us;     // resume request written -> first replayed event

  // Established streams that have not yet received their first event; --hold waits for zero.
  uint64_t awaiting_first_event = 0;
};

}  // namespace chatstream::bench
