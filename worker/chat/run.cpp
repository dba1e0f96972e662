#include "chat/run.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

#include <simdjson.h>

#include "chat/run_registry.hpp"
#include "core/clock.hpp"
#include "json/writer.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "rag/reranker.hpp"
#include "rag/search_query.hpp"
#include "rag/snippet.hpp"
#include "rag/text.hpp"
#include "sse/framing.hpp"

namespace chatstream::chat {

namespace {
// POST /chat keeps the whole answer in memory; beyond this the client must stream.
constexpr size_t kMaxJsonAnswerBytes = 8 << 20;

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
  Run& run = env.registry.add(std::unique_ptr<Run>(new Run(env, connection, std::move(request), mode)));
  run.begin();
}

Run::Run(RunEnvironment& env, http::Connection& connection, ChatRequest request, RunMode mode)
    : env_(env),
      streaming_(is_streaming(mode)),
      continues_session_(request.session_id.has_value()),
      multitask_(request.multitask),
      on_disconnect_(request.on_disconnect),
      id_(Uuid::random()),
      session_id_(request.session_id ? *request.session_id : Uuid::random()),
      user_id_(std::move(request.user_id)),
      message_(std::move(request.message)),
      watchdog_(&Run::on_watchdog, this),
      started_us_(monotonic_us()),
      started_ms_(env.wheel.now_ms()),
      last_token_ms_(env.wheel.now_ms()) {
  // An OpenAI-style request carries its own conversation; a stored session's history replaces it.
  if (!request.prior_turns.empty()) pipeline().history = std::move(request.prior_turns);
  std::string text = id_.to_string();
  std::memcpy(id_text_, text.data(), sizeof id_text_);
  text = session_id_.to_string();
  std::memcpy(session_text_, text.data(), sizeof session_text_);
  writer_ = make_run_writer(mode, connection, env.wheel, env.stream_settings, static_cast<sse::StreamObserver&>(*this),
                            WriterSettings{request.include_usage, std::string_view(id_text_, sizeof id_text_)});
  log_ = writer_->event_log();
  if (log_) log_->set_watcher(static_cast<sse::LogWatcher*>(this));
}

void Run::begin() {
  assert(env_.registry.find(id_) == this);
  obs::gauge_add(obs::Gauge::kActiveRuns, 1);
  if (streaming_) obs::gauge_add(obs::Gauge::kActiveStreams, 1);
  // A run that continues a conversation may find it busy and be refused with 409: its stream opens
  // once it has started (one round trip later). An enqueued one opens at once and says `queued`.
  bool may_be_refused = env_.store && continues_session_ && multitask_ != Multitask::kEnqueue;
  if (!may_be_refused) open();
  arm_watchdog();
  if (!env_.store) {
    start_generation();
    return;
  }
  send_start();
}

void Run::open() {
  if (opened_) return;
  opened_ = true;
  writer_->open(RunOpening{std::string_view(id_text_, sizeof id_text_),
                           std::string_view(session_text_, sizeof session_text_), env_.stream_settings.heartbeat_ms});
}

// The user message is stored before any generation starts; the same round trip brings the session's
// recent history for the provider — or says that the session is busy with another run.
void Run::send_start() {
  RunStart start{id_, session_id_, message_, std::string(env_.provider.name()), env_.history_messages,
                 env_.history_chars, user_id_, log_ != nullptr};
  starting_ = true;
  ticket_ = env_.store->start_run(start, [this](Result<RunStarted>& started) { on_started(started); });
}

void Run::on_busy() {
  ticket_ = env_.store->running_run(session_id_, [this](Result<std::optional<Uuid>> running) {
    ticket_ = 0;
    if (!running) fail(running.error());
    else if (!*running) send_start();  // it ended in the meantime
    else on_session_busy(**running);
  });
}

void Run::on_session_busy(const Uuid& running_run) {
  pipeline().busy_run = running_run;
  std::string running_text = running_run.to_string();
  switch (multitask_) {
    case Multitask::kReject: {
      std::string fields;
      json::Object(fields).field("run_id", running_text);
      finish(RunStatus::kError, Errc::kRunInProgress,
             "This conversation is still answering another message; resume that run or wait for it to end.",
             std::string_view(fields).substr(1));
      return;
    }
    case Multitask::kInterrupt:
      if (Run* running = env_.registry.find(running_run)) {
        running->cancel("interrupted");
      } else {
        env_.store->cancel_everywhere(running_run, user_id_, "interrupted", [](Status) {});
      }
      break;
    case Multitask::kEnqueue:
      if (!queued_announced_) {
        queued_announced_ = true;
        std::string fields;
        json::Object(fields).field("run_id", running_text);
        on_stage("queued", std::string_view(fields).substr(1));
      }
      break;
  }
  wait_for_session();
}

// The end of the running run is announced by PostgreSQL (SessionWaiters); the timer is the fallback.
constexpr uint64_t kSessionRetryMs = 1000;

void Run::wait_for_session() {
  waiting_session_ = true;
  env_.waiters.add(session_id_, static_cast<SessionWaiter*>(this));
  env_.wheel.schedule_in(pipeline().wait_timer, kSessionRetryMs);
}

void Run::on_session_free() {
  if (!waiting_session_) return;
  waiting_session_ = false;
  env_.wheel.cancel(pipeline().wait_timer);
  send_start();
}

void Run::on_wait_timer(void* opaque) {
  auto* self = static_cast<Run*>(opaque);
  self->env_.waiters.remove(self->session_id_, static_cast<SessionWaiter*>(self));
  self->on_session_free();
}

void Run::on_started(Result<RunStarted>& started) {
  ticket_ = 0;
  starting_ = false;
  if (!started) {
    fail(started.error());
    return;
  }
  if (started->busy) {
    on_busy();
    return;
  }
  persisted_ = true;
  answer_message_id_ = started->answer_message_id;
  open();
  pipeline().language = std::move(started->language);
  if (!started->history.empty()) pipeline().history = std::move(started->history);
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
  ticket_ = env_.store->retrieve(pipeline().language, query, env_.retrieval_candidates, env_.rerank_keep,
                                 [this](Result<std::vector<rag::Passage>>& candidates) { on_retrieved(candidates); });
}

void Run::on_retrieved(Result<std::vector<rag::Passage>>& found_passages) {
  ticket_ = 0;
  if (!found_passages) {
    fail(found_passages.error());
    return;
  }
  std::vector<rag::Passage>& candidates = *found_passages;
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
  writer_->stage(type, fields_json);
  if (type == "citations") {
    // The latest list is the answer's sources (stored with the message, returned by POST /chat).
    constexpr std::string_view kPrefix = "\"citations\":";
    if (fields_json.substr(0, kPrefix.size()) == kPrefix) citations_json_ = fields_json.substr(kPrefix.size());
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
  if (!streaming_ && answer_.size() + text.size() > kMaxJsonAnswerBytes) {
    finish(RunStatus::kError, Errc::kUpstream, "The answer is too long for POST /chat; use /chat/stream.");
    return;
  }
  writer_->token(text);
  // Kept for persistence and for the answers written whole; a stream without a database needs none.
  if (env_.store || !streaming_) answer_.append(text);
}

void Run::on_complete() { finish(RunStatus::kComplete); }

void Run::on_usage(std::string_view usage_json) { pipeline().usage_json = usage_json; }

void Run::on_error(Errc code, std::string_view message) {
  finish(code == Errc::kTimeout ? RunStatus::kTimeout : RunStatus::kError, code, message);
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
  finish(RunStatus::kError, Errc::kSlowConsumer, "The connection was too slow to receive the answer.");
}

void Run::on_client_gone() {
  if (!log_) {
    finish(RunStatus::kDisconnected);
    return;
  }
  if (paused_ && generation_ && status_ == RunStatus::kRunning) {
    // The pressure came from the client that left; the log takes the rest.
    paused_ = false;
    last_token_ms_ = env_.wheel.now_ms();
    generation_->resume();
  }
  check_readers();
}

void Run::on_log_readers_changed(size_t) { check_readers(); }

void Run::check_readers() {
  if (status_ != RunStatus::kRunning) return;
  if (writer_->attached() || log_->readers() > 0) {
    if (pipeline_) env_.wheel.cancel(pipeline_->grace_timer);
    return;
  }
  if (on_disconnect_ == OnDisconnect::kContinue) return;  // within the run timeout
  if (env_.disconnect_grace_ms == 0) {
    finish(RunStatus::kDisconnected);
    return;
  }
  if (!pipeline().grace_timer.scheduled()) env_.wheel.schedule_in(pipeline().grace_timer, env_.disconnect_grace_ms);
}

void Run::on_grace_expired(void* opaque) {
  auto* self = static_cast<Run*>(opaque);
  if (self->writer_->attached() || (self->log_ && self->log_->readers() > 0)) return;
  obs::add(obs::Counter::kDisconnectGraceExpired);
  self->finish(RunStatus::kDisconnected);
}

void Run::cancel(std::string_view reason) {
  cancel_reason_ = reason;
  finish(RunStatus::kCancelled);
}

void Run::shut_down() {
  finish(RunStatus::kError, Errc::kShutdown, "The server is restarting. Please send your message again.");
}

// ---------------------------------------------------------------------------------------------------
// Timeouts: one timer per run at the earliest of the run deadline and the token-gap deadline; the
// token-gap deadline moves with every token without touching the wheel (checked when it fires).

void Run::arm_watchdog() {
  uint64_t deadline = UINT64_MAX;
  if (env_.run_timeout_ms > 0) deadline = started_ms_ + env_.run_timeout_ms;
  if (env_.token_timeout_ms > 0 && !paused_) deadline = std::min(deadline, last_token_ms_ + env_.token_timeout_ms);
  if (deadline != UINT64_MAX) env_.wheel.schedule(watchdog_, deadline);
}

void Run::on_watchdog(void* opaque) {
  auto* self = static_cast<Run*>(opaque);
  uint64_t now = self->env_.wheel.now_ms();
  const RunEnvironment& env = self->env_;
  if (env.run_timeout_ms > 0 && now >= self->started_ms_ + env.run_timeout_ms) {
    self->finish(RunStatus::kTimeout, Errc::kTimeout, "The answer took too long and was stopped.");
    return;
  }
  if (env.token_timeout_ms > 0 && !self->paused_ && now >= self->last_token_ms_ + env.token_timeout_ms) {
    self->finish(RunStatus::kTimeout, Errc::kTimeout, "The language model stopped responding.");
    return;
  }
  self->arm_watchdog();
}

// ---------------------------------------------------------------------------------------------------
// The one way out

void Run::finish(RunStatus status, Errc error, std::string_view message, std::string_view extra_fields) {
  if (status_ != RunStatus::kRunning) return;
  assert(status != RunStatus::kRunning);
  status_ = status;
  env_.wheel.cancel(watchdog_);
  final_duration_ms_ = elapsed_ms(started_us_);
  if (log_) writer_->flush_tokens();  // every token is in the log before the end is stored
  if (pipeline_) {
    env_.wheel.cancel(pipeline_->tool_timer);
    env_.wheel.cancel(pipeline_->wait_timer);
    env_.wheel.cancel(pipeline_->grace_timer);
    pipeline_->tool_done = nullptr;
  }
  if (waiting_session_) {
    waiting_session_ = false;
    env_.waiters.remove(session_id_, static_cast<SessionWaiter*>(this));
  }
  if (generation_) generation_->cancel();  // no work goes on for an answer nobody will read
  if (ticket_ != 0 && starting_) {
    // The start statement may commit the run's row: let it, then write the end.
    env_.store->abandon_start(ticket_, make_end(error, message));
    ticket_ = 0;
  } else if (ticket_ != 0) {
    env_.store->cancel(ticket_);  // no query goes on either
    ticket_ = 0;
  }
  env_.registry.finished(id_);
  obs::gauge_add(obs::Gauge::kActiveRuns, -1);
  if (env_.store && persisted_) {
    if (status == RunStatus::kComplete && (writer_->attached() || log_)) {
      // `done` means "saved": the terminal event waits for the commit (and carries the message id);
      // a database that went away turns it into a clear error, and the write is retried.
      env_.store->finish_run(make_end(error), [this](Result<int64_t> message_id) {
        if (!message_id) end(RunStatus::kError, message_id.error().code, message_id.error().message, 0);
        else end(RunStatus::kComplete, Errc::kInternal, {}, *message_id);
      });
      return;
    }
    env_.store->finish_run(make_end(error, message));
  }
  end(status, error, message, 0, extra_fields);
}

void Run::end(RunStatus shown, Errc error, std::string_view message, int64_t message_id,
              std::string_view extra_fields) {
  assert(status_ != RunStatus::kRunning && shown != RunStatus::kRunning);
  bool failed = shown == RunStatus::kError || shown == RunStatus::kTimeout;
  obs::add(status_counter(shown));
  if (failed) obs::count_run_error(error);
  if (streaming_) obs::gauge_add(obs::Gauge::kActiveStreams, -1);
  RunOutcome outcome = this->outcome(shown, error, message, message_id);
  if (!opened_ && failed) {
    writer_->refuse(error, message, extra_fields);  // nothing was streamed yet: a plain HTTP error
  } else {
    open();
    writer_->end(outcome);
  }
  if (log::enabled(log::Level::kDebug)) {
    log::debug("run finished", log::field("run_id", std::string_view(id_text_, sizeof id_text_)) + "," +
                                   log::field("tokens", static_cast<long long>(tokens_)));
  }
  env_.graveyard.bury(env_.registry.release(this).release());
}

RunOutcome Run::outcome(RunStatus shown, Errc error, std::string_view message, int64_t message_id) const {
  RunOutcome outcome;
  outcome.status = shown;
  outcome.error = error;
  outcome.message = message;
  outcome.message_id = message_id;
  outcome.tokens = tokens_;
  outcome.ttft_ms = first_token_us_ ? static_cast<double>(first_token_us_ - started_us_) / 1000.0 : 0.0;
  outcome.duration_ms = final_duration_ms_ >= 0 ? final_duration_ms_ : elapsed_ms(started_us_);
  outcome.answer = answer_;
  outcome.citations_json = citations_json_;
  if (pipeline_) outcome.model_usage = pipeline_->usage_json;
  outcome.cancel_reason = cancel_reason_;
  return outcome;
}

// The assistant message is stored whatever the ending — with its status and the text produced so far
// — once the run's row exists (the start statement succeeded). A resumable run's whole stream goes
// with it, ending with the terminal event its readers get (`done` with the message id allocated at
// the start: the save is what makes it true).
RunEnd Run::make_end(Errc error, std::string_view message) const {
  RunEnd end;
  end.run_id = id_;
  end.session_id = session_id_;
  end.answer = answer_;
  switch (status_) {
    case RunStatus::kComplete: end.run_status = "complete"; end.message_status = "complete"; break;
    case RunStatus::kCancelled: end.run_status = "cancelled"; end.message_status = "cancelled"; break;
    case RunStatus::kDisconnected: end.run_status = "disconnected"; end.message_status = "cancelled"; break;
    case RunStatus::kTimeout: end.run_status = "timeout"; end.message_status = "timeout"; end.error_code = "timeout"; break;
    default: end.run_status = "error"; end.message_status = "error"; end.error_code = error_code(error); break;
  }
  end.citations_json = citations_json_;
  end.tokens = tokens_;
  if (first_token_us_) end.first_token_ms = static_cast<double>(first_token_us_ - started_us_) / 1000.0;
  end.duration_ms = final_duration_ms_ >= 0 ? final_duration_ms_ : elapsed_ms(started_us_);
  end.message_id = answer_message_id_;
  if (log_ && status_ != RunStatus::kRunning) {
    uint64_t terminal_seq = log_->next_seq();
    end.events_from = std::min<uint64_t>(checkpointed_events_, terminal_seq);
    log_->store(end.events_from, terminal_seq, end.events);
    std::string fields;
    std::string_view type = terminal_event(
        outcome(status_, error, message, status_ == RunStatus::kComplete ? answer_message_id_ : 0), fields);
    sse::store_event(end.events, type, fields);
    end.event_count = terminal_seq + 1;
  }
  return end;
}

}  // namespace chatstream::chat
