// The one clock of the bench tools: microseconds on the monotonic clock (uv_hrtime), which is what
// latencies are measured in and timers are scheduled on. Not the loop's cached time: a figure taken
// in a callback must not include the time the loop spent before it.
#pragma once

#include <uv.h>

#include <cstdint>

namespace chatstream::bench {

inline uint64_t now_micros() { return uv_hrtime() / 1000; }

}  // namespace chatstream::bench
