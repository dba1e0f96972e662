#pragma once
// The input layout of the targets that cut their bytes into pieces: the first 4 bytes seed where the
// cuts fall (and what else the harness varies), the rest is the payload. Seed corpus files start with
// 4 arbitrary bytes, then readable text.
#include <cstdint>
#include <cstring>
#include <string_view>

namespace chatstream::fuzz {

struct SeededInput {
  uint32_t seed = 0;
  std::string_view payload;
};

inline SeededInput split_seed(const uint8_t* data, size_t size) {
  SeededInput input;
  size_t seed_bytes = size < 4 ? size : 4;
  if (seed_bytes > 0) memcpy(&input.seed, data, seed_bytes);
  input.payload = std::string_view(reinterpret_cast<const char*>(data) + seed_bytes, size - seed_bytes);
  return input;
}

// xorshift32: a cheap, reproducible sequence of cut lengths from the seed.
class Cuts {
 public:
  explicit Cuts(uint32_t seed) : state_(seed | 1) {}
  uint32_t next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return state_;
  }

 private:
  uint32_t state_;
};

}  // namespace chatstream::fuzz
