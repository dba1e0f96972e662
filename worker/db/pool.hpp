#pragma once
// A small pool of PgConnections per worker with a FIFO of waiting statements. A statement waits at
// most `wait_timeout_ms` for a free connection, and the queue is bounded: past either limit the
// caller gets kOverloaded (the HTTP layer answers 503 / error{overloaded} with Retry-After) instead
// of an unbounded queue. When no connection is up, waiting statements fail with kDatabaseUnavailable
// at their deadline; connections keep reconnecting with backoff meanwhile.
//
// Also owns one extra connection that LISTENs on the channels given to listen() and reports
// notifications (cross-worker cancel).
//
// close() fails every statement still waiting or running (kDatabaseUnavailable): no callback is ever
// dropped silently, so whoever waits for one (a run waiting for its save) always hears back; one
// executed after close() hears back on the next wheel tick, or at the latest in the destructor.

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/timer_wheel.hpp"
#include "db/pg_connection.hpp"

namespace chatstream::db {

struct PoolSettings {
  std::string conninfo;
  size_t size = 4;
  uint64_t wait_timeout_ms = 2000;
  size_t max_waiting = 1024;
  // Named statements (db::Statement) are prepared once per connection; off: sent unnamed, parsed and
  // planned at every execution (for a pooler that cannot keep prepared statements).
  bool prepare_statements = true;
};

class Pool final : private PgConnection::Observer {
 public:
  using Ticket = uint64_t;
  using NotificationHandler = std::function<void(std::string_view channel, std::string_view payload)>;

  Pool(uv_loop_t* loop, TimerWheel& wheel, Graveyard& graveyard, PoolSettings settings);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

  void start();
  // Runs `sql` with `params` on the first free connection. The callback runs exactly once (from the
  // loop, never inside execute) unless cancel(ticket) is called first.
  Ticket execute(std::string sql, Params params, QueryCallback callback);
  // The same for one of our named statements: prepared once per connection, then executed by name
  // (unless the settings say not to). `statement` must outlive the pool (a constant).
  Ticket execute(const Statement& statement, Params params, QueryCallback callback);
  // Forgets the statement: a waiting one is dropped, a running one is cancelled on the server.
  void cancel(Ticket ticket);
  // Drops the statement only if it has not been sent yet; true when it was dropped.
  bool cancel_if_waiting(Ticket ticket);

  // LISTEN on `channel` on the dedicated connection (re-issued after every reconnect).
  void listen(std::string channel, NotificationHandler handler);
  // Runs each time the listener LISTENs on every channel: at start and after every reconnect. A NOTIFY
  // sent while it was not listening is lost; this is where to look for what it would have said.
  void on_listening(std::function<void()> handler) { listening_handler_ = std::move(handler); }

  // "connected" (a statement connection is up and, when something was listen()ed to, the listener
  // has LISTENed on every channel: a NOTIFY sent now is heard), "connecting" (never that yet) or
  // "unavailable" (it was, it is not now).
  std::string_view state() const;
  size_t connected() const;
  size_t waiting() const { return waiting_.size(); }
  uint64_t wait_timeout_ms() const { return settings_.wait_timeout_ms; }
  // Fails every waiting and running statement's callback, then closes the connections.
  void close();

 private:
  struct Job {
    Ticket ticket;
    const Statement* statement;  // or, when null:
    std::string sql;
    Params params;
    QueryCallback callback;
    uint64_t deadline_ms;
    uint64_t queued_us = 0;  // for the db-wait histogram
  };

  void on_ready(PgConnection& connection) override;
  bool fully_connected() const;  // state() == "connected"
  void on_connected(PgConnection& connection) override;
  void on_lost(PgConnection& connection, bool was_connected) override;
  void on_notification(PgConnection& connection, std::string_view channel, std::string_view payload) override;
  Ticket enqueue(const Statement* statement, std::string sql, Params params, QueryCallback callback);
  void dispatch();
  void run(PgConnection& connection, std::unique_ptr<Job> job);
  void fail_later(std::unique_ptr<Job> job, QueryError error);
  // Answers every statement in failed_ (fail_later) with its error; those that their callbacks queue
  // meanwhile wait for the next call.
  void deliver_failed();
  void arm_deadline();
  static void on_deadline(void* self);
  static void on_deferred(void* self);

  uv_loop_t* loop_;
  TimerWheel& wheel_;
  Graveyard& graveyard_;  // closed connections are freed through it
  PoolSettings settings_;
  std::vector<PgConnection*> connections_;
  PgConnection* listener_ = nullptr;
  std::vector<std::pair<std::string, NotificationHandler>> channels_;
  std::function<void()> listening_handler_;
  std::deque<std::unique_ptr<Job>> waiting_;
  struct Running {
    PgConnection* connection;
    QueryCallback callback;
  };
  std::unordered_map<Ticket, Running> running_;
  std::vector<std::pair<std::unique_ptr<Job>, QueryError>> failed_;  // callbacks deferred to the loop
  Timer deadline_timer_;
  Timer deferred_timer_;
  Ticket next_ticket_ = 1;
  bool ever_connected_ = false;
  size_t listened_ = 0;          // channels_ whose LISTEN was sent on the current listener connection
  size_t listening_ = 0;         // … and done (the server committed it: notifications on it arrive)
  uint64_t listener_epoch_ = 0;  // bumped when the listener is lost: a LISTEN answered after that counts not
  bool closed_ = false;
};

}  // namespace chatstream::db
