#include "chat/run.hpp"

#include <algorithm>
#include <cstring>

#include <simdjson.h>

#include "core/clock.hpp"
#include "http/response.hpp"
#include "json/writer.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "rag/reranker.hpp"
#include "rag/search_query.hpp"
#include "rag/snippet.hpp"
#include "rag/text.hpp"

namespace chatstream::chat {

namespace {
// POST /chat keeps the whole answer in memory; beyond this the client must stream.
constexpr size_t kMaxJsonAnswerBytes = 8 << 20;

int http_status_for(std::string_view code) {
  if (code == "timeout") return 504;
  if (code == "upstream") return 502;
  if (code == "overloaded" || code == "shutdown") return 503;
  if (code == "bad_request") return 400;
  return 500;
}

obs::Counter error_counter(std::string_view code) {
  if (code == "timeout") return obs::Counter::kErrorTimeout;
  if (code == "upstream") return obs::Counter::kErrorUpstream;
  if (code == "bad_request") return obs::Counter::kErrorBadRequest;
  if (code == "overloaded") return obs::Counter::kErrorOverloaded;
  if (code == "shutdown") return obs::Counter::kErrorShutdown;
  if (code == "slow_consumer") return obs::Counter::kErrorSlowConsumer;
  return obs::Counter::kErrorInternal;
}

obs::Counter status_counter(RunStatus status) {
  switch (status) {
    case RunStatus::kComplete: return obs::Counter::kRunsComplete;
    case RunStatus::kCancelled: return obs::Counter::kRunsCancelled;
    case RunStatus::kDisconnected: return obs::Counter::kRunsDisconnected;
    case RunStatus::kTimeout: return obs::Counter::kRunsTimeout;
    default: return obs::Counter::kRunsError;
  }
}
}  // namespace

void Run::start(RunEnvironment& env, http::Connection& connection, ChatRequest request, RunMode mode) {
  auto* run = new Run(env, connection, std::move(request), mode);
  run->begin();
}

Run::Run(RunEnvironment& env, http::Connection& connection, ChatRequest request, RunMode mode)
    : env_(env),
      connection_(&connection),
      mode_(mode),
      streaming_(mode == RunMode::kStream || mode == RunMode::kOpenAIStream),
      include_usage_(request.include_usage),
      id_(Uuid::random()),
      session_id_(request.session_id ? *request.session_id : Uuid::random()),
      message_(std::move(request.message)),
      watchdog_(&Run::on_watchdog, this),
      started_us_(monotonic_us()),
      last_token_ms_(env.wheel.now_ms()) {
  // An OpenAI-style request carries its own conversation; a stored session's history replaces it.
  if (!request.prior_turns.empty()) pipeline().history = std::move(request.prior_turns);
  std::string text = id_.to_string();
  std::memcpy(id_text_, text.data(), sizeof id_text_);
  text = session_id_.to_string();
  std::memcpy(session_text_, text.data(), sizeof session_text_);
}

void Run::begin() {
  env_.registry.add(id_, this);
  obs::gauge_add(obs::Gauge::kActiveRuns, 1);
  std::string_view run_id(id_text_, sizeof id_text_);
  if (streaming_) {
    obs::gauge_add(obs::Gauge::kActiveStreams, 1);
    std::string meta;
    json::Object fields(meta);
    fields.field("run_id", run_id)
        .field("session_id", std::string_view(session_text_, sizeof session_text_))
        .field("heartbeat_ms", env_.stream_settings.heartbeat_ms);
    // Only the pairs: the stream writes {"type":"meta", …}.
    std::string pairs = meta.substr(1);
    bool openai = mode_ == RunMode::kOpenAIStream;
    stream_.emplace(*connection_, env_.wheel, env_.stream_settings, static_cast<sse::StreamObserver&>(*this),
                    openai ? sse::Framing::kOpenAI : sse::Framing::kChatstream);
    std::string headers;
    if (openai) {
      headers = "X-Chatstream-Session-Id: ";
      headers.append(session_text_, sizeof session_text_);
      headers += "\r\n";
    }
    stream_->open(run_id, pairs, headers);
  } else {
    connection_->attach(static_cast<http::ResponseProducer*>(this));
  }
  arm_watchdog();
  if (!env_.store) {
    start_generation();
    return;
  }
  // The user message is stored before any generation starts; the same round trip brings the
  // session's recent history for the provider.
  RunStart start{id_, session_id_, message_, std::string(env_.provider.name()), env_.history_messages,
                 env_.history_chars};
  starting_ = true;
  ticket_ = env_.store->start_run(start, [this](std::optional<StoreError> error, RunStarted& started) {
    on_started(std::move(error), started);
  });
}

void Run::on_started(std::optional<StoreError> error, RunStarted& started) {
  ticket_ = 0;
  starting_ = false;
  if (error) {
    finish(RunStatus::kError, error->code, error->message);
    return;
  }
  persisted_ = true;
  pipeline().language = std::move(started.language);
  if (!started.history.empty()) pipeline().history = std::move(started.history);
  start_retrieval();
}

std::vector<std::string> Run::earlier_user_messages() const {
  std::vector<std::string> earlier;
  if (!pipeline_) return earlier;
  for (const llm::Turn& turn : pipeline_->history) {
    if (turn.role == "user") earlier.push_back(turn.content);
  }
  return earlier;
}

void Run::start_retrieval() {
  std::string query = rag::search_query(message_, earlier_user_messages());
  if (query.empty()) {
    start_generation();
    return;
  }
  search(message_, query);
}

// retrieval_start → full-text query → retrieval_complete → reranking in C++ → reranking_complete →
// citations; then generation starts, or the tool call that asked for the search gets its result.
void Run::search(std::string question, const std::string& query) {
  std::string fields;
  json::Object(fields).field("query", question);
  on_stage("retrieval_start", std::string_view(fields).substr(1));
  stage_started_us_ = monotonic_us();
  pipeline().search_question = std::move(question);
  ticket_ = env_.store->retrieve(pipeline().language, query, env_.retrieval_candidates,
                                 [this](std::optional<StoreError> error, std::vector<rag::Passage>& candidates) {
                                   on_retrieved(std::move(error), candidates);
                                 });
}

void Run::on_retrieved(std::optional<StoreError> error, std::vector<rag::Passage>& candidates) {
  ticket_ = 0;
  if (error) {
    finish(RunStatus::kError, error->code, error->message);
    return;
  }
  {
    std::string fields;
    json::Object(fields).field("count", static_cast<uint64_t>(candidates.size())).field("ms", elapsed_ms(stage_started_us_));
    on_stage("retrieval_complete", std::string_view(fields).substr(1));
  }
  {
    std::string fields;
    json::Object(fields).field("count", static_cast<uint64_t>(candidates.size()));
    on_stage("reranking_start", std::string_view(fields).substr(1));
  }
  uint64_t rerank_started = monotonic_us();
  std::vector<rag::Ranked> ranked =
      rag::rerank(pipeline().search_question, earlier_user_messages(), candidates, env_.rerank_keep, rag::kMinRerankScore);
  // Passages accumulate over the run (a tool may search again); [n] always means pipeline().passages[n-1].
  size_t first_new = pipeline().passages.size();
  std::vector<size_t> found;  // citation numbers of this search's passages
  for (const rag::Ranked& r : ranked) {
    rag::Passage& passage = candidates[r.index];
    auto same = std::find_if(pipeline().passages.begin(), pipeline().passages.end(),
                             [&](const rag::Passage& p) { return p.chunk_id == passage.chunk_id; });
    if (same != pipeline().passages.end()) {
      found.push_back(static_cast<size_t>(same - pipeline().passages.begin()) + 1);
      continue;
    }
    pipeline().passages.push_back(std::move(passage));
    found.push_back(pipeline().passages.size());
  }
  {
    std::string fields;
    json::Object(fields).field("kept", static_cast<uint64_t>(ranked.size())).field("ms", elapsed_ms(rerank_started));
    on_stage("reranking_complete", std::string_view(fields).substr(1));
  }
  if (pipeline().passages.size() > first_new) {
    std::vector<std::string> terms = rag::terms(pipeline().search_question);
    for (size_t i = first_new; i < pipeline().passages.size(); ++i) {
      if (i > 0) citations_json_.pop_back();  // reopen the list: "[…]" → "[…"
      else citations_json_ = "[";
      if (i > 0) citations_json_.push_back(',');
      json::Object(citations_json_)
          .field("index", static_cast<uint64_t>(i + 1))
          .field("title", pipeline().passages[i].title)
          .field("source", pipeline().passages[i].source)
          .field("snippet", rag::make_snippet(pipeline().passages[i], terms, rag::kDefaultSnippetChars))
          .close();
      citations_json_.push_back(']');
    }
    // Every citations event lists all sources of the run so far.
    std::string fields("\"citations\":");
    fields.append(citations_json_);
    on_stage("citations", fields);
  }
  if (!pipeline().tool_done) {
    start_generation();
    return;
  }
  // The result of search_knowledge_base: the passages found, numbered as cited.
  std::string result;
  if (found.empty()) result = "No relevant passages were found in the knowledge base.";
  for (size_t number : found) {
    const rag::Passage& p = pipeline().passages[number - 1];
    result += "[" + std::to_string(number) + "] " + p.title;
    if (!p.heading.empty() && p.heading != p.title) result += " — " + p.heading;
    result += "\n" + p.content + "\n\n";
  }
  llm::ToolRunner::Done done = std::move(pipeline().tool_done);
  pipeline().tool_done = nullptr;
  done(std::move(result));
}

// ---------------------------------------------------------------------------------------------------
// Tools offered to the model (openai provider)

std::string Run::tool_definitions() const {
  if (!env_.store) return {};
  return R"([{"type":"function","function":{"name":"search_knowledge_base",)"
         R"("description":"Search the knowledge base for passages relevant to a query. Returns numbered passages to cite as [n].",)"
         R"("parameters":{"type":"object","properties":{"query":{"type":"string","description":"What to search for"}},"required":["query"]}}}])";
}

void Run::run_tool(std::string_view name, std::string_view arguments, llm::ToolRunner::Done done) {
  pipeline().tool_done = std::move(done);
  if (name != "search_knowledge_base" || !env_.store) {
    std::string unknown = "Unknown tool: ";
    unknown.append(name);
    env_.wheel.schedule(pipeline().tool_timer, env_.wheel.now_ms());
    pipeline().tool_result = std::move(unknown);
    return;
  }
  // {"query": "..."}; a model that sends something else searches for the user's message.
  std::string query_text = message_;
  simdjson::dom::parser parser;
  simdjson::dom::element args;
  if (!parser.parse(arguments.data(), arguments.size()).get(args)) {
    if (std::string_view q; !args["query"].get(q) && !q.empty()) query_text = q;
  }
  std::string query = rag::search_query(query_text, {});
  if (query.empty()) {
    pipeline().tool_result = "The query has no searchable words.";
    env_.wheel.schedule(pipeline().tool_timer, env_.wheel.now_ms());
    return;
  }
  search(query_text, query);
}

void Run::cancel_tool() {
  if (!pipeline_) return;
  pipeline_->tool_done = nullptr;
  env_.wheel.cancel(pipeline_->tool_timer);
  if (ticket_ != 0) {
    env_.store->cancel(ticket_);
    ticket_ = 0;
  }
}

void Run::on_tool_timer(void* opaque) {
  auto* self = static_cast<Run*>(opaque);
  Pipeline& pipeline = self->pipeline();
  llm::ToolRunner::Done done = std::move(pipeline.tool_done);
  pipeline.tool_done = nullptr;
  if (done) done(std::move(pipeline.tool_result));
}

void Run::start_generation() {
  if (status_ != RunStatus::kRunning) return;
  llm::RunContext context;
  context.run_id = std::string_view(id_text_, sizeof id_text_);
  context.session_id = std::string_view(session_text_, sizeof session_text_);
  context.message = message_;
  context.history = pipeline_ ? &pipeline_->history : nullptr;
  context.passages = pipeline_ ? &pipeline_->passages : nullptr;
  context.tools = static_cast<llm::ToolRunner*>(this);
  generation_ = env_.provider.start(context, static_cast<llm::EventSink&>(*this));
}

double Run::elapsed_ms(uint64_t since_us) const {
  return static_cast<double>(monotonic_us() - since_us) / 1000.0;
}

// ---------------------------------------------------------------------------------------------------
// Provider events

void Run::on_stage(std::string_view type, std::string_view fields_json) {
  if (status_ != RunStatus::kRunning) return;
  if (stream_) stream_->send(type, fields_json);
  if (type == "citations") {
    // The latest list is the answer's sources (stored with the message, returned by POST /chat).
    constexpr std::string_view kPrefix = "\"citations\":";
    if (fields_json.substr(0, kPrefix.size()) == kPrefix) citations_json_ = fields_json.substr(kPrefix.size());
  }
  if (type == "tool_call" && pipeline().tool_calls_json.size() < 64 * 1024) {
    // Kept for POST /chat's answer.
    pipeline().tool_calls_json.push_back(pipeline().tool_calls_json.empty() ? '[' : ',');
    pipeline().tool_calls_json.push_back('{');
    pipeline().tool_calls_json.append(fields_json);
    pipeline().tool_calls_json.push_back('}');
  }
}


void Run::on_token(std::string_view text) {
  if (status_ != RunStatus::kRunning) return;
  ++tokens_;
  last_token_ms_ = env_.wheel.now_ms();
  uint64_t now_us = monotonic_us();
  if (first_token_us_ == 0) {
    first_token_us_ = now_us;
    obs::observe_ttft(static_cast<double>(first_token_us_ - started_us_) / 1e6);
  } else {
    obs::observe(obs::Histogram::kTokenGap, now_us - last_token_us_);
  }
  last_token_us_ = now_us;
  if (stream_) {
    stream_->send_token(text);
    // Kept for persistence; without a database only POST /chat needs the text.
    if (env_.store) answer_.append(text);
  } else {
    if (answer_.size() + text.size() > kMaxJsonAnswerBytes) {
      finish(RunStatus::kError, "upstream", "The answer is too long for POST /chat; use /chat/stream.");
      return;
    }
    answer_.append(text);
  }
}

void Run::on_complete() { finish(RunStatus::kComplete); }

void Run::on_usage(std::string_view usage_json) { pipeline().usage_json = usage_json; }

void Run::on_error(std::string_view code, std::string_view message) {
  finish(code == "timeout" ? RunStatus::kTimeout : RunStatus::kError, code, message);
}

// ---------------------------------------------------------------------------------------------------
// Client side

void Run::on_pressure(bool over_cap) {
  if (status_ != RunStatus::kRunning || !generation_) return;
  paused_ = over_cap;
  if (over_cap) {
    generation_->pause();
  } else {
    last_token_ms_ = env_.wheel.now_ms();  // our own pause is not a stalled model
    generation_->resume();
  }
}

void Run::on_slow_consumer() {
  finish(RunStatus::kError, "slow_consumer", "The connection was too slow to receive the answer.");
}

void Run::on_client_gone() { finish(RunStatus::kDisconnected); }

void Run::on_connection_lost() {
  connection_ = nullptr;
  finish(RunStatus::kDisconnected);
}

void Run::cancel() { finish(RunStatus::kCancelled); }

void Run::shut_down() {
  finish(RunStatus::kError, "shutdown", "The server is restarting. Please send your message again.");
}

// ---------------------------------------------------------------------------------------------------
// Timeouts: one timer per run at the earliest of the run deadline and the token-gap deadline; the
// token-gap deadline moves with every token without touching the wheel (checked when it fires).

void Run::arm_watchdog() {
  uint64_t deadline = UINT64_MAX;
  if (env_.run_timeout_ms > 0) deadline = started_us_ / 1000 + env_.run_timeout_ms;
  if (env_.token_timeout_ms > 0 && !paused_) deadline = std::min(deadline, last_token_ms_ + env_.token_timeout_ms);
  if (deadline != UINT64_MAX) env_.wheel.schedule(watchdog_, deadline);
}

void Run::on_watchdog(void* opaque) {
  auto* self = static_cast<Run*>(opaque);
  uint64_t now = self->env_.wheel.now_ms();
  const RunEnvironment& env = self->env_;
  if (env.run_timeout_ms > 0 && now >= self->started_us_ / 1000 + env.run_timeout_ms) {
    self->finish(RunStatus::kTimeout, "timeout", "The answer took too long and was stopped.");
    return;
  }
  if (env.token_timeout_ms > 0 && !self->paused_ && now >= self->last_token_ms_ + env.token_timeout_ms) {
    self->finish(RunStatus::kTimeout, "timeout", "The language model stopped responding.");
    return;
  }
  self->arm_watchdog();
}

// ---------------------------------------------------------------------------------------------------
// The one way out

void Run::finish(RunStatus status, std::string_view error_code, std::string_view message) {
  if (status_ != RunStatus::kRunning) return;
  status_ = status;
  env_.wheel.cancel(watchdog_);
  if (pipeline_) {
    env_.wheel.cancel(pipeline_->tool_timer);
    pipeline_->tool_done = nullptr;
  }
  if (generation_) generation_->cancel();  // no work goes on for an answer nobody will read
  if (ticket_ != 0 && starting_) {
    // The start statement may commit the run's row: let it, then write the end.
    env_.store->abandon_start(ticket_, make_end(error_code));
    ticket_ = 0;
  } else if (ticket_ != 0) {
    env_.store->cancel(ticket_);  // no query goes on either
    ticket_ = 0;
  }
  env_.registry.remove(id_);
  obs::gauge_add(obs::Gauge::kActiveRuns, -1);
  if (env_.store && persisted_) {
    bool client_waits = streaming_ ? stream_ && stream_->attached() : connection_ != nullptr;
    if (status == RunStatus::kComplete && client_waits) {
      // `done` means "saved": the terminal event waits for the commit (and carries the message id);
      // a database that went away turns it into a clear error, and the write is retried.
      env_.store->finish_run(make_end(error_code), [this](std::optional<StoreError> error, int64_t message_id) {
        if (error) end(RunStatus::kError, error->code, error->message, 0);
        else end(RunStatus::kComplete, {}, {}, message_id);
      });
      return;
    }
    env_.store->finish_run(make_end(error_code));
  }
  end(status, error_code, message, 0);
}

void Run::end(RunStatus shown, std::string_view error_code, std::string_view message, int64_t message_id) {
  obs::add(status_counter(shown));
  if (!error_code.empty()) obs::add(error_counter(error_code));
  if (streaming_) {
    obs::gauge_add(obs::Gauge::kActiveStreams, -1);
    write_stream_end(shown, error_code, message, message_id);
  } else if (mode_ == RunMode::kOpenAIJson) {
    write_openai_json_end(shown, error_code, message);
  } else {
    write_json_end(shown, error_code, message, message_id);
  }
  if (log::enabled(log::Level::kDebug)) {
    log::debug("run finished", log::field("run_id", std::string_view(id_text_, sizeof id_text_)) + "," +
                                   log::field("tokens", static_cast<long long>(tokens_)));
  }
  env_.graveyard.bury(this);
}

// The assistant message is stored whatever the ending — with its status and the text produced so far
// — once the run's row exists (the start statement succeeded).
RunEnd Run::make_end(std::string_view error_code) const {
  RunEnd end;
  end.run_id = id_;
  end.session_id = session_id_;
  end.answer = answer_;
  switch (status_) {
    case RunStatus::kComplete: end.run_status = "complete"; end.message_status = "complete"; break;
    case RunStatus::kCancelled: end.run_status = "cancelled"; end.message_status = "cancelled"; break;
    case RunStatus::kDisconnected: end.run_status = "disconnected"; end.message_status = "cancelled"; break;
    case RunStatus::kTimeout: end.run_status = "timeout"; end.message_status = "timeout"; end.error_code = "timeout"; break;
    default: end.run_status = "error"; end.message_status = "error"; end.error_code = error_code; break;
  }
  end.citations_json = citations_json_;
  end.tokens = tokens_;
  if (first_token_us_) end.first_token_ms = static_cast<double>(first_token_us_ - started_us_) / 1000.0;
  end.duration_ms = elapsed_ms(started_us_);
  return end;
}

void Run::write_stream_end(RunStatus status, std::string_view error_code, std::string_view message,
                           int64_t message_id) {
  if (!stream_ || !stream_->attached()) return;
  std::string fields;
  json::Object object(fields);
  std::string_view type;
  switch (status) {
    case RunStatus::kComplete:
      type = "done";
      object.field("status", "complete")
          .field("tokens", tokens_)
          .field("ttft_ms", first_token_us_ ? static_cast<double>(first_token_us_ - started_us_) / 1000.0 : 0.0)
          .field("duration_ms", elapsed_ms(started_us_));
      if (message_id > 0) object.field("message_id", message_id);
      if (pipeline_ && !pipeline_->usage_json.empty()) object.raw("usage", pipeline_->usage_json);
      break;
    case RunStatus::kCancelled:
      type = "cancelled";
      object.field("reason", "cancel_request").field("tokens", tokens_);
      break;
    case RunStatus::kDisconnected:
      stream_->abandon();
      return;
    default:
      type = "error";
      object.field("code", error_code).field("message", message).field("tokens", tokens_);
  }
  std::string usage = include_usage_ ? usage_for_client() : std::string();
  sse::StreamEnd end{type, std::string_view(fields).substr(1), error_code, message, usage};
  stream_->close(end, error_code == "slow_consumer");
}

// The model's own usage when it reported one, else what chatstream counted.
std::string Run::usage_for_client() const {
  if (pipeline_ && !pipeline_->usage_json.empty()) return pipeline_->usage_json;
  std::string usage;
  json::Object(usage)
      .field("prompt_tokens", 0)
      .field("completion_tokens", tokens_)
      .field("total_tokens", tokens_)
      .close();
  return usage;
}

void Run::write_openai_json_end(RunStatus status, std::string_view error_code, std::string_view message) {
  http::Connection* connection = connection_;
  connection_ = nullptr;
  if (!connection) return;
  connection->detach(static_cast<http::ResponseProducer*>(this));
  if (status == RunStatus::kDisconnected) return;
  std::string session_header = "X-Chatstream-Session-Id: ";
  session_header.append(session_text_, sizeof session_text_);
  session_header += "\r\n";
  if (status != RunStatus::kComplete && status != RunStatus::kCancelled) {
    int http_status = http_status_for(error_code);
    connection->respond(http_status, "application/json", http::error_body(http_status, error_code, message),
                        session_header + (http_status == 503 ? "Retry-After: 1\r\n" : ""));
    return;
  }
  std::string choice;
  std::string assistant;
  json::Object(assistant).field("role", "assistant").field("content", answer_).close();
  json::Object(choice).field("index", 0).raw("message", assistant).field("finish_reason", "stop").close();
  std::string body;
  json::Object object(body);
  object.field("id", "chatcmpl-" + std::string(id_text_, sizeof id_text_))
      .field("object", "chat.completion")
      .field("created", static_cast<int64_t>(time(nullptr)))
      .field("model", "chatstream")
      .raw("choices", "[" + choice + "]")
      .raw("usage", usage_for_client())
      .field("session_id", std::string_view(session_text_, sizeof session_text_));
  object.close();
  connection->respond(200, "application/json", body, session_header);
}

void Run::write_json_end(RunStatus status, std::string_view error_code, std::string_view message,
                         int64_t message_id) {
  http::Connection* connection = connection_;
  connection_ = nullptr;
  if (!connection) return;
  connection->detach(static_cast<http::ResponseProducer*>(this));
  if (status == RunStatus::kDisconnected) return;
  if (status != RunStatus::kComplete && status != RunStatus::kCancelled) {
    int http_status = http_status_for(error_code);
    connection->respond(http_status, "application/json", http::error_body(http_status, error_code, message),
                        http_status == 503 ? "Retry-After: 1\r\n" : "");
    return;
  }
  std::string body;
  json::Object object(body);
  object.field("run_id", std::string_view(id_text_, sizeof id_text_))
      .field("session_id", std::string_view(session_text_, sizeof session_text_))
      .field("status", status == RunStatus::kComplete ? "complete" : "cancelled")
      .field("answer", answer_)
      .field("tokens", tokens_)
      .field("ttft_ms", first_token_us_ ? static_cast<double>(first_token_us_ - started_us_) / 1000.0 : 0.0)
      .field("duration_ms", elapsed_ms(started_us_))
      .raw("citations", citations_json_)
      .raw("tool_calls", !pipeline_ || pipeline_->tool_calls_json.empty() ? std::string("[]")
                                                                          : pipeline_->tool_calls_json + "]");
  if (message_id > 0) object.field("message_id", message_id);
  object.close();
  connection->respond(200, "application/json", body);
}

}  // namespace chatstream::chat
