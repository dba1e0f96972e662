#include "db/pg_connection.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <functional>

#include "obs/log.hpp"

namespace chatstream::db {

namespace {
constexpr uint64_t kFirstBackoffMs = 100;
constexpr uint64_t kMaxBackoffMs = 5000;

std::string trim_message(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}
}  // namespace

struct PgConnection::Poll {
  uv_poll_t handle;
  PgConnection* owner;
};

// PQcancel blocks (it opens a connection to the server): it runs on libuv's thread pool. The work
// request owns itself and is freed in its after-work callback; `owner` is cleared if the connection
// closes first.
struct PgConnection::CancelWork {
  uv_work_t work;
  PGcancel* cancel;
  PgConnection* owner;
};

void PgConnection::run_cancel(uv_work_t* work) {
  auto* job = static_cast<CancelWork*>(work->data);
  char error[256];
  PQcancel(job->cancel, error, sizeof error);
}

PgConnection::PgConnection(uv_loop_t* loop, TimerWheel& wheel, Graveyard& graveyard, std::string conninfo,
                           Observer& observer)
    : loop_(loop),
      wheel_(wheel),
      graveyard_(graveyard),
      conninfo_(std::move(conninfo)),
      observer_(observer),
      retry_timer_(&PgConnection::on_retry, this) {}

void PgConnection::on_cancel_finished(uv_work_t* work, int) {
  auto* job = static_cast<CancelWork*>(work->data);
  PQfreeCancel(job->cancel);
  if (job->owner) job->owner->on_cancel_done(job);
  delete job;
}

void PgConnection::start() {
  begin_connect();
}

void PgConnection::retry_now() {
  if (state_ != State::kDisconnected || !retry_timer_.scheduled()) return;
  wheel_.cancel(retry_timer_);
  begin_connect();
}

void PgConnection::begin_connect() {
  if (state_ == State::kClosed) return;
  state_ = State::kConnecting;
  prepared_.clear();  // a new server session knows none of them
  conn_ = PQconnectStart(conninfo_.c_str());
  if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
    fail(conn_ ? trim_message(PQerrorMessage(conn_)) : "out of memory");
    return;
  }
  PQsetNoticeReceiver(conn_, &PgConnection::on_notice, nullptr);
  // libpq starts by wanting to write (the startup packet).
  want_write_ = true;
  watch(UV_WRITABLE);
}

void PgConnection::watch(int events) {
  int fd = PQsocket(conn_);
  if (fd < 0) {
    fail("no socket");
    return;
  }
  if (poll_ && polled_fd_ != fd) drop_socket();  // libpq moved to another socket (next host, retry)
  if (!poll_) {
    poll_ = new Poll;
    poll_->owner = this;
    uv_poll_init(loop_, &poll_->handle, fd);
    poll_->handle.data = poll_;
    polled_fd_ = fd;
    polled_events_ = 0;
  }
  if (events != polled_events_) {
    uv_poll_start(&poll_->handle, events, &PgConnection::on_poll);
    polled_events_ = events;
  }
}

void PgConnection::drop_socket() {
  if (!poll_) return;
  // uv_close takes the fd out of epoll at once, so PQfinish may close it right after.
  poll_->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_->handle), &PgConnection::on_poll_closed);
  poll_ = nullptr;
  polled_fd_ = -1;
  polled_events_ = 0;
}

void PgConnection::on_poll_closed(uv_handle_t* handle) {
  delete static_cast<Poll*>(handle->data);
}

void PgConnection::on_poll(uv_poll_t* handle, int status, int events) {
  auto* poll = static_cast<Poll*>(handle->data);
  if (poll->owner) poll->owner->on_events(status, events);
}

void PgConnection::on_events(int status, int events) {
  if (state_ == State::kConnecting) {
    // A socket error while connecting (a refused port: POLLERR, which libuv reports as UV_EBADF after
    // stopping the handle) is PQconnectPoll's to read: it tries the conninfo's next address or host,
    // or fails with the real reason.
    continue_connect();
    return;
  }
  if (status < 0) {
    fail(std::string("poll: ") + uv_strerror(status));
    return;
  }
  if ((events & UV_WRITABLE) && want_write_) flush_output();
  if (state_ == State::kClosed || !conn_) return;
  if (events & UV_READABLE) read_input();
}

void PgConnection::continue_connect() {
  // Watch again whatever the socket now is: the handle may have been stopped by an error, and libpq
  // may have moved to the next host on a new socket that got the old one's number.
  polled_events_ = 0;
  switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_READING:
      watch(UV_READABLE);
      return;
    case PGRES_POLLING_WRITING:
      watch(UV_WRITABLE);
      return;
    case PGRES_POLLING_OK:
      break;
    default:
      fail(trim_message(PQerrorMessage(conn_)));
      return;
  }
  PQsetnonblocking(conn_, 1);
  state_ = State::kIdle;
  want_write_ = false;
  backoff_ms_ = 0;
  watch(UV_READABLE);  // always readable: notifications, and a server that goes away
  if (!last_error_.empty()) log::info("database connection restored");
  last_error_.clear();
  observer_.on_connected(*this);
  if (ready()) observer_.on_ready(*this);  // not after a close from inside on_connected
}

void PgConnection::send(const std::string& sql, const Params& params, QueryCallback callback) {
  assert(ready());
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& param : params) values.push_back(param ? param->c_str() : nullptr);
  callback_ = std::move(callback);
  abandoned_ = false;
  state_ = State::kBusy;
  step_ = Step::kQuery;
  if (!PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                         nullptr, 0)) {
    fail(trim_message(PQerrorMessage(conn_)));
    return;
  }
  flush_output();
}

void PgConnection::send(const Statement& statement, Params params, QueryCallback callback) {
  assert(ready());
  callback_ = std::move(callback);
  abandoned_ = false;
  state_ = State::kBusy;
  statement_ = &statement;
  statement_params_ = std::move(params);
  prepared_again_ = false;
  if (find_prepared(statement.name) != prepared_.end()) {
    send_execute();
  } else {
    send_prepare();
  }
}

std::vector<const char*>::const_iterator PgConnection::find_prepared(const char* name) const {
  return std::find_if(prepared_.begin(), prepared_.end(),
                      [name](const char* known) { return std::strcmp(known, name) == 0; });
}

void PgConnection::send_prepare() {
  step_ = Step::kPrepare;
  // No parameter types given: PostgreSQL infers them from the SQL, as for the unnamed statement.
  if (!PQsendPrepare(conn_, statement_->name, statement_->sql, 0, nullptr)) {
    fail(trim_message(PQerrorMessage(conn_)));
    return;
  }
  flush_output();
}

void PgConnection::send_execute() {
  step_ = Step::kExecute;
  std::vector<const char*> values;
  values.reserve(statement_params_.size());
  for (const auto& param : statement_params_) values.push_back(param ? param->c_str() : nullptr);
  if (!PQsendQueryPrepared(conn_, statement_->name, static_cast<int>(values.size()), values.data(), nullptr,
                           nullptr, 0)) {
    fail(trim_message(PQerrorMessage(conn_)));
    return;
  }
  flush_output();
}

bool PgConnection::continue_statement(const PgResult& result) {
  if (step_ == Step::kQuery || !result) return false;
  ExecStatusType status = PQresultStatus(result.get());
  const char* state = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK
                          ? ""
                          : PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
  std::string_view sqlstate = state ? state : "";
  if (step_ == Step::kPrepare) {
    // 42P05: the server session has it already (a pooler's connection we reuse): the same name is
    // always the same SQL of ours, so it is used as is.
    if (status != PGRES_COMMAND_OK && sqlstate != "42P05")
      return false;  // the prepare's error is the outcome
    prepared_.push_back(statement_->name);
    if (abandoned_) return false;  // nobody waits for the execution any more
    send_execute();
    return true;
  }
  // 26000: the server does not know the name (a pooler lost it): prepare it again, once.
  if (sqlstate != "26000" || prepared_again_ || abandoned_) return false;
  prepared_again_ = true;
  prepared_.erase(find_prepared(statement_->name));  // there once: prepared only when not found
  send_prepare();
  return true;
}

void PgConnection::flush_output() {
  int rc = PQflush(conn_);
  if (rc < 0) {
    fail(trim_message(PQerrorMessage(conn_)));
    return;
  }
  want_write_ = rc == 1;
  watch(want_write_ ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
}

void PgConnection::read_input() {
  if (!PQconsumeInput(conn_)) {
    fail(trim_message(PQerrorMessage(conn_)));
    return;
  }
  if (!deliver_notifications()) return;
  if (state_ != State::kBusy) return;
  while (!PQisBusy(conn_)) {
    PGresult* result = PQgetResult(conn_);
    if (!result) {
      // A named statement's prepare answered: its execution follows on the same connection (or the
      // connection failed sending it, and the callback has had its error).
      if (continue_statement(last_result_)) {
        last_result_.reset();
        return;
      }
      // The statement is complete: the connection is free before the callback runs, so the
      // callback may send the next statement on it.
      state_ = State::kIdle;
      step_ = Step::kQuery;
      statement_ = nullptr;
      statement_params_ = Params{};
      QueryCallback callback = std::move(callback_);
      callback_ = nullptr;
      QueryOutcome outcome;
      outcome.result = std::move(last_result_);
      if (outcome.result) {
        ExecStatusType status = PQresultStatus(outcome.result.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
          const char* state = PQresultErrorField(outcome.result.get(), PG_DIAG_SQLSTATE);
          outcome.error = QueryError{
              Errc::kInternal, trim_message(PQresultErrorMessage(outcome.result.get())), state ? state : ""};
        }
      }
      bool abandoned = abandoned_;
      abandoned_ = false;
      if (callback && !abandoned) callback(outcome);
      if (ready()) observer_.on_ready(*this);  // not after a close from inside the callback
      deliver_notifications();
      return;
    }
    // Keep the first error, otherwise the last result (a statement yields one result here).
    if (!last_result_ || PQresultStatus(last_result_.get()) == PGRES_COMMAND_OK ||
        PQresultStatus(last_result_.get()) == PGRES_TUPLES_OK) {
      last_result_.reset(result);
    } else {
      PQclear(result);
    }
  }
  deliver_notifications();
}

// libpq parses a notification wherever it reads messages: in PQnotifies, but also in PQisBusy and
// PQgetResult when it came behind a statement's answer (a LISTEN's, say), in the same read. The socket
// may stay quiet after that, so every pass over the input ends here.
bool PgConnection::deliver_notifications() {
  while (conn_ && state_ != State::kClosed) {
    PGnotify* notify = PQnotifies(conn_);
    if (!notify) return true;
    std::string channel = notify->relname, payload = notify->extra;
    PQfreemem(notify);
    observer_.on_notification(*this, channel, payload);
  }
  return false;
}

void PgConnection::abandon() {
  if (state_ != State::kBusy || abandoned_) return;
  abandoned_ = true;
  callback_ = nullptr;
  if (PGcancel* cancel = PQgetCancel(conn_)) {
    // Until the cancel request has been delivered the connection takes no new statement: a late
    // cancel would hit it instead of the abandoned one.
    auto* job = new CancelWork{{}, cancel, this};
    job->work.data = job;
    if (uv_queue_work(loop_, &job->work, &PgConnection::run_cancel, &PgConnection::on_cancel_finished) != 0) {
      PQfreeCancel(cancel);
      delete job;
      return;
    }
    cancels_.push_back(job);
  }
}

void PgConnection::on_cancel_done(CancelWork* work) {
  assert(state_ != State::kClosed);  // close() detaches its cancels
  cancels_.erase(std::find(cancels_.begin(), cancels_.end(), work));
  if (ready()) observer_.on_ready(*this);
}

void PgConnection::fail(std::string message) {
  if (state_ == State::kClosed) return;
  bool was_connected = state_ == State::kIdle || state_ == State::kBusy;
  if (last_error_ != message) {
    log::warn("database connection failed", log::field("error", message));
  }
  last_error_ = message;
  QueryCallback callback = std::move(callback_);
  callback_ = nullptr;
  bool abandoned = abandoned_;
  abandoned_ = false;
  last_result_.reset();
  step_ = Step::kQuery;
  statement_ = nullptr;
  statement_params_ = Params{};
  prepared_.clear();
  drop_socket();
  if (conn_) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  state_ = State::kDisconnected;
  backoff_ms_ = backoff_ms_ == 0 ? kFirstBackoffMs : std::min(kMaxBackoffMs, backoff_ms_ * 2);
  wheel_.schedule_in(retry_timer_, backoff_ms_);
  observer_.on_lost(*this, was_connected);
  if (callback && !abandoned && state_ != State::kClosed) {
    QueryOutcome outcome;
    outcome.error = QueryError{Errc::kDatabaseUnavailable, message, ""};
    callback(outcome);
  }
}

// What the server says outside a statement's result — a NOTICE, or the FATAL it sends before it
// closes the connection (an administrator's pg_terminate_backend, a shutdown) — goes to the structured
// log instead of libpq's default, a bare line on stderr. The connection's own failure is logged by
// fail() when the socket closes.
void PgConnection::on_notice(void*, const PGresult* notice) {
  const char* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY_NONLOCALIZED);
  std::string_view level = severity ? severity : "";
  std::string fields = log::field("severity", level) + "," +
                       log::field("message", trim_message(PQresultErrorField(notice, PG_DIAG_MESSAGE_PRIMARY)));
  if (level == "NOTICE" || level == "INFO" || level == "LOG" || level == "DEBUG") {
    log::info("database notice", fields);
  } else {
    log::warn("database notice", fields);
  }
}

void PgConnection::on_retry(void* opaque) {
  static_cast<PgConnection*>(opaque)->begin_connect();
}

void PgConnection::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  wheel_.cancel(retry_timer_);
  callback_ = nullptr;
  drop_socket();
  if (conn_) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  // The poll handle closes asynchronously but holds no pointer to us any more (owner cleared); the
  // cancels still running on the thread pool forget us too.
  for (CancelWork* work : cancels_) work->owner = nullptr;
  cancels_.clear();
  graveyard_.bury(this);
}

}  // namespace chatstream::db
