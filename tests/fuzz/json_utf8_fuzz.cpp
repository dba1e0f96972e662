// Fuzz target: the JSON writer and the UTF-8 helpers of worker/json/, against independent oracles.
//
// - append_string() output parses back with simdjson (as a string value and as an object key);
//   well-formed UTF-8 comes back byte for byte; ill-formed input comes back as the input with each
//   byte that does not start a well-formed sequence replaced by U+FFFD (the writer's documented rule),
//   computed here by a decoder of our own, not by the worker's helpers.
// - is_valid_utf8() agrees with that decoder.
// - complete_utf8_prefix() of any cut of well-formed text ends at the last character boundary before
//   the cut; of any text, it holds back at most 3 bytes.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

#include "json/utf8.hpp"
#include "json/writer.hpp"

namespace {

using chatstream::json::append_string;
using chatstream::json::complete_utf8_prefix;
using chatstream::json::is_valid_utf8;

[[noreturn]] void fail(const char* what) {
  fprintf(stderr, "json_utf8: %s\n", what);
  abort();
}

// Length of the well-formed UTF-8 character at text[i], 0 when none starts there. Decodes the code
// point and checks its range (no overlongs, no surrogates, at most U+10FFFF), which is how RFC 3629
// defines well-formedness, unlike the worker's table of allowed second bytes.
size_t reference_char_length(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  uint8_t lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length = (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 0;
  if (length == 0 || i + length > text.size()) return 0;
  uint32_t code = lead & (0xFF >> (length + 1));
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3F);
  }
  static const uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kSmallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return length;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  std::string expected;
  bool valid = true;
  for (size_t i = 0; i < text.size();) {
    size_t length = reference_char_length(text, i);
    if (length == 0) {
      valid = false;
      expected += "\xEF\xBF\xBD";
      ++i;
    } else {
      expected.append(text, i, length);
      i += length;
    }
  }
  if (is_valid_utf8(text) != valid) fail("is_valid_utf8 disagrees with the reference decoder");

  static simdjson::dom::parser parser;
  std::string json;
  append_string(json, text);
  std::string_view parsed;
  if (parser.parse(json).get(parsed) != simdjson::SUCCESS) fail("append_string wrote JSON that does not parse");
  if (parsed != expected) fail("the parsed string differs from the input (with U+FFFD for ill-formed bytes)");

  // The same text as a key and a value of the object builder.
  std::string object;
  chatstream::json::Object(object).field(text, text).field("n", static_cast<int64_t>(size)).close();
  simdjson::dom::object parsed_object;
  if (parser.parse(object).get(parsed_object) != simdjson::SUCCESS) fail("Object wrote JSON that does not parse");
  std::string_view value;
  if (parsed_object.at_key(expected).get(value) != simdjson::SUCCESS || value != expected) {
    fail("Object field does not round-trip");
  }

  size_t prefix = complete_utf8_prefix(text);
  if (prefix > text.size() || text.size() - prefix > 3) fail("complete_utf8_prefix holds back too much");
  if (valid) {
    if (prefix != text.size()) fail("complete_utf8_prefix cut well-formed text");
    // Every cut of well-formed text: the prefix ends at the last character boundary before the cut.
    size_t boundary = 0;
    for (size_t cut = 0; cut <= text.size(); ++cut) {
      while (boundary < text.size() && boundary + reference_char_length(text, boundary) <= cut) {
        boundary += reference_char_length(text, boundary);
      }
      if (complete_utf8_prefix(text.substr(0, cut)) != boundary) fail("complete_utf8_prefix missed a boundary");
    }
  }
  return 0;
}
