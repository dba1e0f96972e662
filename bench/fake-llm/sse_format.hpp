// Server-Sent Events framing of the chunks, with the variations a client's incremental parser must
// cope with: "\r\n" line endings, comment lines, one JSON object over several "data:" lines, and
// (split mode) an event written in several pieces cut inside lines, CRLF pairs and UTF-8 characters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace chatstream::fakellm {

struct SseStyle {
  bool crlf = false;        // "\r\n" instead of "\n"
  bool comments = false;    // ": keep-alive" lines: a comment-only block before even events, a
                            // comment line inside odd ones (both are valid SSE and must be ignored)
  bool multi_data = false;  // split the JSON at its top-level commas, one "data:" line each (SSE joins
                            // them with "\n", which JSON allows between tokens)
};

// Appends the event carrying `data` (a JSON object, or "[DONE]") to `out`. `index` is the event's
// number in its stream; it alternates where comment lines go.
void append_event(std::string& out, std::string_view data, const SseStyle& style, uint64_t index);

// Offsets at which split mode cuts `event` into separate writes, ascending, each strictly inside it:
// after the first byte of each line, after "data:", inside the first and last multi-byte UTF-8
// character of each line, before the line terminator and between the "\r" and "\n" of a CRLF.
void split_offsets(std::string_view event, std::vector<uint32_t>& offsets);

}  // namespace chatstream::fakellm
