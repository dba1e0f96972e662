#pragma once
// Building JSON text by appending to a std::string. Every string value goes through
// append_string, which escapes quotes, backslashes and control characters and replaces ill-formed
// UTF-8 with U+FFFD, so what we emit is always valid JSON and valid UTF-8.

#include <cstdint>
#include <string>
#include <string_view>

namespace chatstream::json {

// Appends `text` as a quoted JSON string.
void append_string(std::string& out, std::string_view text);

// Appends a number; doubles are written with at most 3 decimals (milliseconds with µs precision).
void append_number(std::string& out, int64_t value);
void append_number(std::string& out, uint64_t value);
void append_number(std::string& out, int value);
void append_number(std::string& out, double value);

// Small builder for flat objects: Object o(out); o.field("a", "x").field("n", 1); o.close();
class Object {
 public:
  explicit Object(std::string& out) : out_(out) { out_.push_back('{'); }
  Object& field(std::string_view key, std::string_view value);
  Object& field(std::string_view key, const char* value) { return field(key, std::string_view(value)); }
  Object& field(std::string_view key, int64_t value);
  Object& field(std::string_view key, uint64_t value);
  Object& field(std::string_view key, int value);
  Object& field(std::string_view key, double value);
  Object& field(std::string_view key, bool value);
  // Appends `"key":` followed by raw JSON the caller built.
  Object& raw(std::string_view key, std::string_view json);
  void close() { out_.push_back('}'); }

 private:
  void key(std::string_view name);
  std::string& out_;
  bool first_ = true;
};

}  // namespace chatstream::json
