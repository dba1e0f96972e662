#pragma once
// One PostgreSQL connection driven by libpq's non-blocking API on the worker's loop: PQconnectStart /
// PQconnectPoll to connect, PQsendQueryParams (or PQsendPrepare once, then PQsendQueryPrepared, for a
// named db::Statement) + PQflush to send, PQconsumeInput / PQisBusy /
// PQgetResult to read, PQnotifies for LISTEN — all from a uv_poll_t on PQsocket. No libpq call here
// ever blocks the loop; cancelling a running query (PQcancel, which does block) runs on libuv's
// thread pool.
//
// The connection reconnects by itself with a backoff (100 ms doubling to 5 s) and tells its observer
// when it becomes ready or is lost. Parameters are always bound, never spliced into SQL text.
//
// Lifetime: owned by whoever created it until close(), which hands it to the worker's deferred-free
// list (Graveyard): it is deleted at the start of the next loop turn, never inside a callback. Its
// poll handle is a separate object freed in its own close callback; a cancel request still running
// on the thread pool is detached from it first.

#include <libpq-fe.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/errc.hpp"
#include "core/graveyard.hpp"
#include "core/timer_wheel.hpp"
#include "db/statement.hpp"

namespace chatstream::db {

struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// Why a statement failed, in the one vocabulary of core/errc.hpp: kInternal (the server refused the
// statement: `sqlstate` says why, retrying it would fail the same way), kDatabaseUnavailable (no
// connection, or it broke: the statement may succeed once the database is back) or kOverloaded (no
// free connection within the wait deadline, or too many statements waiting).
struct QueryError {
  Errc code;
  std::string message;   // for logs; never shown to clients
  std::string sqlstate;  // set for kInternal
};

struct QueryOutcome {
  PgResult result;  // the last result of the statement (rows or command status)
  std::optional<QueryError> error;
  bool ok() const { return !error; }
  int rows() const { return result ? PQntuples(result.get()) : 0; }
  bool is_null(int row, int column) const { return PQgetisnull(result.get(), row, column) != 0; }
  std::string_view text(int row, int column) const {
    return std::string_view(PQgetvalue(result.get(), row, column),
                            static_cast<size_t>(PQgetlength(result.get(), row, column)));
  }
};

using Params = std::vector<std::optional<std::string>>;  // nullopt = SQL NULL
using QueryCallback = std::function<void(QueryOutcome&)>;

class PgConnection final : public Reclaimable {
 public:
  class Observer {
   public:
    // Connected (first time or again), right before its first on_ready.
    virtual void on_connected(PgConnection& /*connection*/) {}
    virtual void on_ready(PgConnection& connection) = 0;
    // A statement in flight gets its kConnection error right after this.
    virtual void on_lost(PgConnection& connection, bool was_connected) = 0;
    virtual void on_notification(PgConnection&, std::string_view /*channel*/, std::string_view /*payload*/) {}

   protected:
    ~Observer() = default;
  };

  PgConnection(uv_loop_t* loop, TimerWheel& wheel, Graveyard& graveyard, std::string conninfo,
               Observer& observer);
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  void start();
  // Disconnected and waiting out its reconnect backoff: connects now instead (another connection to
  // the same server has just succeeded). Does nothing in any other state.
  void retry_now();
  // Connected, no statement in flight, and no cancel request of an abandoned statement still on its
  // way (it could otherwise hit the next statement).
  bool ready() const { return state_ == State::kIdle && cancels_.empty(); }
  bool connected() const { return state_ == State::kIdle || state_ == State::kBusy; }
  // Sends one statement (precondition: ready()). The callback runs exactly once, with the result or
  // an error, unless abandon() is called first.
  void send(const std::string& sql, const Params& params, QueryCallback callback);
  // Sends a named statement (precondition: ready()): prepared on this connection first when it is not
  // yet (one more round trip, once per connection), then executed by name; the callback runs exactly
  // once, as for send(sql). A name the server does not know (26000: a pooler that dropped it) is
  // prepared again and the statement executed once more; one it already knows (42P05) is used as is.
  void send(const Statement& statement, Params params, QueryCallback callback);
  // Names prepared on the current server connection (forgotten when it is lost).
  size_t prepared_count() const { return prepared_.size(); }
  // The running statement's callback will not be called; the server is asked to cancel it. The
  // connection becomes ready again when the server has answered.
  void abandon();
  // The one close path: no callback runs after it; the object is freed on the next loop turn.
  void close();
  const std::string& last_error() const { return last_error_; }

 private:
  enum class State { kDisconnected, kConnecting, kIdle, kBusy, kClosed };
  // What the statement in flight is waiting for: an unnamed statement's result, or a named one's
  // prepare, then its execution.
  enum class Step { kQuery, kPrepare, kExecute };
  struct Poll;
  struct CancelWork;

  void begin_connect();
  void continue_connect();
  void watch(int events);
  void on_events(int status, int events);
  void flush_output();
  void send_prepare();
  void send_execute();
  // A named statement's prepare or execution answered: true when it goes on (the execution is sent,
  // or the prepare again), false when `result` is the statement's outcome.
  bool continue_statement(const PgResult& result);
  std::vector<const char*>::const_iterator find_prepared(const char* name) const;  // end(): not prepared
  void read_input();
  bool deliver_notifications();  // false when the connection closed or failed meanwhile
  void fail(std::string message);
  void drop_socket();
  static void on_poll(uv_poll_t* handle, int status, int events);
  static void on_poll_closed(uv_handle_t* handle);
  static void on_retry(void* self);
  static void on_notice(void* unused, const PGresult* notice);
  void on_cancel_done(CancelWork* work);
  static void run_cancel(uv_work_t* work);
  static void on_cancel_finished(uv_work_t* work, int status);

  uv_loop_t* loop_;
  TimerWheel& wheel_;
  Graveyard& graveyard_;
  std::string conninfo_;
  Observer& observer_;
  PGconn* conn_ = nullptr;
  Poll* poll_ = nullptr;
  int polled_fd_ = -1;
  int polled_events_ = 0;
  State state_ = State::kDisconnected;
  PgResult last_result_;
  QueryCallback callback_;
  bool abandoned_ = false;
  Step step_ = Step::kQuery;
  const Statement* statement_ = nullptr;  // the named statement in flight
  Params statement_params_;               // … its parameters, kept until it is answered
  bool prepared_again_ = false;
  std::vector<const char*> prepared_;  // names prepared on the current server connection
  bool want_write_ = false;
  Timer retry_timer_;
  uint64_t backoff_ms_ = 0;
  std::vector<CancelWork*> cancels_;  // PQcancel requests running on the thread pool
  std::string last_error_;
};

}  // namespace chatstream::db
