#pragma once
// PostgreSQL array literals for one bound parameter that carries many rows ($1::text[] with
// unnest): a batched statement sends one array per column instead of one statement per row.
// Every text element is quoted and escaped, so any text (quotes, backslashes, braces, commas,
// "NULL") arrives as itself; elements are never spliced into SQL.

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace chatstream::db {

// {"a","b \" c"} from any range of strings or string views.
template <typename Range>
std::string text_array(const Range& values) {
  size_t size = 2;
  for (std::string_view value : values) size += value.size() + 3;
  std::string out;
  out.reserve(size);
  out.push_back('{');
  bool first = true;
  for (std::string_view value : values) {
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');
    for (char c : value) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

inline std::string text_array(std::initializer_list<std::string_view> values) {
  return text_array<std::initializer_list<std::string_view>>(values);
}

// {1,2,3} from any elements that std::to_string formats (integers).
template <typename Range>
std::string number_array(const Range& values) {
  std::string out = "{";
  bool first = true;
  for (const auto& value : values) {
    if (!first) out.push_back(',');
    first = false;
    out += std::to_string(value);
  }
  out.push_back('}');
  return out;
}

}  // namespace chatstream::db
