// The routes of Server (server.hpp): what each request is answered with.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <ctime>

#include "chat_request.hpp"
#include "completion.hpp"
#include "json_text.hpp"
#include "server.hpp"

namespace chatstream::fakellm {
namespace {

constexpr std::string_view kToolResultPrefix = "Based on the tool result: ";
constexpr size_t kToolResultChars = 40;  // of the tool message quoted in the answer

std::string_view strip_v1(std::string_view path) {
  return path.starts_with("/v1/") ? path.substr(3) : path;
}

bool parse_header_uint(const std::string& text, uint32_t max, uint32_t& out) {
  uint32_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || value > max) return false;
  out = value;
  return true;
}

bool parse_header_rate(const std::string& text, double& out) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !std::isfinite(value) || value < 0 || value > 1e6) return false;
  out = value;
  return true;
}

// The tool call's arguments, {"query": "<text>"}, cut into at least four fragments: the opening
// two, the query in up to three pieces, the closing. A fragment is a string of its own in its chunk,
// so a cut may fall inside a JSON escape of the arguments text (as OpenAI's do) but never inside a
// UTF-8 character.
std::vector<std::string> tool_arguments(std::string_view query) {
  std::string escaped;
  append_json_string_body(escaped, query);
  std::vector<std::string> fragments = {"{\"query\"", ": \""};
  constexpr size_t kPieces = 3;
  size_t target = std::max<size_t>(1, (escaped.size() + kPieces - 1) / kPieces);
  size_t start = 0;
  while (start < escaped.size()) {
    size_t end = std::min(escaped.size(), start + target);
    while (end < escaped.size() && (static_cast<unsigned char>(escaped[end]) & 0xC0) == 0x80) ++end;
    fragments.emplace_back(escaped.substr(start, end - start));
    start = end;
  }
  fragments.emplace_back("\"}");
  return fragments;
}

}  // namespace

void Server::reject(Connection& connection, int status, std::string_view message,
                    std::string_view extra_headers) {
  ++stats_.bad_requests;
  std::string body = R"({"error":{"message":)";
  append_string(body, message);
  body += R"(,"type":"invalid_request_error","param":null,"code":null}})";
  body += '\n';
  connection.respond(status, "application/json", body, extra_headers);
}

void Server::dispatch(Connection& connection, Request& request) {
  std::string_view path = strip_v1(request.path);
  std::string_view method = request.method;
  if (path == "/chat/completions") {
    if (method != "POST") return reject(connection, 405, "Use POST.", "Allow: POST\r\n");
    return handle_chat(connection, request);
  }
  if (path == "/models") {
    if (method != "GET") return reject(connection, 405, "Use GET.", "Allow: GET\r\n");
    std::string body = R"({"object":"list","data":[{"id":)";
    append_string(body, options_.model);
    body += R"(,"object":"model","created":0,"owned_by":"fake"}]})";
    body += '\n';
    return connection.respond(200, "application/json", body);
  }
  if (path == "/stats") {
    if (method != "GET") return reject(connection, 405, "Use GET.", "Allow: GET\r\n");
    return connection.respond(200, "application/json", stats_.to_json());
  }
  if (path == "/reset") {
    if (method != "POST") return reject(connection, 405, "Use POST.", "Allow: POST\r\n");
    stats_.reset();
    faulted_by_key_.clear();
    return connection.respond(200, "application/json", "{\"reset\":true}\n");
  }
  reject(connection, 404, "Unknown path: " + request.path);
}

void Server::handle_chat(Connection& connection, Request& request) {
  ++stats_.requests;
  stats_.last_request_body.assign(utf8_truncate(request.body, Stats::kMaxBodyShown));
  stats_.last_request_body_bytes = request.body.size();
  stats_.last_authorization = request.authorization;

  // Per-request overrides of the command line.
  Fault fault = options_.fault;
  if (!options_.fault_cycle.empty()) fault = options_.fault_cycle[stats_.requests % options_.fault_cycle.size()];
  uint32_t fail_times = options_.fail_times;
  uint32_t tokens = options_.tokens;
  double rate = options_.rate;
  uint32_t fault_after = UINT32_MAX;
  if (!request.fake_fault.empty() && !parse_fault(request.fake_fault, fault)) {
    return reject(connection, 400, "X-Fake-Fault: unknown fault mode " + request.fake_fault);
  }
  if (!request.fake_fail_times.empty() &&
      !parse_header_uint(request.fake_fail_times, UINT32_MAX, fail_times)) {
    return reject(connection, 400, "X-Fake-Fail-Times: expects an integer");
  }
  if (!request.fake_fault_after.empty() &&
      !parse_header_uint(request.fake_fault_after, kMaxTokens, fault_after)) {
    return reject(connection, 400, "X-Fake-Fault-After: expects an integer");
  }
  if (!request.fake_tokens.empty() && !parse_header_uint(request.fake_tokens, kMaxTokens, tokens)) {
    return reject(connection, 400, "X-Fake-Tokens: expects an integer up to 1000000");
  }
  if (!request.fake_rate.empty() && !parse_header_rate(request.fake_rate, rate)) {
    return reject(connection, 400, "X-Fake-Rate: expects a number of tokens per second");
  }

  ChatRequest chat;
  if (request.body.capacity() < request.body.size() + simdjson::SIMDJSON_PADDING) {
    request.body.reserve(request.body.size() + simdjson::SIMDJSON_PADDING);
  }
  if (std::string problem = parse_chat_request(json_, request.body, chat); !problem.empty()) {
    return reject(connection, 400, problem);
  }
  bool tool_result = chat.last_role == "tool";
  if (tool_result) ++stats_.tool_result_requests;

  if (fault != Fault::kNone && !fault_applies(request.fake_key, fail_times)) fault = Fault::kNone;
  if (fault != Fault::kNone) ++stats_.faults[static_cast<size_t>(fault)];
  if (fault == Fault::k500) {
    return connection.respond(
        500, "application/json",
        R"({"error":{"message":"fake-llm: injected server error","type":"server_error","param":null,"code":null}})"
        "\n");
  }
  if (fault == Fault::k429) {
    std::string headers = "Retry-After: ";
    append_uint(headers, options_.retry_after_s);
    headers += "\r\n";
    return connection.respond(
        429, "application/json",
        R"({"error":{"message":"fake-llm: injected rate limit","type":"requests","param":null,"code":"rate_limit_exceeded"}})"
        "\n",
        headers);
  }

  AnswerPlan plan;
  plan.id = next_id("chatcmpl-");
  plan.model = chat.model.empty() ? options_.model : chat.model;
  plan.created = static_cast<uint64_t>(std::time(nullptr));
  plan.stream = chat.stream;
  plan.include_usage = chat.include_usage;
  plan.prompt_tokens = chat.prompt_words;
  plan.rate = rate;
  plan.first_token_delay_ms = options_.first_token_delay_ms;
  plan.fault = fault;
  if (fault_after == UINT32_MAX)
    fault_after = fault == Fault::kStall ? options_.stall_after : options_.fail_after;
  plan.fault_after = fault_after;

  bool call_tool = !options_.tool_call.empty() && chat.has_tools &&
                   (chat.last_role == "user" || (tool_result && chat.tool_turns_done < options_.tool_turns));
  if (call_tool) {
    ++stats_.tool_call_requests;
    plan.tool_name = options_.tool_call;
    plan.call_id = next_id("call_");
    plan.tool_fragments = tool_arguments(chat.last_user_text);
  } else {
    if (tool_result) {
      std::string prefix(kToolResultPrefix);
      std::string_view quoted = chat.last_tool_content;
      prefix.append(quoted.substr(0, utf8_prefix_bytes(quoted, kToolResultChars)));
      prefix += ' ';
      plan.prefix_words = split_words(prefix);
    }
    if (!options_.text_words.empty()) {
      plan.text_words = &options_.text_words;
    } else {
      plan.numbered_tokens = tokens;
    }
  }
  Completion::start(*this, connection, std::move(plan));
}

}  // namespace chatstream::fakellm
