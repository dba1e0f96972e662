#pragma once
// The base64url alphabet of JSON Web Tokens (RFC 7515 §2): '-' and '_' instead of '+' and '/', no
// padding. Decoding is strict: a padded, whitespace-holding or non-canonical input (leftover bits
// that are not zero) is refused, so one token has exactly one spelling.

#include <optional>
#include <string>
#include <string_view>

namespace chatstream::auth {

// The decoded bytes, or nothing when `text` is not canonical unpadded base64url.
std::optional<std::string> base64url_decode(std::string_view text);
std::string base64url_encode(std::string_view bytes);

}  // namespace chatstream::auth
