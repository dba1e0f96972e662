// The one timer structure of fake-llm: every deadline (token pacing, split-write pieces, the
// paused-reader detector) is a Timer node in one binary min-heap of absolute deadlines, driven by a
// single uv_timer_t armed for the earliest one. Thousands of streams cost one kernel timer, and a
// stream's token i is due at start + i/R whatever the time spent in callbacks, so pacing never drifts.
//
// Contract:
// - deadlines are absolute microseconds of now_us() (uv_hrtime); one already past fires on the next
//   loop turn;
// - a callback may schedule or cancel any timer, its own included; a timer scheduled during a run for
//   a deadline already past fires on the next turn, not in the same run (so a producer that
//   reschedules itself "now" yields to the other sockets);
// - a Timer is cancelled by its destructor, so an owner may simply be destroyed.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/clock.hpp"

namespace chatstream::fakellm {

class TimerHeap;

class Timer {
 public:
  using Callback = void (*)(void* owner);
  Timer(Callback callback, void* owner) : callback_(callback), owner_(owner) {}
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer();

  bool scheduled() const { return index_ != kNotScheduled; }

 private:
  friend class TimerHeap;
  static constexpr size_t kNotScheduled = SIZE_MAX;
  size_t index_ = kNotScheduled;  // position in the heap
  TimerHeap* heap_ = nullptr;
  Callback callback_;
  void* owner_;
};

class TimerHeap {
 public:
  explicit TimerHeap(uv_loop_t* loop);
  TimerHeap(const TimerHeap&) = delete;
  TimerHeap& operator=(const TimerHeap&) = delete;

  static uint64_t now_us() { return bench::now_micros(); }

  void schedule(Timer& timer, uint64_t deadline_us);
  void cancel(Timer& timer);
  size_t size() const { return heap_.size(); }

  // Closes the uv_timer_t; call once when the loop is shutting down.
  void close();

 private:
  // The keys live in the heap itself, so sifting compares without touching the timers' owners.
  struct Entry {
    uint64_t deadline_us;
    uint64_t sequence;  // ties broken by scheduling order
    Timer* timer;
    bool operator<(const Entry& other) const {
      return deadline_us != other.deadline_us ? deadline_us < other.deadline_us : sequence < other.sequence;
    }
  };

  static void on_tick(uv_timer_t* handle);
  void run_due();
  void rearm();
  void place(size_t index, const Entry& entry);
  void sift_up(size_t index);
  void sift_down(size_t index);
  void remove_at(size_t index);

  uv_timer_t handle_{};
  std::vector<Entry> heap_;
  uint64_t next_sequence_ = 0;
  uint64_t armed_for_us_ = 0;  // deadline the uv timer is armed for, 0 = not armed
  bool in_run_ = false;        // callbacks running: re-arm once afterwards, not per schedule
  bool closed_ = false;
};

}  // namespace chatstream::fakellm
