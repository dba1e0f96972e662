#pragma once
// The owner's side of a resume served by another worker or instance (docs/architecture.md, "Durable
// runs"). A reader on another worker replays what PostgreSQL holds of the run (run_events, written
// with the checkpoints) and asks, on the chatstream_follow channel, for the events from its cursor
// on; every worker hears it, and the one that owns the run publishes them on chatstream_events, then
// every later event as it is framed, until the terminal one.
//
// While followed, the run counts as read (its disconnect grace does not run). Notifications go out
// in one statement per batch, one statement in flight at a time, so followers get them in order.
// A payload is "<run_id> <seq> <kind>\n<bytes>": kind '=' whole framed events starting at seq, or
// one event cut in pieces (below PostgreSQL's 8000-byte payload limit, on UTF-8 boundaries): '+' a
// piece with more to come, '.' its last piece.

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "chat/run_registry.hpp"
#include "chat/store.hpp"
#include "core/timer_wheel.hpp"
#include "core/uuid.hpp"
#include "sse/event_log.hpp"

namespace chatstream::chat {

class RunPublisher {
 public:
  RunPublisher(Store& store, RunRegistry& registry, TimerWheel& wheel);
  RunPublisher(const RunPublisher&) = delete;
  RunPublisher& operator=(const RunPublisher&) = delete;
  ~RunPublisher();

  // A chatstream_follow notification: "<run_id> <next_seq>" or "<run_id> stop".
  void on_follow(std::string_view payload);
  // Notifications in flight or waiting (a draining worker sends its last ones before it exits).
  bool busy() const { return in_flight_ != 0 || !pending_.empty(); }

  // The largest payload body (PostgreSQL refuses payloads of 8000 bytes or more).
  static constexpr size_t kMaxPayloadBody = 7800;
  // Appends the payloads that carry `events` (framed, starting at `seq`) for `run_id` to `out`.
  static void split_into_payloads(std::string_view run_id, uint64_t seq, std::string_view events,
                                  std::vector<std::string>& out);

 private:
  struct Subscription;
  static void on_timer(void* self);
  void collect(Subscription& subscription);
  void drop(const Uuid& run_id);
  void send();

  Store& store_;
  RunRegistry& registry_;
  TimerWheel& wheel_;
  std::unordered_map<Uuid, std::unique_ptr<Subscription>, UuidHash> subscriptions_;
  std::vector<std::string> pending_;  // payloads waiting for the statement in flight
  Store::Ticket in_flight_ = 0;
  Timer timer_;
};

}  // namespace chatstream::chat
