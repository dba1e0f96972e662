#pragma once
// The bytes of the SSE protocol (docs/protocol.md): every event is
//   id: <run_id>:<seq>\n
//   event: <type>\n
//   data: {"type":"<type>",<fields>}\n
//   \n
// with the data JSON on one line (our JSON writer escapes every newline), heartbeats are the comment
// ": ping", and the stream opens with a retry: field.

#include <cstdint>
#include <string>
#include <string_view>

namespace chatstream::sse {

inline constexpr std::string_view kHeartbeat = ": ping\n\n";
inline constexpr std::string_view kContentType = "text/event-stream; charset=utf-8";
inline constexpr std::string_view kStreamHeaders =
    "Cache-Control: no-cache, no-transform\r\n"
    "X-Accel-Buffering: no\r\n"
    "X-Content-Type-Options: nosniff\r\n";

void append_retry(std::string& out, uint64_t retry_ms);

// `fields_json` is empty or a run of `"key":value` pairs (no braces) that follows "type".
void append_event(std::string& out, std::string_view run_id, uint64_t seq, std::string_view type,
                  std::string_view fields_json);

// A token event whose content is `text` (escaped here).
void append_token_event(std::string& out, std::string_view run_id, uint64_t seq, std::string_view text);

}  // namespace chatstream::sse
