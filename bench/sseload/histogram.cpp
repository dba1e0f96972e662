#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace chatstream::bench {

// Layout: bucket b < 128 holds the value b exactly. For v >= 128 with m = bit_width(v) - 7 (the
// number of low bits dropped), the bucket is (m << 6) + (v >> m); v >> m lies in [64, 128), so
// magnitudes follow one another without gaps: m = 1 covers [128, 256) in buckets [128, 192).
size_t Histogram::bucket_of(uint64_t micros) {
  constexpr uint64_t kLinearLimit = uint64_t{2} << kSubBucketBits;  // 128
  if (micros < kLinearLimit) return static_cast<size_t>(micros);
  unsigned magnitude = static_cast<unsigned>(std::bit_width(micros)) - (kSubBucketBits + 1);
  if (magnitude > kMaxMagnitude) return kBucketCount - 1;
  return (size_t{magnitude} << kSubBucketBits) + static_cast<size_t>(micros >> magnitude);
}

uint64_t Histogram::upper_bound_of(size_t bucket) {
  constexpr size_t kLinearLimit = size_t{2} << kSubBucketBits;
  if (bucket < kLinearLimit) return bucket;
  unsigned magnitude = static_cast<unsigned>(bucket >> kSubBucketBits) - 1;
  uint64_t sub_bucket = bucket - (size_t{magnitude} << kSubBucketBits);
  return ((sub_bucket + 1) << magnitude) - 1;
}

void Histogram::record(uint64_t micros) {
  ++counts_[bucket_of(micros)];
  ++count_;
  max_ = std::max(max_, micros);
}

uint64_t Histogram::percentile(double quantile) const {
  if (count_ == 0) return 0;
  auto rank = static_cast<uint64_t>(std::ceil(quantile * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t bucket = 0; bucket < kBucketCount; ++bucket) {
    seen += counts_[bucket];
    if (seen >= rank) return std::min(upper_bound_of(bucket), max_);
  }
  return max_;
}

}  // namespace chatstream::bench
