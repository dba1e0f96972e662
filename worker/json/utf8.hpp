#pragma once
// UTF-8 helpers for text that crosses our boundaries: request strings are validated, streamed token
// text is framed only on whole characters (a provider may split a character across two deltas).

#include <cstddef>
#include <string_view>

namespace chatstream::json {

// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view text);

// Length of the longest prefix of `text` that does not end inside an incomplete multi-byte sequence.
// Bytes that can never become valid are not held back (the JSON writer replaces them), so the
// returned prefix leaves at most 3 bytes behind.
size_t complete_utf8_prefix(std::string_view text);

// Length in bytes of the well-formed UTF-8 sequence starting at text[0], or 0 when it is invalid or
// truncated.
size_t utf8_sequence_length(std::string_view text);

}  // namespace chatstream::json
