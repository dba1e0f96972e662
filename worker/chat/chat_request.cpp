#include "chat/chat_request.hpp"

#include <charconv>

#include <simdjson.h>

#include "json/utf8.hpp"

namespace chatstream::chat {

namespace {

// The message a user can act on for each simdjson failure.
std::string describe(simdjson::error_code error) {
  switch (error) {
    case simdjson::UTF8_ERROR: return "Request body is not valid UTF-8";
    case simdjson::STRING_ERROR: return "Request body has an invalid string escape";
    case simdjson::EMPTY: return "Request body is empty; expected a JSON object";
    case simdjson::INCORRECT_TYPE: return "Request body must be a JSON object";
    default: return std::string("Request body is not valid JSON (") + simdjson::error_message(error) + ")";
  }
}

// Parses the body as one JSON object and calls `visit(key, value)` for each field; `visit` returns
// an error message to reject the request. The DOM parser validates the whole document (also the
// fields we ignore), so malformed JSON anywhere is refused.
template <typename Visit>
Status for_each_field(http::Request& request, Visit&& visit) {
  if (!http::is_json_content_type(request.content_type)) {
    return Error{Errc::kUnsupportedMediaType, request.content_type.empty() ? "Content-Type must be application/json (it is missing)"
                                                          : "Content-Type must be application/json"};
  }
  if (!json::is_valid_utf8(request.body)) return Error{Errc::kBadRequest, "Request body is not valid UTF-8"};
  if (request.body.capacity() < request.body.size() + simdjson::SIMDJSON_PADDING) {
    request.body.reserve(request.body.size() + simdjson::SIMDJSON_PADDING);
  }
  static thread_local simdjson::dom::parser parser;
  simdjson::dom::element document;
  if (auto error = parser.parse(request.body.data(), request.body.size(), false).get(document)) {
    return Error{Errc::kBadRequest, describe(error)};
  }
  simdjson::dom::object object;
  if (auto error = document.get_object().get(object)) return Error{Errc::kBadRequest, describe(error)};
  for (auto [key, value] : object) {
    std::optional<std::string> problem = visit(key, value);
    if (problem) return Error{Errc::kBadRequest, *problem};
  }
  return {};
}

// "'name' <problem>" (built by appending: GCC 12 reports a false -Wrestrict on operator+ chains here).
std::string field_problem(std::string_view name, std::string_view problem) {
  std::string text = "'";
  text += name;
  text += "' ";
  text += problem;
  return text;
}

// Reads a string field; nullopt + message on failure.
std::optional<std::string> read_string(simdjson::dom::element value, std::string_view name, std::string* out) {
  std::string_view text;
  if (value.get_string().get(text)) return field_problem(name, "must be a string");
  // Escapes like \ud800 decode to ill-formed UTF-8; refuse them like raw invalid bytes.
  if (!json::is_valid_utf8(text)) return field_problem(name, "is not valid UTF-8");
  out->assign(text);
  return std::nullopt;
}

bool is_blank(std::string_view text) {
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return true;
}

}  // namespace

Status parse_chat_request(http::Request& request, ChatRequest* out) {
  bool has_message = false;
  Status parsed = for_each_field(request, [&](std::string_view key, simdjson::dom::element value)
                                           -> std::optional<std::string> {
    if (key == "message") {
      if (auto problem = read_string(value, key, &out->message)) return problem;
      has_message = true;
    } else if (key == "session_id") {
      if (value.is_null()) return std::nullopt;
      std::string text;
      if (auto problem = read_string(value, key, &text)) return problem;
      out->session_id = Uuid::parse(text);
      if (!out->session_id) return std::string("'session_id' must be a UUID");
    } else if (key == "multitask") {
      std::string text;
      if (auto problem = read_string(value, key, &text)) return problem;
      if (text == "reject") out->multitask = Multitask::kReject;
      else if (text == "interrupt") out->multitask = Multitask::kInterrupt;
      else if (text == "enqueue") out->multitask = Multitask::kEnqueue;
      else return std::string("'multitask' must be one of reject, interrupt, enqueue");
    } else if (key == "on_disconnect") {
      std::string text;
      if (auto problem = read_string(value, key, &text)) return problem;
      if (text == "cancel") out->on_disconnect = OnDisconnect::kCancel;
      else if (text == "continue") out->on_disconnect = OnDisconnect::kContinue;
      else return std::string("'on_disconnect' must be one of cancel, continue");
    }
    return std::nullopt;  // unknown fields are ignored (forward compatibility)
  });
  if (!parsed) return parsed;
  if (!has_message) return Error{Errc::kBadRequest, "'message' is required"};
  if (is_blank(out->message)) return Error{Errc::kBadRequest, "'message' must not be empty"};
  return {};
}

Status parse_openai_request(http::Request& request, ChatRequest* out) {
  std::vector<llm::Turn> turns;
  bool has_messages = false;
  std::string last_role;
  std::string model;
  Status parsed = for_each_field(request, [&](std::string_view key, simdjson::dom::element value)
                                           -> std::optional<std::string> {
    if (key == "model") {
      if (auto problem = read_string(value, key, &model)) return problem;
    } else if (key == "stream") {
      if (value.is_null()) return std::nullopt;
      if (value.get_bool().get(out->stream)) return std::string("'stream' must be a boolean");
    } else if (key == "stream_options") {
      if (bool usage; !value["include_usage"].get_bool().get(usage)) out->include_usage = usage;
    } else if (key == "session_id") {
      if (value.is_null()) return std::nullopt;
      std::string text;
      if (auto problem = read_string(value, key, &text)) return problem;
      out->session_id = Uuid::parse(text);
      if (!out->session_id) return std::string("'session_id' must be a UUID");
    } else if (key == "messages") {
      simdjson::dom::array messages;
      if (value.get_array().get(messages)) return std::string("'messages' must be an array");
      has_messages = true;
      for (simdjson::dom::element message : messages) {
        llm::Turn turn;
        simdjson::dom::element role, content;
        if (message["role"].get(role)) return std::string("each message needs a 'role'");
        if (auto problem = read_string(role, "role", &turn.role)) return problem;
        simdjson::dom::array parts;
        if (message["content"].get(content)) {
          turn.content.clear();  // e.g. an assistant message with tool_calls only
        } else if (!content.get_array().get(parts)) {
          for (simdjson::dom::element part : parts) {  // [{"type":"text","text":"…"}, …]
            std::string_view type, text;
            if (!part["type"].get(type) && type == "text" && !part["text"].get(text)) {
              if (!json::is_valid_utf8(text)) return std::string("message content is not valid UTF-8");
              if (!turn.content.empty()) turn.content += "\n";
              turn.content.append(text);
            }
          }
        } else if (!content.is_null()) {
          if (auto problem = read_string(content, "content", &turn.content)) return problem;
        }
        last_role = turn.role;
        if (turn.role == "user" || turn.role == "assistant") turns.push_back(std::move(turn));
        // system and tool messages of the client are not part of chatstream's conversation.
      }
    }
    return std::nullopt;
  });
  if (!parsed) return parsed;
  if (!out->session_id && !request.session_header.empty()) {
    out->session_id = Uuid::parse(request.session_header);
    if (!out->session_id) return Error{Errc::kBadRequest, "X-Chatstream-Session-Id must be a UUID"};
  }
  if (!model.empty() && model != "chatstream") {
    return Error{Errc::kNotFound, "The model '" + model + "' does not exist; use \"chatstream\" (see GET /v1/models)"};
  }
  if (!has_messages || turns.empty()) return Error{Errc::kBadRequest, "'messages' must contain a user message"};
  if (last_role != "user") return Error{Errc::kBadRequest, "the last message must be from the user"};
  out->message = std::move(turns.back().content);
  turns.pop_back();
  if (is_blank(out->message)) return Error{Errc::kBadRequest, "the user message must not be empty"};
  out->prior_turns = std::move(turns);
  return {};
}

namespace {
// "<seq>" or "<run_id>:<seq>" (the id: line of an event). The run, when named, must be this one.
Status parse_cursor(std::string_view cursor, const Uuid& run_id, std::string_view source, uint64_t* next_seq) {
  size_t colon = cursor.rfind(':');
  if (colon != std::string_view::npos) {
    auto named = Uuid::parse(cursor.substr(0, colon));
    if (!named || !(*named == run_id)) {
      return Error{Errc::kBadRequest, std::string(source) + " names another run than the one in the path"};
    }
    cursor.remove_prefix(colon + 1);
  }
  uint64_t seq = 0;
  auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), seq);
  if (cursor.empty() || ec != std::errc() || end != cursor.data() + cursor.size() || seq >= (1ull << 40)) {
    return Error{Errc::kBadRequest, std::string(source) + " must be <run_id>:<seq> or <seq>"};
  }
  *next_seq = seq + 1;
  return {};
}

// The value of `key` in a query string, with %3A/%3a decoded (the colon of a cursor).
std::optional<std::string> query_value(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != key) continue;
    std::string_view raw = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    std::string value;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '%' && i + 2 < raw.size() && (raw.substr(i + 1, 2) == "3A" || raw.substr(i + 1, 2) == "3a")) {
        value.push_back(':');
        i += 2;
      } else {
        value.push_back(raw[i]);
      }
    }
    return value;
  }
  return std::nullopt;
}
}  // namespace

Status parse_resume_request(const http::Request& request, std::string_view run_id, ResumeRequest* out) {
  auto id = Uuid::parse(run_id);
  if (!id) return Error{Errc::kNotFound, "No such run"};
  out->run_id = *id;
  out->next_seq = 0;
  if (auto cursor = query_value(request.query, "last_event_id")) {
    return parse_cursor(*cursor, *id, "last_event_id", &out->next_seq);
  }
  if (!request.last_event_id.empty()) return parse_cursor(request.last_event_id, *id, "Last-Event-ID", &out->next_seq);
  return {};
}

Status parse_cancel_request(http::Request& request, CancelRequest* out) {
  bool has_run_id = false;
  Status parsed = for_each_field(request, [&](std::string_view key, simdjson::dom::element value)
                                           -> std::optional<std::string> {
    if (key != "run_id") return std::nullopt;
    std::string text;
    if (auto problem = read_string(value, key, &text)) return problem;
    auto id = Uuid::parse(text);
    if (!id) return std::string("'run_id' must be a UUID");
    out->run_id = *id;
    has_run_id = true;
    return std::nullopt;
  });
  if (!parsed) return parsed;
  if (!has_run_id) return Error{Errc::kBadRequest, "'run_id' is required"};
  return {};
}

Status parse_rename_request(http::Request& request, std::string* title) {
  bool has_title = false;
  Status parsed = for_each_field(request, [&](std::string_view key, simdjson::dom::element value)
                                           -> std::optional<std::string> {
    if (key != "title") return std::nullopt;
    if (auto problem = read_string(value, key, title)) return problem;
    has_title = true;
    return std::nullopt;
  });
  if (!parsed) return parsed;
  if (!has_title) return Error{Errc::kBadRequest, "'title' is required"};
  size_t first = title->find_first_not_of(" \t\r\n"), last = title->find_last_not_of(" \t\r\n");
  if (first == std::string::npos) return Error{Errc::kBadRequest, "'title' must not be empty"};
  *title = title->substr(first, last - first + 1);
  size_t chars = 0;
  for (unsigned char c : *title) {
    if (c < 0x20 || c == 0x7f) return Error{Errc::kBadRequest, "'title' must be one line without control characters"};
    if ((c & 0xc0) != 0x80) ++chars;  // UTF-8: count the first byte of each character
  }
  if (chars > kMaxTitleChars) {
    return Error{Errc::kBadRequest, "'title' must be at most " + std::to_string(kMaxTitleChars) + " characters"};
  }
  return {};
}

}  // namespace chatstream::chat
