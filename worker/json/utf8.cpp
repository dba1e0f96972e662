#include "json/utf8.hpp"

#include <cstdint>

namespace chatstream::json {

size_t utf8_sequence_length(std::string_view text) {
  if (text.empty()) return 0;
  auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  uint8_t lead = byte(0);
  if (lead < 0x80) return 1;
  size_t length;
  uint8_t min_second = 0x80, max_second = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) min_second = 0xA0;  // overlong
    if (lead == 0xED) max_second = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) min_second = 0x90;  // overlong
    if (lead == 0xF4) max_second = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  if (byte(1) < min_second || byte(1) > max_second) return 0;
  for (size_t i = 2; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
  }
  return length;
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    // ASCII fast path, eight bytes at a time.
    while (i + 8 <= text.size()) {
      uint64_t word;
      __builtin_memcpy(&word, text.data() + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= text.size()) break;
    size_t length = utf8_sequence_length(text.substr(i));
    if (length == 0) return false;
    i += length;
  }
  return true;
}

size_t complete_utf8_prefix(std::string_view text) {
  // Find the lead byte among the last three bytes; if the sequence it starts needs more bytes than
  // are here, and what is here could still become a valid character, hold it back.
  size_t n = text.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    uint8_t lead = static_cast<uint8_t>(text[n - back]);
    if ((lead & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t wanted = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (wanted <= back) return n;
    // Complete the cut sequence with the smallest continuation bytes that its lead allows and see
    // whether the result is well formed: if not, nothing that follows can repair it.
    char completed[4];
    text.copy(completed, back, n - back);
    for (size_t i = back; i < wanted; ++i) completed[i] = static_cast<char>(0x80);
    if (back == 1 && lead == 0xE0) completed[1] = static_cast<char>(0xA0);
    if (back == 1 && lead == 0xF0) completed[1] = static_cast<char>(0x90);
    return utf8_sequence_length(std::string_view(completed, wanted)) == wanted ? n - back : n;
  }
  return n;
}

}  // namespace chatstream::json
