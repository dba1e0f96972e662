// The JSON and UTF-8 pieces fake-llm needs beyond the worker's writer (worker/json/), which it uses
// for every string it sends: escaped as JSON requires, ill-formed UTF-8 replaced with U+FFFD, so
// every body and chunk fake-llm sends is valid JSON and valid UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "json/writer.hpp"

namespace chatstream::fakellm {

using json::append_string;

// Appends `text` escaped but without the quotes (for a string built from several pieces).
void append_json_string_body(std::string& out, std::string_view text);
inline void append_uint(std::string& out, uint64_t value) { json::append_number(out, value); }

// Byte length of the first `max_chars` code points of `text` (a malformed byte counts as one).
size_t utf8_prefix_bytes(std::string_view text, size_t max_chars);
// The longest prefix of at most `max_bytes` bytes that does not end inside a multi-byte character.
std::string_view utf8_truncate(std::string_view text, size_t max_bytes);

}  // namespace chatstream::fakellm
