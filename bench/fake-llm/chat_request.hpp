// The parts of an OpenAI Chat Completions request body that decide fake-llm's answer.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace chatstream::fakellm {

struct ChatRequest {
  std::string model;  // "" when the request names none
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool has_tools = false;         // a non-empty `tools` array
  std::string last_role;          // role of the last message
  std::string last_user_text;     // text of the last user message (the tool call's query)
  std::string last_tool_content;  // text of the last message when it is a tool result
  uint32_t tool_turns_done = 0;   // assistant tool-call turns since the last user message
  uint64_t prompt_words = 0;      // whitespace-separated words over every message (prompt_tokens)
};

// Parses `body` (its capacity may be used as simdjson padding). Returns "" on success, else what
// is wrong with the request, for a 400 answer. A message's content may be a string, null, or an
// array of parts whose "text" fields are joined.
std::string parse_chat_request(simdjson::dom::parser& parser, const std::string& body, ChatRequest& out);

}  // namespace chatstream::fakellm
