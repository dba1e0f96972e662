#pragma once
// Durable runs, the worker's side (docs/architecture.md, "Durable runs"): every checkpoint interval
// one statement writes, for all of this worker's running runs, the answer text produced since their
// last checkpoint and renews their lease — one statement per worker per interval, not one per run.
// Every few intervals (and at start) it also closes the runs whose owner is gone: those an earlier
// incarnation of this instance left running, those of this instance's dead workers (the master names
// them), and those of any other instance whose lease ran out — once this worker has reached the
// database for a whole lease (after an outage every owner needs that long to renew).

#include <cstdint>
#include <vector>

#include "chat/run_registry.hpp"
#include "chat/store.hpp"
#include "core/timer_wheel.hpp"

namespace chatstream::chat {

class Checkpointer {
 public:
  Checkpointer(TimerWheel& wheel, Store& store, RunRegistry& registry, uint64_t interval_ms,
               std::vector<int> lost_worker_pids);
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  ~Checkpointer();

  void start();
  void stop();

  // Every how many checkpoints the lost runs are swept again.
  static constexpr unsigned kSweepEvery = 5;

 private:
  static void on_tick(void* self);
  void write_checkpoint();
  void sweep();

  TimerWheel& wheel_;
  Store& store_;
  RunRegistry& registry_;
  uint64_t interval_ms_;
  std::vector<int> lost_worker_pids_;
  Timer timer_;
  unsigned ticks_ = 0;
  uint64_t reachable_since_ms_ = 0;  // since when statements have not failed (lease sweeps wait a lease)
  Store::Ticket checkpoint_in_flight_ = 0;
  Store::Ticket sweep_in_flight_ = 0;
  bool stopped_ = false;
};

}  // namespace chatstream::chat
