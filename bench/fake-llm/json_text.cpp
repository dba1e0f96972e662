#include "json_text.hpp"

#include "json/utf8.hpp"

namespace chatstream::fakellm {

void append_json_string_body(std::string& out, std::string_view text) {
  size_t start = out.size();
  json::append_string(out, text);
  out.pop_back();          // the closing quote
  out.erase(start, 1);     // the opening quote
}

size_t utf8_prefix_bytes(std::string_view text, size_t max_chars) {
  size_t i = 0;
  for (size_t chars = 0; chars < max_chars && i < text.size(); ++chars) {
    size_t length = json::utf8_sequence_length(text.substr(i));
    i += length == 0 ? 1 : length;
  }
  return i;
}

std::string_view utf8_truncate(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  // Step back over continuation bytes to the lead byte of the character that would be cut.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

}  // namespace chatstream::fakellm
