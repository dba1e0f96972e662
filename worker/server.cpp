#include "server.hpp"

#include <unistd.h>

#include <vector>

#include "llm/extractive_provider.hpp"
#include "llm/openai_provider.hpp"
#include "llm/scripted_provider.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"

namespace chatstream {

namespace {
// How long connections may still take to write their last bytes after the drain deadline ended
// every run.
constexpr uint64_t kDrainForceMs = 2000;
}  // namespace

Server::Server(uv_loop_t* loop, const Config& config, int worker_index, const WorkerOrigin& origin)
    : loop_(loop),
      config_(config),
      worker_index_(worker_index),
      wheel_(loop),
      read_buffer_(new char[kReadBufferSize]),
      drain_deadline_(&Server::on_drain_deadline, this),
      drain_force_(&Server::on_drain_force, this),
      drain_writes_(&Server::on_drain_writes, this) {
  limits_.max_header_bytes = config.max_header_bytes;
  limits_.max_body = config.max_body;
  limits_.header_timeout_ms = config.header_timeout_ms;
  limits_.keepalive_timeout_ms = config.keepalive_timeout_ms;
  limits_.send_buffer = config.send_buffer;

  llm::ScriptedSettings scripted;
  scripted.tokens = config.scripted_tokens;
  scripted.text = config.scripted_text;
  scripted.pace.rate = config.scripted_rate;
  scripted.pace.first_token_delay_ms = config.scripted_first_token_delay_ms;
  scripted.pace.fail_after = config.scripted_fail_after;
  if (config.provider == "openai") {
    llm::OpenAISettings openai;
    openai.base_url = config.llm_base_url;
    openai.api_key = config.llm_api_key;
    openai.model = config.llm_model;
    openai.extra_headers = config.llm_headers;
    openai.ca_file = config.llm_ca_file;
    openai.connect_timeout_ms = config.llm_connect_timeout_ms;
    openai.max_retries = config.llm_max_retries;
    openai.max_tool_turns = config.llm_max_tool_turns;
    provider_ = std::make_unique<llm::OpenAIProvider>(loop_, wheel_, openai);
  } else if (config.provider == "extractive") {
    llm::Pace pace;
    pace.rate = config.extractive_rate;
    provider_ = std::make_unique<llm::ExtractiveProvider>(wheel_, pace);
  } else {
    provider_ = std::make_unique<llm::ScriptedProvider>(wheel_, scripted);
  }
  if (config.database_configured) {
    db::PoolSettings settings;
    settings.conninfo = config.database_url;
    settings.size = config.db_pool_size;
    settings.wait_timeout_ms = config.db_wait_timeout_ms;
    settings.prepare_statements = config.db_prepared_statements;
    pool_ = std::make_unique<db::Pool>(loop_, wheel_, graveyard_, settings);
    chat::RunOwner owner{config.instance_id, origin.master_pid, 10 * config.checkpoint_interval_ms,
                         config.resume_retention_ms};
    store_ = std::make_unique<chat::Store>(*pool_, wheel_, owner);
    checkpointer_ = std::make_unique<chat::Checkpointer>(wheel_, *store_, registry_, config.checkpoint_interval_ms,
                                                         origin.lost_worker_pids);
    conversations_ = std::make_unique<chat::Conversations>(*pool_);
  }

  std::unique_ptr<auth::JwtVerifier> verifier;
  if (config.sign_in()) {
    // The master checked the settings at start. Should they fail here all the same (the key file
    // changed since), sign-in stays required and every protected request is refused: closed, not open.
    auto created = auth::JwtVerifier::create(jwt_settings(config));
    if (created) verifier = std::move(*created);
    else log::error("sign-in settings rejected", log::field("error", created.error().message));
  }
  sign_in_ = std::make_unique<auth::SignIn>(config.sign_in(), std::move(verifier));

  sse::StreamSettings stream;
  stream.heartbeat_ms = config.heartbeat_ms;
  stream.flush_ms = config.flush_ms;
  stream.retry_ms = config.retry_ms;
  stream.high_water = config.output_high_water;
  stream.hard_cap = config.output_hard_cap;
  stream.slow_consumer_grace_ms = config.slow_consumer_grace_ms;
  run_env_.reset(new chat::RunEnvironment{wheel_, *provider_, registry_, waiters_, graveyard_, stream,
                                          config.run_timeout_ms, config.token_timeout_ms,
                                          config.disconnect_grace_ms, store_.get(), config.history_messages,
                                          config.history_chars, config.retrieval_candidates, config.rerank_keep});
  if (pool_) {
    pool_->listen(std::string(chat::Store::kCancelChannel),
                  [this](std::string_view, std::string_view payload) { on_cancel_notification(payload); });
    pool_->listen(std::string(chat::Store::kRunEndChannel),
                  [this](std::string_view, std::string_view payload) { on_run_end_notification(payload); });
    publisher_ = std::make_unique<chat::RunPublisher>(*store_, registry_, wheel_);
    followers_ = std::make_unique<chat::RunFollowers>(*store_, wheel_, graveyard_, run_env_->stream_settings);
    pool_->listen(std::string(chat::Store::kFollowChannel),
                  [this](std::string_view, std::string_view payload) { publisher_->on_follow(payload); });
    pool_->listen(std::string(chat::Store::kEventsChannel),
                  [this](std::string_view, std::string_view payload) { followers_->on_events(payload); });
    pool_->on_listening([this] { on_listening_again(); });
    pool_->start();
    checkpointer_->start();
  }

  uv_prepare_init(loop_, &flush_prepare_);
  flush_prepare_.data = this;
  uv_prepare_start(&flush_prepare_, &Server::on_prepare);
  uv_check_init(loop_, &flush_check_);
  flush_check_.data = this;
  uv_check_start(&flush_check_, &Server::on_check);
  uv_signal_init(loop_, &sigterm_);
  sigterm_.data = this;
  uv_signal_start(&sigterm_, &Server::on_signal, SIGTERM);
  uv_signal_init(loop_, &sigint_);
  sigint_.data = this;
  uv_signal_start(&sigint_, &Server::on_signal, SIGINT);
  handler_context_.reset(new handler::HandlerContext{*run_env_, registry_, store_.get(), pool_.get(), *provider_,
                                                     graveyard_, static_cast<const handler::WorkerState&>(*this),
                                                     *sign_in_, conversations_.get(),
                                                     config.max_active_runs_per_user, config.run_timeout_ms,
                                                     followers_.get()});
  handler::add_routes(router_, *handler_context_);
}

Server::~Server() { graveyard_.reclaim(); }

Status Server::listen_on(int fd) {
  int rc;
  uv_stream_t* stream = reinterpret_cast<uv_stream_t*>(&listener_);
  if (config_.listen.is_unix) {
    uv_pipe_init(loop_, &listener_.pipe, 0);
    rc = uv_pipe_open(&listener_.pipe, fd);
  } else {
    uv_tcp_init(loop_, &listener_.tcp);
    rc = uv_tcp_open(&listener_.tcp, fd);
  }
  listener_.tcp.data = this;
  listening_ = true;
  if (rc == 0) rc = uv_listen(stream, 4096, &Server::on_connection);
  if (rc != 0) return Error{std::string("cannot listen: ") + uv_strerror(rc)};
  return {};
}

void Server::run() {
  uv_run(loop_, UV_RUN_DEFAULT);
  // Close whatever the drain left and let libuv finish the close callbacks.
  close_handles();
  uv_run(loop_, UV_RUN_DEFAULT);
}

// ---------------------------------------------------------------------------------------------------
// Connections

void Server::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<Server*>(listener->data);
  if (status < 0) {
    // EMFILE/ENFILE: libuv already sheds the pending connection; say so once per occurrence.
    log::warn("accept failed", log::field("error", uv_strerror(status)));
    return;
  }
  if (self->draining_) return;
  auto* connection = new http::Connection(*self, self->config_.listen.is_unix);
  self->connections_.push_back(connection->connection_node);
  ++self->connection_count_;
  obs::gauge_add(obs::Gauge::kConnections, 1);
  if (connection->accept_from(listener) != 0) return;  // it closed itself
  obs::add(obs::Counter::kConnectionsAccepted);
  if (self->connection_count_ > self->config_.max_connections) {
    obs::add(obs::Counter::kConnectionsRejected);
    connection->reject(Errc::kConnectionLimit, "The server is at its connection limit. Please retry shortly.");
  }
}

void Server::on_connection_closed(http::Connection& connection) {
  connection.connection_node.unlink();
  --connection_count_;
  obs::gauge_add(obs::Gauge::kConnections, -1);
  if (draining_) stop_if_drained();
}

// The flush pass: every connection that has something to write writes it in one writev (and SSE
// streams frame their merged token text). It runs twice per loop turn, each time for what the phase
// before it produced: right before libuv polls (prepare), for the timers' tokens and heartbeats; and
// right after the poll phase (check), for what reading did: a new request's first events, a relayed
// upstream's tokens, a database answer. So a new stream's first bytes leave in the turn that read
// its request, instead of waiting for the next turn's timers and queueing behind their token
// flushes; a connection is still written at most once per phase.
void Server::flush_pass() {
  IntrusiveList batch;
  batch.splice_back(flush_list_);
  while (ListNode* node = batch.pop_front()) {
    static_cast<OwnedNode<http::Connection>*>(node)->owner->flush();
  }
}

void Server::on_prepare(uv_prepare_t* handle) {
  auto* self = static_cast<Server*>(handle->data);
  self->graveyard_.reclaim();
  self->flush_pass();
}

void Server::on_check(uv_check_t* handle) { static_cast<Server*>(handle->data)->flush_pass(); }

// ---------------------------------------------------------------------------------------------------
// Requests (handlers in handler/)

void Server::dispatch(http::Connection& connection, http::Request& request) {
  handler::dispatch(router_, *handler_context_, connection, request);
}

// "<run_id> <reason>" (reason: cancel_request, interrupted).
void Server::on_cancel_notification(std::string_view payload) {
  size_t space = payload.find(' ');
  auto id = Uuid::parse(payload.substr(0, space));
  if (!id) return;
  std::string_view reason = space == std::string_view::npos ? "" : payload.substr(space + 1);
  chat::Run* run = registry_.find(*id);
  if (!run) return;
  run->cancel(reason == "interrupted" ? "interrupted" : "cancel_request");
}

// The listener LISTENs again (at start, or after it reconnected): a cancel NOTIFYed meanwhile was
// lost, but its reason is in the run's row (sql/007): this worker's running runs are looked up.
void Server::on_listening_again() {
  std::vector<chat::Run*> runs = registry_.snapshot();
  if (runs.empty()) return;
  std::vector<Uuid> ids;
  ids.reserve(runs.size());
  for (chat::Run* run : runs) ids.push_back(run->id());
  store_->requested_cancels(ids, [this](Result<std::vector<chat::Store::RequestedCancel>>& found) {
    if (!found) {
      log::warn("could not look up the cancels asked while the listener was away",
                log::field("error", found.error().message));
      return;
    }
    for (const auto& [run_id, reason] : *found) {
      if (chat::Run* run = registry_.find(run_id)) run->cancel(reason == "interrupted" ? "interrupted" : "cancel_request");
    }
  });
}

// "<session_id>": a run of that conversation ended; the runs waiting for it may start.
void Server::on_run_end_notification(std::string_view payload) {
  if (auto session = Uuid::parse(payload)) waiters_.wake(*session);
}

// ---------------------------------------------------------------------------------------------------
// Drain

void Server::on_signal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Server*>(handle->data);
  log::info("worker draining", log::field("signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"));
  self->begin_drain();
}

void Server::begin_drain() {
  if (draining_) return;
  draining_ = true;
  if (listening_) {
    listening_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  }
  for (http::Connection* connection : connection_snapshot()) connection->begin_drain();
  if (config_.drain_timeout_ms == 0) on_drain_deadline(this);
  else wheel_.schedule_in(drain_deadline_, config_.drain_timeout_ms);
  stop_if_drained();
}

void Server::on_drain_deadline(void* opaque) {
  auto* self = static_cast<Server*>(opaque);
  std::vector<chat::Run*> runs = self->registry_.snapshot();
  if (!runs.empty()) log::info("drain deadline: ending runs", log::field("runs", static_cast<long long>(runs.size())));
  for (chat::Run* run : runs) run->shut_down();
  self->wheel_.schedule_in(self->drain_force_, kDrainForceMs);
}

void Server::on_drain_force(void* opaque) {
  auto* self = static_cast<Server*>(opaque);
  for (http::Connection* connection : self->connection_snapshot()) connection->close();
}

// A copy of the connection list: draining or closing a connection unlinks it from the list.
std::vector<http::Connection*> Server::connection_snapshot() {
  std::vector<http::Connection*> all;
  all.reserve(static_cast<size_t>(connection_count_));
  IntrusiveList kept;
  while (ListNode* node = connections_.pop_front()) {
    all.push_back(static_cast<OwnedNode<http::Connection>*>(node)->owner);
    kept.push_back(*node);
  }
  connections_.splice_back(kept);
  return all;
}

// How long a draining worker waits for its last conversation writes once every connection is gone
// (a database that is down keeps them pending; they are then reported lost, not silently dropped).
constexpr uint64_t kDrainWritesMs = 5000;

void Server::stop_if_drained() {
  if (connection_count_ > 0) return;
  if (registry_.size() > 0) {
    // Runs nobody is connected to (in disconnect grace, or "on_disconnect": "continue") go on: they
    // end by themselves, or at the drain deadline, and are stored. A resume may still follow them
    // from another worker meanwhile.
    if (!drain_writes_.scheduled()) wheel_.schedule_in(drain_writes_, 20);
    return;
  }
  if ((store_ && store_->busy()) || (publisher_ && publisher_->busy())) {
    if (writes_deadline_ms_ == 0) writes_deadline_ms_ = wheel_.now_ms() + kDrainWritesMs;
    if (wheel_.now_ms() < writes_deadline_ms_) {
      wheel_.schedule_in(drain_writes_, 20);
      return;
    }
  }
  close_handles();
}

void Server::on_drain_writes(void* opaque) { static_cast<Server*>(opaque)->stop_if_drained(); }

void Server::close_handles() {
  if (handles_closed_) return;
  handles_closed_ = true;
  graveyard_.reclaim();
  if (listening_) {
    listening_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  }
  wheel_.cancel(drain_deadline_);
  wheel_.cancel(drain_force_);
  wheel_.cancel(drain_writes_);
  if (checkpointer_) checkpointer_->stop();
  if (pool_) pool_->close();
  provider_->close();
  wheel_.close();
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_prepare_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_check_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
}

// ---------------------------------------------------------------------------------------------------

int run_worker(const Config& config, int listen_fd, int worker_index, const WorkerOrigin& origin) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  int status = 0;
  {
    Server server(&loop, config, worker_index, origin);
    Status listening = server.listen_on(listen_fd);
    if (!listening) {
      log::error("worker cannot serve", log::field("error", listening.error().message));
      return 1;
    }
    log::info("worker ready", log::field("worker", static_cast<long long>(worker_index)) + "," +
                                  log::field("listen", config.listen.describe()));
    server.run();
  }
  uv_loop_close(&loop);
  log::info("worker exited", log::field("worker", static_cast<long long>(worker_index)));
  return status;
}

}  // namespace chatstream
