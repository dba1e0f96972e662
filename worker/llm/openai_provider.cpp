#include "llm/openai_provider.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <strings.h>

#include "json/utf8.hpp"
#include "json/writer.hpp"
#include "llm/tool_call_assembly.hpp"
#include "llm/upstream_sse.hpp"
#include "obs/log.hpp"

namespace chatstream::llm {

namespace {
constexpr uint64_t kFirstRetryMs = 500;
constexpr uint64_t kMaxRetryAfterMs = 10000;
constexpr size_t kMaxErrorBody = 4096;
constexpr size_t kMaxPassageChars = 1500;

// Reads "Retry-After: <seconds>" (the HTTP-date form is rare for APIs and treated as absent).
uint64_t parse_retry_after_ms(std::string_view header_value) {
  while (!header_value.empty() && header_value.front() == ' ') header_value.remove_prefix(1);
  double seconds = 0;
  auto [end, ec] = std::from_chars(header_value.data(), header_value.data() + header_value.size(), seconds);
  if (ec != std::errc() || end == header_value.data()) return 0;
  return std::min<uint64_t>(kMaxRetryAfterMs, static_cast<uint64_t>(seconds * 1000));
}

std::string system_prompt(const std::vector<rag::Passage>* passages) {
  std::string text =
      "You are a helpful assistant. Answer clearly and concisely. When passages from the knowledge base "
      "are given below, base your answer on them and cite them with their number, like [1]. If they do not "
      "contain the answer, say so instead of inventing one.";
  if (passages && !passages->empty()) {
    text += "\n\nPassages:";
    for (size_t i = 0; i < passages->size(); ++i) {
      const rag::Passage& p = (*passages)[i];
      text += "\n\n[" + std::to_string(i + 1) + "] " + p.title;
      if (!p.heading.empty() && p.heading != p.title) text += " — " + p.heading;
      text += "\n";
      std::string_view content = p.content;
      if (content.size() > kMaxPassageChars) {
        content = content.substr(0, json::complete_utf8_prefix(content.substr(0, kMaxPassageChars)));
      }
      text += content;
    }
  }
  return text;
}

class OpenAIGeneration final : public Generation, private Transfer {
 public:
  OpenAIGeneration(OpenAIProvider& provider, const RunContext& context, EventSink& sink)
      : provider_(provider), sink_(sink), tools_(context.tools), retry_timer_(&OpenAIGeneration::on_retry, this),
        resume_timer_(&OpenAIGeneration::on_resume, this) {
    // The conversation as the model sees it; tool turns are appended as they happen.
    messages_ = "[";
    json::Object(messages_).field("role", "system").field("content", system_prompt(context.passages)).close();
    if (context.history) {
      for (const Turn& turn : *context.history) {
        messages_ += ",";
        json::Object(messages_).field("role", turn.role).field("content", turn.content).close();
      }
    }
    messages_ += ",";
    json::Object(messages_).field("role", "user").field("content", context.message).close();
    if (tools_) tool_definitions_ = tools_->tool_definitions();
    start_fields_ = "\"provider\":\"openai\",\"context_messages\":";
    start_fields_ += std::to_string(context.history ? context.history->size() : 0);
    // The first request starts from the loop, so start() never calls the sink.
    provider_.wheel().schedule(retry_timer_, provider_.wheel().now_ms());
  }

  ~OpenAIGeneration() override {
    cancel();
    if (headers_) curl_slist_free_all(headers_);
  }

  void pause() override {
    paused_ = true;
    provider_.wheel().cancel(resume_timer_);
    provider_.curl().pause(*this, true);
  }

  void resume() override {
    if (!paused_ || finished_) return;
    paused_ = false;
    // Unpausing may hand us buffered data at once: do it from the loop, not inside the caller.
    provider_.wheel().schedule(resume_timer_, provider_.wheel().now_ms());
  }

  void cancel() override {
    finished_ = true;
    provider_.wheel().cancel(retry_timer_);
    provider_.wheel().cancel(resume_timer_);
    provider_.curl().remove(*this);  // closes the upstream connection mid-answer
    if (tool_running_ && tools_) tools_->cancel_tool();
    tool_running_ = false;
  }

 private:
  static void on_retry(void* self) { static_cast<OpenAIGeneration*>(self)->send_request(); }
  static void on_resume(void* self) {
    auto* generation = static_cast<OpenAIGeneration*>(self);
    if (!generation->paused_ && !generation->finished_) generation->provider_.curl().pause(*generation, false);
  }

  void send_request() {
    if (finished_) return;
    if (!started_) {
      started_ = true;
      sink_.on_stage("generation_start", start_fields_);
      if (finished_) return;
    }
    const OpenAISettings& settings = provider_.settings();
    body_.clear();
    json::Object request(body_);
    request.field("model", settings.model).field("stream", true).raw("stream_options", "{\"include_usage\":true}");
    request.raw("messages", messages_ + "]");
    if (!tool_definitions_.empty() && tool_turns_ < settings.max_tool_turns) request.raw("tools", tool_definitions_);
    request.close();

    status_ = 0;
    retry_after_ms_ = 0;
    error_body_.clear();
    parser_.reset();
    tool_calls_.clear();
    finish_reason_.clear();
    done_seen_ = false;

    reset_handle();
    CURL* easy = this->easy();
    url_ = settings.base_url;
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
    url_ += "/chat/completions";
    curl_easy_setopt(easy, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body_.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body_.size()));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(settings.connect_timeout_ms));
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    // Over HTTPS, wait for a connection being set up to learn whether it multiplexes (HTTP/2) rather
    // than open another (libcurl does so for the first connection; CurlLoop's gate for the later
    // ones); plain http:// is HTTP/1.1 here, where waiting would queue runs behind each other's
    // whole answers.
    bool multiplexed = url_.rfind("https://", 0) == 0;
    curl_easy_setopt(easy, CURLOPT_PIPEWAIT, multiplexed ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");  // whatever the upstream compresses with
    if (!settings.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, settings.ca_file.c_str());
    if (headers_) curl_slist_free_all(headers_);
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Accept: text/event-stream");
    headers_ = curl_slist_append(headers_, "Expect:");
    if (!settings.api_key.empty()) {
      std::string authorization = "Authorization: Bearer " + settings.api_key;
      headers_ = curl_slist_append(headers_, authorization.c_str());
    }
    for (const std::string& header : settings.extra_headers) headers_ = curl_slist_append(headers_, header.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers_);
    if (!provider_.curl().add(*this, multiplexed)) fail("The language model service could not be reached.", "curl add failed");
  }

  void on_header(std::string_view line) override {
    if (line.rfind("HTTP/", 0) == 0) {
      // A status line (there may be several: 100 Continue, redirects).
      size_t space = line.find(' ');
      if (space != std::string_view::npos) {
        int status = 0;
        std::from_chars(line.data() + space + 1, line.data() + line.size(), status);
        status_ = status;
      }
    } else if (line.size() > 12 && strncasecmp(line.data(), "retry-after:", 12) == 0) {
      retry_after_ms_ = parse_retry_after_ms(line.substr(12));
    }
  }

  bool on_body(const char* data, size_t length) override {
    if (finished_) return false;
    if (status_ != 200) {
      if (error_body_.size() < kMaxErrorBody) error_body_.append(data, std::min(length, kMaxErrorBody - error_body_.size()));
      return true;
    }
    bool ok = parser_.feed(std::string_view(data, length), [this](std::string_view event) { return on_event(event); });
    if (!ok && !finished_ && !protocol_error_) protocol_error_ = true;  // an event over the size bound
    return ok && !finished_;
  }

  bool on_event(std::string_view data) {
    if (data == "[DONE]") {
      done_seen_ = true;
      return true;
    }
    simdjson::dom::element chunk;
    if (provider_.json().parse(data.data(), data.size()).get(chunk)) {
      protocol_error_ = true;
      return false;
    }
    if (simdjson::dom::element error; !chunk["error"].get(error)) {
      upstream_error_ = true;
      return false;
    }
    if (simdjson::dom::object usage; !chunk["usage"].get(usage)) {
      usage_ = simdjson::to_string(usage);
    }
    simdjson::dom::array choices;
    if (chunk["choices"].get(choices) || choices.size() == 0) return true;
    simdjson::dom::element choice = choices.at(0).value_unsafe();
    if (std::string_view reason; !choice["finish_reason"].get(reason)) finish_reason_ = reason;
    simdjson::dom::object delta;
    if (choice["delta"].get(delta)) return true;
    // The parser is the provider's, shared by every generation of the loop: the document is done
    // with before the sink runs (tool calls first), so nothing the sink does can parse over it.
    simdjson::dom::array calls;
    if (!delta["tool_calls"].get(calls)) tool_calls_.add(calls);
    if (std::string_view content; !delta["content"].get(content) && !content.empty()) {
      ++tokens_;
      sink_.on_token(content);
      if (finished_) return false;  // cancelled from inside the sink
    }
    return true;
  }

  void on_done(CURLcode result) override {
    if (finished_) return;
    if (protocol_error_) {
      fail("The language model sent a response chatstream could not read.", "malformed upstream stream");
      return;
    }
    if (upstream_error_) {
      fail("The language model reported an error. Please try again.", "error object in upstream stream");
      return;
    }
    if (result != CURLE_OK) {
      std::string reason = curl_easy_strerror(result);
      if (result == CURLE_PEER_FAILED_VERIFICATION || result == CURLE_SSL_CACERT_BADFILE) {
        // Configuration, not weather: retrying cannot help, and the operator needs the hint.
        fail("The language model service could not be reached securely (its certificate is not trusted).",
             reason + " (the upstream's CA must be in the system store or in --llm-ca-file)");
        return;
      }
      if (tokens_ == 0 && retry()) return;
      fail(tokens_ == 0 ? "The language model service could not be reached. Please try again."
                        : "The connection to the language model was lost mid-answer.",
           reason);
      return;
    }
    if (status_ != 200) {
      bool retryable = status_ == 429 || status_ >= 500;
      if (retryable && tokens_ == 0 && retry()) return;
      std::string message = status_ == 429 ? "The language model service is busy (rate limited). Please try again shortly."
                            : status_ == 401 || status_ == 403
                                ? "The language model service refused chatstream's credentials."
                                : "The language model service answered with an error (HTTP " + std::to_string(status_) +
                                      "). Please try again.";
      fail(message, "HTTP " + std::to_string(status_));
      return;
    }
    if (!usage_.empty()) sink_.on_usage(usage_);
    bool wants_tools = finish_reason_ == "tool_calls" || (!tool_calls_.empty() && finish_reason_.empty() && done_seen_);
    if (wants_tools && !tool_calls_.empty()) {
      run_tools();
      return;
    }
    if (!done_seen_ && finish_reason_.empty()) {
      fail("The connection to the language model was lost mid-answer.", "stream ended without [DONE]");
      return;
    }
    finished_ = true;
    sink_.on_complete();
  }

  bool retry() {
    const OpenAISettings& settings = provider_.settings();
    if (attempt_ >= settings.max_retries) return false;
    uint64_t delay = retry_after_ms_ > 0 ? retry_after_ms_ : kFirstRetryMs << attempt_;
    ++attempt_;
    log::info("upstream retry", log::field("attempt", static_cast<long long>(attempt_)) + "," +
                                    log::field("delay_ms", static_cast<long long>(delay)) + "," +
                                    log::field("status", static_cast<long long>(status_)));
    provider_.wheel().schedule_in(retry_timer_, delay);
    return true;
  }

  void run_tools() {
    ++tool_turns_;
    // The assistant's tool request joins the conversation, then each result.
    std::string calls = "[";
    for (const ToolCall& call : tool_calls_.calls()) {
      if (calls.size() > 1) calls += ",";
      std::string function;
      json::Object(function).field("name", call.name).field("arguments", call.arguments).close();
      json::Object(calls).field("id", call.id).field("type", "function").raw("function", function).close();
    }
    calls += "]";
    messages_ += ",";
    json::Object(messages_).field("role", "assistant").raw("content", "null").raw("tool_calls", calls).close();
    next_tool_ = 0;
    run_next_tool();
  }

  void run_next_tool() {
    if (finished_) return;
    if (next_tool_ >= tool_calls_.calls().size()) {
      if (tool_turns_ > provider_.settings().max_tool_turns) {
        fail("The language model kept asking for tools without answering.", "tool turn limit");
        return;
      }
      send_request();  // the conversation continues with the results
      return;
    }
    const ToolCall& call = tool_calls_.calls()[next_tool_];
    std::string fields;
    json::Object(fields).field("id", call.id).field("name", call.name).field("arguments", call.arguments);
    sink_.on_stage("tool_call", std::string_view(fields).substr(1));
    if (finished_) return;
    if (!tools_) {
      finish_tool("Tools are not available.");
      return;
    }
    tool_running_ = true;
    tools_->run_tool(call.name, call.arguments, [this](std::string result) {
      tool_running_ = false;
      finish_tool(std::move(result));
    });
  }

  void finish_tool(std::string result) {
    if (finished_) return;
    const ToolCall& call = tool_calls_.calls()[next_tool_];
    size_t limit = provider_.settings().max_tool_result_bytes;
    bool truncated = result.size() > limit;
    if (truncated) result.resize(json::complete_utf8_prefix(std::string_view(result).substr(0, limit)));
    std::string fields;
    json::Object(fields).field("id", call.id).field("name", call.name).field("content", result).field("truncated", truncated);
    sink_.on_stage("tool_result", std::string_view(fields).substr(1));
    if (finished_) return;
    messages_ += ",";
    json::Object(messages_).field("role", "tool").field("tool_call_id", call.id).field("content", result).close();
    ++next_tool_;
    run_next_tool();
  }

  void fail(const std::string& message, const std::string& reason) {
    if (finished_) return;
    finished_ = true;
    provider_.curl().remove(*this);
    log::warn("upstream failed", log::field("reason", reason) + "," + log::field("tokens", static_cast<long long>(tokens_)));
    sink_.on_error(Errc::kUpstream, message);
  }

  OpenAIProvider& provider_;
  EventSink& sink_;
  ToolRunner* tools_;
  std::string messages_;  // JSON array text without its closing bracket
  std::string tool_definitions_;
  std::string start_fields_;
  bool started_ = false;
  std::string body_;
  std::string url_;
  curl_slist* headers_ = nullptr;
  UpstreamSseParser parser_;
  ToolCallAssembly tool_calls_;
  std::string finish_reason_;
  std::string usage_;
  std::string error_body_;
  Timer retry_timer_;
  Timer resume_timer_;
  size_t next_tool_ = 0;
  uint64_t tokens_ = 0;
  uint64_t retry_after_ms_ = 0;
  int status_ = 0;
  int attempt_ = 0;
  int tool_turns_ = 0;
  bool done_seen_ = false;
  bool protocol_error_ = false;
  bool upstream_error_ = false;
  bool paused_ = false;
  bool finished_ = false;
  bool tool_running_ = false;
};

}  // namespace

OpenAIProvider::OpenAIProvider(uv_loop_t* loop, TimerWheel& wheel, OpenAISettings settings)
    : wheel_(wheel), settings_(std::move(settings)), curl_(loop) {}

OpenAIProvider::~OpenAIProvider() = default;

std::unique_ptr<Generation> OpenAIProvider::start(const RunContext& context, EventSink& sink) {
  return std::make_unique<OpenAIGeneration>(*this, context, sink);
}

}  // namespace chatstream::llm
