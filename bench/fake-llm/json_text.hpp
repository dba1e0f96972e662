// Writing JSON text by appending to a std::string, and the UTF-8 helpers fake-llm needs. Strings go
// through append_json_string, which escapes what JSON requires and replaces ill-formed UTF-8 with
// U+FFFD, so every body and chunk fake-llm sends is valid JSON and valid UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chatstream::fakellm {

// Appends `text` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view text);
// Appends `text` escaped but without the quotes (for a string built from several pieces).
void append_json_string_body(std::string& out, std::string_view text);
void append_uint(std::string& out, uint64_t value);

// Byte length of the first `max_chars` code points of `text` (a malformed byte counts as one).
size_t utf8_prefix_bytes(std::string_view text, size_t max_chars);
// The longest prefix of at most `max_bytes` bytes that does not end inside a multi-byte character.
std::string_view utf8_truncate(std::string_view text, size_t max_bytes);

}  // namespace chatstream::fakellm
