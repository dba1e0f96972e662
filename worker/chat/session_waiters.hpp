#pragma once
// Runs of this worker waiting for their conversation to be free: a message sent with multitask
// "interrupt" or "enqueue" while another run of the same session is running (on any worker or
// instance). PostgreSQL tells every worker when a session's run ends (NOTIFY chatstream_run_end);
// the server wakes that session's waiters, which try to start again. A waiter also retries on its own
// timer, so a notification lost while the LISTEN connection reconnects costs a delay, not a hang.

#include <unordered_map>
#include <vector>

#include "core/uuid.hpp"

namespace chatstream::chat {

class SessionWaiter {
 public:
  virtual void on_session_free() = 0;

 protected:
  ~SessionWaiter() = default;
};

class SessionWaiters {
 public:
  void add(const Uuid& session_id, SessionWaiter* waiter) { waiting_.emplace(session_id, waiter); }
  void remove(const Uuid& session_id, SessionWaiter* waiter) {
    auto [first, last] = waiting_.equal_range(session_id);
    for (auto it = first; it != last; ++it) {
      if (it->second == waiter) {
        waiting_.erase(it);
        return;
      }
    }
  }
  // Every waiter of the session is removed, then told (a waiter may add itself again).
  void wake(const Uuid& session_id) {
    auto [first, last] = waiting_.equal_range(session_id);
    std::vector<SessionWaiter*> woken;
    for (auto it = first; it != last; ++it) woken.push_back(it->second);
    waiting_.erase(session_id);
    for (SessionWaiter* waiter : woken) waiter->on_session_free();
  }
  size_t size() const { return waiting_.size(); }

 private:
  std::unordered_multimap<Uuid, SessionWaiter*, UuidHash> waiting_;
};

}  // namespace chatstream::chat
