#pragma once
// The query string of a request (`a=1&b=x%2Cy`): values are percent-decoded and '+' is a space, as
// browsers' URLSearchParams write them.

#include <optional>
#include <string>
#include <string_view>

namespace chatstream::http {

// %XX escapes decoded; false for a broken escape. `plus_is_space` for query strings.
bool percent_decode(std::string_view text, std::string* out, bool plus_is_space = false);
// The decoded value of the first `name` parameter; nothing when absent or badly escaped (`*bad` set).
std::optional<std::string> query_param(std::string_view query, std::string_view name, bool* bad = nullptr);

}  // namespace chatstream::http
