#pragma once
// One timer structure for every deadline of a worker: token pacing, heartbeats, run and token-gap
// timeouts, flush windows, slow-consumer grace, header and keep-alive timeouts.
//
// A hashed wheel of 1 ms slots over absolute deadlines, driven by a single uv_timer_t. Schedule and
// cancel are O(1) and allocation-free (the Timer node lives in its owner); thousands of streams cost
// one kernel timer, and a deadline that is computed from a stream's own start time never drifts by the
// time the loop spends in callbacks (a repeating uv_timer_t per stream does: libuv re-arms it from the
// loop's cached "now").
//
// Contract:
// - deadlines are absolute milliseconds of `now_ms()`; a deadline already past fires on the next tick;
// - a callback may schedule or cancel any timer, including its own and ones due in the same tick;
// - a Timer must be cancelled (or have fired) before its owner is destroyed: ~Timer cancels itself.

#include <uv.h>

#include <array>
#include <cstdint>

#include "core/intrusive_list.hpp"

namespace chatstream {

class TimerWheel;

class Timer {
 public:
  using Callback = void (*)(void* owner);
  Timer(Callback callback, void* owner) : callback_(callback), owner_(owner) {}
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer();

  bool scheduled() const { return node_.linked(); }
  uint64_t deadline_ms() const { return deadline_ms_; }

 private:
  friend class TimerWheel;
  ListNode node_;  // first member: the wheel turns a ListNode* back into its Timer
  uint64_t deadline_ms_ = 0;
  TimerWheel* wheel_ = nullptr;  // set while scheduled, so destruction can cancel
  Callback callback_;
  void* owner_;
};

class TimerWheel {
 public:
  static constexpr uint32_t kSlots = 4096;  // 4.096 s of 1 ms slots; later deadlines wait their round

  using Clock = uint64_t (*)();
  // `loop` may be null (tests drive advance_to by hand); `clock` defaults to the monotonic clock.
  explicit TimerWheel(uv_loop_t* loop, Clock clock = nullptr);
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Milliseconds on the monotonic clock (uv_hrtime), not the loop's cached time.
  uint64_t now_ms() const { return clock_(); }

  void schedule(Timer& timer, uint64_t deadline_ms);
  void schedule_in(Timer& timer, uint64_t delay_ms) { schedule(timer, now_ms() + delay_ms); }
  void cancel(Timer& timer);

  size_t size() const { return count_; }

  // Runs every timer due at `now`; exposed so tests can drive the wheel without a loop.
  void advance_to(uint64_t now);

  // Closes the uv_timer_t; call once before the loop's last run.
  void close();

 private:
  static void on_tick(uv_timer_t* handle);
  void link(Timer& timer);
  void rearm();
  int next_nonempty_slot_after(uint64_t tick) const;

  Clock clock_;
  uv_timer_t handle_;
  bool handle_ready_ = false;
  uint64_t last_tick_;       // every slot up to this tick has been processed
  uint64_t armed_for_ = 0;   // tick the uv timer is armed for, 0 = not armed
  bool in_tick_ = false;     // callbacks running: re-arm once afterwards, not per schedule
  size_t count_ = 0;
  std::array<IntrusiveList, kSlots> slots_;
  std::array<uint64_t, kSlots / 64> occupied_{};  // bit per non-empty slot
};

}  // namespace chatstream
