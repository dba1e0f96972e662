#include "json/writer.hpp"

#include <charconv>
#include <cmath>

#include "json/utf8.hpp"

namespace chatstream::json {

namespace {
// 1 where a byte needs more than a plain copy: quote, backslash, control characters, non-ASCII.
constexpr bool needs_care(unsigned char c) { return c < 0x20 || c == '"' || c == '\\' || c >= 0x80; }
}  // namespace

void append_string(std::string& out, std::string_view text) {
  static const char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  size_t run_start = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (!needs_care(c)) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      size_t length = utf8_sequence_length(text.substr(i));
      if (length > 0) {
        i += length;
        continue;
      }
    }
    out.append(text.data() + run_start, i - run_start);
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default:
        if (c < 0x20) {
          out.append("\\u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.append("\\ufffd");  // ill-formed UTF-8 byte
        }
    }
    ++i;
    run_start = i;
  }
  out.append(text.data() + run_start, text.size() - run_start);
  out.push_back('"');
}

template <typename Int>
static void append_integer(std::string& out, Int value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  out.append(buffer, end);
}

void append_number(std::string& out, int64_t value) { append_integer(out, value); }
void append_number(std::string& out, uint64_t value) { append_integer(out, value); }
void append_number(std::string& out, int value) { append_integer(out, value); }

void append_number(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out.append("null");
    return;
  }
  char buffer[64];
  if (std::fabs(value) >= 1e15) {
    // Beyond the range where 3 fixed decimals mean anything: shortest round-trip form (1e+300).
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
    (void)ec;
    out.append(buffer, end);
    return;
  }
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, std::round(value * 1000.0) / 1000.0,
                                 std::chars_format::fixed, 3);
  (void)ec;
  // Trim trailing zeros ("1.500" -> "1.5", "2.000" -> "2").
  char* last = end;
  while (last > buffer && last[-1] == '0') --last;
  if (last > buffer && last[-1] == '.') --last;
  out.append(buffer, last);
}

void Object::key(std::string_view name) {
  if (!first_) out_.push_back(',');
  first_ = false;
  append_string(out_, name);
  out_.push_back(':');
}

Object& Object::field(std::string_view name, std::string_view value) {
  key(name);
  append_string(out_, value);
  return *this;
}
Object& Object::field(std::string_view name, int64_t value) {
  key(name);
  append_number(out_, value);
  return *this;
}
Object& Object::field(std::string_view name, uint64_t value) {
  key(name);
  append_number(out_, value);
  return *this;
}
Object& Object::field(std::string_view name, int value) {
  key(name);
  append_number(out_, value);
  return *this;
}
Object& Object::field(std::string_view name, double value) {
  key(name);
  append_number(out_, value);
  return *this;
}
Object& Object::field(std::string_view name, bool value) {
  key(name);
  out_.append(value ? "true" : "false");
  return *this;
}
Object& Object::raw(std::string_view name, std::string_view json) {
  key(name);
  out_.append(json);
  return *this;
}

}  // namespace chatstream::json
