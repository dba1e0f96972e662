// A latency histogram in fixed log-linear buckets (HDR-style), microsecond resolution.
//
// Values below 128 µs get a bucket each; above, every power of two is split into 64 linear buckets,
// so a reported percentile is within 1/64 (~1.6 %) of the true value. Recording is an index
// computation and an increment: no allocation per sample, one fixed array per histogram, so the
// client can record millions of gaps without becoming the bottleneck.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace chatstream::bench {

class Histogram {
 public:
  void record(uint64_t micros);
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  // The smallest recorded value v such that at least `quantile` of the samples are <= v, rounded up
  // to its bucket's upper bound (never above max()). 0 when empty.
  uint64_t percentile(double quantile) const;

 private:
  static constexpr unsigned kSubBucketBits = 6;  // 64 linear buckets per power of two
  static constexpr unsigned kMaxMagnitude = 40;  // values clamp at ~2^46 µs (~2 years)
  static constexpr size_t kBucketCount = (kMaxMagnitude + 2) << kSubBucketBits;

  static size_t bucket_of(uint64_t micros);
  static uint64_t upper_bound_of(size_t bucket);

  std::array<uint64_t, kBucketCount> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace chatstream::bench
