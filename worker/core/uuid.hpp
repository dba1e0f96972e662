#pragma once
// Random (version 4) UUIDs for run and session ids: 122 random bits from the kernel's CSPRNG, so ids
// are unguessable, and the text form is what PostgreSQL's uuid type reads and writes.

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace chatstream {

struct Uuid {
  std::array<uint8_t, 16> bytes{};

  static Uuid random();
  // Accepts the canonical 8-4-4-4-12 hex form, either case.
  static std::optional<Uuid> parse(std::string_view text);
  std::string to_string() const;  // lowercase canonical form, 36 characters
  bool operator==(const Uuid& other) const { return bytes == other.bytes; }
};

struct UuidHash {
  size_t operator()(const Uuid& id) const {
    uint64_t a, b;
    std::memcpy(&a, id.bytes.data(), 8);
    std::memcpy(&b, id.bytes.data() + 8, 8);
    return std::hash<uint64_t>()(a ^ (b * 0x9E3779B97F4A7C15ULL));
  }
};

}  // namespace chatstream
