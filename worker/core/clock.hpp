#pragma once
// Monotonic time for deadlines. All deadlines in chatstream are absolute milliseconds on this clock,
// so periodic work (token pacing, heartbeats) never drifts by the time callbacks take.

#include <uv.h>

#include <cstdint>

namespace chatstream {

inline uint64_t monotonic_us() { return uv_hrtime() / 1000; }
inline uint64_t monotonic_ms() { return uv_hrtime() / 1000000; }

}  // namespace chatstream
