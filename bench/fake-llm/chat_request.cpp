#include "chat_request.hpp"

#include <algorithm>

namespace chatstream::fakellm {
namespace {

using simdjson::dom::element;

// A message's content as text: a string, null (""), or the "text" of each part of an array.
bool content_text(element message, std::string& out) {
  out.clear();
  element content;
  if (message["content"].get(content)) return true;  // absent: an assistant message with tool_calls
  if (content.is_null()) return true;
  std::string_view text;
  if (!content.get_string().get(text)) {
    out.assign(text);
    return true;
  }
  simdjson::dom::array parts;
  if (content.get_array().get(parts)) return false;
  for (element part : parts) {
    std::string_view part_text;
    if (!part["text"].get_string().get(part_text)) out.append(part_text);
  }
  return true;
}

uint64_t count_words(std::string_view text) {
  uint64_t words = 0;
  bool in_word = false;
  for (char c : text) {
    bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

}  // namespace

std::string parse_chat_request(simdjson::dom::parser& parser, const std::string& body, ChatRequest& out) {
  out = ChatRequest{};
  element root;
  if (parser.parse(body).get(root)) return "We could not parse the JSON body of your request.";
  if (!root.is_object()) return "The request body must be a JSON object.";

  std::string_view model;
  if (!root["model"].get_string().get(model)) out.model.assign(model);

  element flag;
  if (!root["stream"].get(flag) && !flag.is_null()) {
    if (flag.get_bool().get(out.stream)) return "'stream' must be a boolean.";
  }
  if (!root["stream_options"]["include_usage"].get(flag) && !flag.is_null()) {
    if (flag.get_bool().get(out.include_usage)) return "'stream_options.include_usage' must be a boolean.";
  }
  simdjson::dom::array tools;
  if (!root["tools"].get_array().get(tools)) out.has_tools = tools.size() > 0;

  simdjson::dom::array messages;
  if (root["messages"].get_array().get(messages)) return "'messages' is a required array.";
  if (messages.size() == 0) return "'messages' must contain at least one message.";

  std::string text;
  // fake-llm asks for one tool per turn, so a turn shows as an assistant message with tool_calls
  // and as a tool message; either is counted, for clients that do not echo the assistant message.
  uint32_t assistant_calls = 0;
  uint32_t tool_results = 0;
  for (element message : messages) {
    std::string_view role;
    if (message["role"].get_string().get(role)) return "Every message needs a string 'role'.";
    if (!content_text(message, text)) return "A message's 'content' must be a string, null or an array.";
    out.prompt_words += count_words(text);
    out.last_role.assign(role);
    if (role == "user") {
      out.last_user_text = text;
      assistant_calls = tool_results = 0;
    } else if (role == "assistant") {
      simdjson::dom::array calls;
      if (!message["tool_calls"].get_array().get(calls) && calls.size() > 0) ++assistant_calls;
    } else if (role == "tool") {
      ++tool_results;
    }
    if (role == "tool") {
      out.last_tool_content = text;
    } else {
      out.last_tool_content.clear();
    }
  }
  out.tool_turns_done = std::max(assistant_calls, tool_results);
  return "";
}

}  // namespace chatstream::fakellm
