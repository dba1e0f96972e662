#include "sse_format.hpp"

#include <algorithm>

namespace chatstream::fakellm {
namespace {

constexpr std::string_view kComment = ": keep-alive";

// Appends one "data:" line per top-level member of the JSON object `data` (strings are skipped
// over, so a comma inside a value never splits).
void append_multi_data(std::string& out, std::string_view data, std::string_view eol) {
  int depth = 0;
  bool in_string = false;
  size_t line_start = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    char c = data[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      out += "data: ";
      out.append(data.substr(line_start, i + 1 - line_start));
      out += eol;
      line_start = i + 1;
    }
  }
  out += "data: ";
  out.append(data.substr(line_start));
  out += eol;
}

}  // namespace

void append_event(std::string& out, std::string_view data, const SseStyle& style, uint64_t index) {
  std::string_view eol = style.crlf ? "\r\n" : "\n";
  if (style.comments && index % 2 == 0) {
    out += kComment;
    out += eol;
    out += eol;
  }
  if (style.comments && index % 2 == 1) {
    out += kComment;
    out += eol;
  }
  if (style.multi_data && !data.empty() && data.front() == '{') {
    append_multi_data(out, data, eol);
  } else {
    out += "data: ";
    out += data;
    out += eol;
  }
  out += eol;
}

void split_offsets(std::string_view event, std::vector<uint32_t>& offsets) {
  offsets.clear();
  size_t line_start = 0;
  while (line_start < event.size()) {
    size_t newline = event.find('\n', line_start);
    size_t line_end = newline == std::string_view::npos ? event.size() : newline + 1;
    size_t terminator = newline == std::string_view::npos ? line_end : newline;
    if (terminator > line_start && event[terminator - 1] == '\r') --terminator;

    size_t text_length = terminator - line_start;
    if (text_length > 1) offsets.push_back(static_cast<uint32_t>(line_start + 1));
    if (text_length > 6 && event.compare(line_start, 5, "data:") == 0) {
      offsets.push_back(static_cast<uint32_t>(line_start + 5));
    }
    size_t first_lead = std::string_view::npos;
    size_t last_lead = std::string_view::npos;
    for (size_t i = line_start; i < terminator; ++i) {
      if (static_cast<unsigned char>(event[i]) >= 0xC0) {
        if (first_lead == std::string_view::npos) first_lead = i;
        last_lead = i;
      }
    }
    if (first_lead != std::string_view::npos) offsets.push_back(static_cast<uint32_t>(first_lead + 1));
    if (last_lead != first_lead) offsets.push_back(static_cast<uint32_t>(last_lead + 1));
    offsets.push_back(static_cast<uint32_t>(terminator));
    if (newline != std::string_view::npos && terminator + 1 == newline) {
      offsets.push_back(static_cast<uint32_t>(newline));  // between '\r' and '\n'
    }
    line_start = line_end;
  }
  std::sort(offsets.begin(), offsets.end());
  offsets.erase(std::unique(offsets.begin(), offsets.end()), offsets.end());
  std::erase_if(offsets, [&](uint32_t offset) { return offset == 0 || offset >= event.size(); });
}

}  // namespace chatstream::fakellm
