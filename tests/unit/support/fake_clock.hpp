#pragma once
// The clock of the unit tests' timer wheels: milliseconds that pass only when a test says so
// (`fake_clock_ms() += 100; wheel.advance_to(fake_clock_ms());`), so a test of a 2 s timeout takes
// no time and never flakes.
#include <cstdint>

namespace chatstream::testing {

inline uint64_t& fake_clock_ms() {
  static uint64_t now = 1000000;
  return now;
}

}  // namespace chatstream::testing
