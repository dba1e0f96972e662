#include "db/pool.hpp"

#include <algorithm>
#include <cassert>

#include "core/clock.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"

namespace chatstream::db {

Pool::Pool(uv_loop_t* loop, TimerWheel& wheel, Graveyard& graveyard, PoolSettings settings)
    : loop_(loop),
      wheel_(wheel),
      graveyard_(graveyard),
      settings_(std::move(settings)),
      deadline_timer_(&Pool::on_deadline, this),
      deferred_timer_(&Pool::on_deferred, this) {}

Pool::~Pool() {
  close();
  // Statements executed after close() wait in failed_ for a wheel tick that may never come (the
  // server closes the wheel right after the pool): they hear back here, not never.
  while (!failed_.empty()) deliver_failed();
  wheel_.cancel(deferred_timer_);  // what those callbacks executed scheduled it again
}

void Pool::start() {
  for (size_t i = 0; i < settings_.size; ++i) {
    connections_.push_back(new PgConnection(loop_, wheel_, graveyard_, settings_.conninfo, *this));
  }
  for (PgConnection* connection : connections_) connection->start();
}

Pool::Ticket Pool::execute(std::string sql, Params params, QueryCallback callback) {
  return enqueue(nullptr, std::move(sql), std::move(params), std::move(callback));
}

Pool::Ticket Pool::execute(const Statement& statement, Params params, QueryCallback callback) {
  return enqueue(&statement, {}, std::move(params), std::move(callback));
}

Pool::Ticket Pool::enqueue(const Statement* statement, std::string sql, Params params, QueryCallback callback) {
  auto job = std::make_unique<Job>(Job{next_ticket_++, statement, std::move(sql), std::move(params), std::move(callback),
                                       wheel_.now_ms() + settings_.wait_timeout_ms});
  job->queued_us = monotonic_us();
  Ticket ticket = job->ticket;
  if (closed_) {
    fail_later(std::move(job), {Errc::kDatabaseUnavailable, "pool closed", ""});
    return ticket;
  }
  if (waiting_.size() >= settings_.max_waiting) {
    fail_later(std::move(job), {Errc::kOverloaded, "too many statements waiting", ""});
    return ticket;
  }
  waiting_.push_back(std::move(job));
  // Dispatch from the loop, not from inside execute: callers never see their callback re-enter.
  wheel_.schedule(deferred_timer_, 0);
  arm_deadline();
  return ticket;
}

bool Pool::cancel_if_waiting(Ticket ticket) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if ((*it)->ticket == ticket) {
      waiting_.erase(it);
      return true;
    }
  }
  for (auto it = failed_.begin(); it != failed_.end(); ++it) {
    if (it->first->ticket == ticket) {
      failed_.erase(it);
      return true;
    }
  }
  return false;
}

void Pool::cancel(Ticket ticket) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if ((*it)->ticket == ticket) {
      waiting_.erase(it);
      return;
    }
  }
  for (auto it = failed_.begin(); it != failed_.end(); ++it) {
    if (it->first->ticket == ticket) {
      failed_.erase(it);
      return;
    }
  }
  auto running = running_.find(ticket);
  if (running != running_.end()) {
    PgConnection* connection = running->second.connection;
    running_.erase(running);
    connection->abandon();
  }
}

void Pool::listen(std::string channel, NotificationHandler handler) {
  channels_.emplace_back(std::move(channel), std::move(handler));
  if (!listener_) {
    listener_ = new PgConnection(loop_, wheel_, graveyard_, settings_.conninfo, *this);
    listener_->start();
  } else if (listener_->ready()) {
    on_ready(*listener_);  // LISTENs the new channel (and any not listened to yet)
  }
}

std::string_view Pool::state() const {
  if (fully_connected()) return "connected";
  return ever_connected_ ? "unavailable" : "connecting";
}

bool Pool::fully_connected() const {
  bool listening =
      channels_.empty() || (listener_ && listener_->connected() && listening_ >= channels_.size());
  return listening && connected() > 0;
}

size_t Pool::connected() const {
  size_t count = 0;
  for (const PgConnection* connection : connections_) count += connection->connected() ? 1 : 0;
  return count;
}

void Pool::on_connected(PgConnection& connection) {
  // The server answers again: the other connections waiting out their reconnect backoff (up to 5 s,
  // each on its own schedule) try now. Above all the listener: until it LISTENs again, a NOTIFY from
  // another worker (a cancel, a resume's follow request) is lost. Only on a connect, never per
  // statement: a connection the server keeps refusing ("too many clients") stays on its backoff.
  if (listener_ && &connection != listener_) listener_->retry_now();
  for (PgConnection* other : connections_) {
    if (other != &connection) other->retry_now();
  }
}

void Pool::on_ready(PgConnection& connection) {
  if (fully_connected()) ever_connected_ = true;
  if (&connection == listener_) {
    // LISTEN again on every (re)connect, one channel per statement (a parameterised statement holds
    // one command), each sent when the previous one is done; identifiers are ours, quoted all the same.
    if (listened_ >= channels_.size() || !connection.ready()) return;
    const std::string& channel = channels_[listened_++].first;
    connection.send("LISTEN \"" + channel + "\"", {}, [this, epoch = listener_epoch_](QueryOutcome& outcome) {
      if (!outcome.ok()) {
        log::warn("LISTEN failed", log::field("error", outcome.error->message));
      } else if (epoch == listener_epoch_) {
        ++listening_;
        if (fully_connected()) ever_connected_ = true;
        if (listening_ == channels_.size() && listening_handler_) listening_handler_();
      }
    });
    return;
  }
  dispatch();
}

void Pool::on_lost(PgConnection& connection, bool) {
  // A statement running on it gets its kDatabaseUnavailable error from the connection itself, right
  // after this (through run()'s callback, which leaves running_).
  if (&connection == listener_) {
    listened_ = 0;
    listening_ = 0;
    ++listener_epoch_;
  }
}

void Pool::on_notification(PgConnection&, std::string_view channel, std::string_view payload) {
  for (const auto& [name, handler] : channels_) {
    if (name == channel) handler(channel, payload);
  }
}

void Pool::dispatch() {
  for (PgConnection* connection : connections_) {
    if (waiting_.empty()) break;
    if (!connection->ready()) continue;
    std::unique_ptr<Job> job = std::move(waiting_.front());
    waiting_.pop_front();
    run(*connection, std::move(job));
  }
  arm_deadline();
}

void Pool::run(PgConnection& connection, std::unique_ptr<Job> job) {
  assert(!closed_ && connection.ready());
  obs::observe(obs::Histogram::kDbWait, monotonic_us() - job->queued_us);
  Ticket ticket = job->ticket;
  running_.emplace(ticket, Running{&connection, std::move(job->callback)});
  auto done = [this, ticket](QueryOutcome& outcome) {
    auto running = running_.find(ticket);
    if (running == running_.end()) return;  // cancelled, or failed by close()
    QueryCallback callback = std::move(running->second.callback);
    running_.erase(running);
    if (callback) callback(outcome);
  };
  if (job->statement && settings_.prepare_statements) {
    connection.send(*job->statement, std::move(job->params), std::move(done));
  } else {
    connection.send(job->statement ? std::string(job->statement->sql) : job->sql, job->params,
                    std::move(done));
  }
}

void Pool::fail_later(std::unique_ptr<Job> job, QueryError error) {
  failed_.emplace_back(std::move(job), std::move(error));
  wheel_.schedule(deferred_timer_, 0);
}

void Pool::on_deferred(void* opaque) {
  auto* self = static_cast<Pool*>(opaque);
  self->deliver_failed();
  self->dispatch();
}

void Pool::deliver_failed() {
  // Swapped out first: a callback may execute() again, which may fail into failed_ anew.
  std::vector<std::pair<std::unique_ptr<Job>, QueryError>> failed;
  failed.swap(failed_);
  for (auto& [job, error] : failed) {
    QueryOutcome outcome;
    outcome.error = std::move(error);
    if (job->callback) job->callback(outcome);
  }
}

void Pool::arm_deadline() {
  if (waiting_.empty()) {
    wheel_.cancel(deadline_timer_);
    return;
  }
  // Every statement waits the same time, so the oldest one has the earliest deadline.
  wheel_.schedule(deadline_timer_, waiting_.front()->deadline_ms);
}

void Pool::on_deadline(void* opaque) {
  auto* self = static_cast<Pool*>(opaque);
  uint64_t now = self->wheel_.now_ms();
  bool up = self->connected() > 0;
  while (!self->waiting_.empty() && self->waiting_.front()->deadline_ms <= now) {
    std::unique_ptr<Job> job = std::move(self->waiting_.front());
    self->waiting_.pop_front();
    QueryOutcome outcome;
    outcome.error = up ? QueryError{Errc::kOverloaded, "no free database connection in time", ""}
                       : QueryError{Errc::kDatabaseUnavailable, "the database is unavailable", ""};
    if (job->callback) job->callback(outcome);
  }
  self->arm_deadline();
}

void Pool::close() {
  if (closed_) return;
  closed_ = true;
  wheel_.cancel(deadline_timer_);
  wheel_.cancel(deferred_timer_);
  std::vector<QueryCallback> orphans;
  for (auto& job : waiting_) orphans.push_back(std::move(job->callback));
  for (auto& [job, error] : failed_) orphans.push_back(std::move(job->callback));
  for (auto& [ticket, running] : running_) orphans.push_back(std::move(running.callback));
  waiting_.clear();
  failed_.clear();
  running_.clear();
  for (PgConnection* connection : connections_) connection->close();
  connections_.clear();
  if (listener_) listener_->close();
  listener_ = nullptr;
  // Every orphan hears why; what their callbacks ask for meanwhile fails the same way (execute()
  // after close queues in failed_), until nothing is left.
  while (!orphans.empty()) {
    for (QueryCallback& callback : orphans) {
      QueryOutcome outcome;
      outcome.error = QueryError{Errc::kDatabaseUnavailable, "the worker is stopping", ""};
      if (callback) callback(outcome);
    }
    orphans.clear();
    for (auto& [job, error] : failed_) orphans.push_back(std::move(job->callback));
    failed_.clear();
  }
  wheel_.cancel(deferred_timer_);
}

}  // namespace chatstream::db
