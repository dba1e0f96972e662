#include "core/timer_wheel.hpp"

#include <algorithm>
#include <cstddef>

#include "core/clock.hpp"

namespace chatstream {

namespace {
constexpr uint64_t kMask = TimerWheel::kSlots - 1;
Timer* timer_of(ListNode* node) { return reinterpret_cast<Timer*>(node); }
}  // namespace

Timer::~Timer() {
  if (scheduled() && wheel_) wheel_->cancel(*this);
}

TimerWheel::TimerWheel(uv_loop_t* loop, Clock clock)
    : clock_(clock ? clock : &monotonic_ms), last_tick_(clock_()) {
  if (loop) {
    uv_timer_init(loop, &handle_);
    handle_.data = this;
    handle_ready_ = true;
  }
}

void TimerWheel::link(Timer& timer) {
  // A deadline at or before the last processed tick goes into the next slot: it fires on the next tick.
  uint64_t tick = std::max(timer.deadline_ms_, last_tick_ + 1);
  uint32_t slot = static_cast<uint32_t>(tick & kMask);
  slots_[slot].push_back(timer.node_);
  occupied_[slot / 64] |= uint64_t{1} << (slot % 64);
}

void TimerWheel::schedule(Timer& timer, uint64_t deadline_ms) {
  if (timer.scheduled()) {
    timer.node_.unlink();
    --count_;
  }
  // An empty wheel has nothing between its last tick and now: catch up so the first timer after an
  // idle period does not cost a spurious wake-up.
  if (count_ == 0 && !in_tick_) last_tick_ = std::max(last_tick_, now_ms() - 1);
  timer.deadline_ms_ = deadline_ms;
  timer.wheel_ = this;
  link(timer);
  ++count_;
  if (in_tick_) return;
  uint64_t tick = std::max(deadline_ms, last_tick_ + 1);
  if (armed_for_ == 0 || tick < armed_for_) rearm();
}

void TimerWheel::cancel(Timer& timer) {
  if (!timer.scheduled()) return;
  timer.node_.unlink();
  --count_;
  // Empty slots are found lazily (their occupied bit is cleared when visited): cancel stays O(1).
}

int TimerWheel::next_nonempty_slot_after(uint64_t tick) const {
  // Scan the bitmap from the slot after `tick`, wrapping once around the wheel.
  uint32_t start = static_cast<uint32_t>((tick + 1) & kMask);
  for (uint32_t step = 0; step <= kSlots / 64; ++step) {
    uint32_t word_index = ((start / 64) + step) % (kSlots / 64);
    uint64_t word = occupied_[word_index];
    if (step == 0) word &= ~uint64_t{0} << (start % 64);
    if (step == kSlots / 64) word &= (start % 64) ? ~(~uint64_t{0} << (start % 64)) : 0;
    if (word) return static_cast<int>(word_index * 64 + static_cast<uint32_t>(__builtin_ctzll(word)));
  }
  return -1;
}

void TimerWheel::rearm() {
  if (!handle_ready_) return;
  if (count_ == 0) {
    uv_timer_stop(&handle_);
    armed_for_ = 0;
    return;
  }
  int slot = next_nonempty_slot_after(last_tick_);
  if (slot < 0) {  // only stale bits were cleared; nothing left
    uv_timer_stop(&handle_);
    armed_for_ = 0;
    return;
  }
  uint64_t distance = (static_cast<uint64_t>(slot) - (last_tick_ + 1)) & kMask;
  uint64_t tick = last_tick_ + 1 + distance;
  uint64_t now = now_ms();
  armed_for_ = tick;
  uv_timer_start(&handle_, on_tick, tick > now ? tick - now : 0, 0);
}

void TimerWheel::on_tick(uv_timer_t* handle) {
  auto* wheel = static_cast<TimerWheel*>(handle->data);
  wheel->armed_for_ = 0;
  wheel->advance_to(wheel->now_ms());
  wheel->rearm();
}

void TimerWheel::advance_to(uint64_t now) {
  // After a long stall every slot is visited once; otherwise only the slots from the last tick to now.
  uint64_t first = last_tick_ + 1;
  uint64_t last = now;
  if (last < first) return;
  if (last - first >= kSlots) first = last - kSlots + 1;
  in_tick_ = true;
  for (uint64_t tick = first; tick <= last; ++tick) {
    uint32_t slot = static_cast<uint32_t>(tick & kMask);
    uint64_t& word = occupied_[slot / 64];
    uint64_t bit = uint64_t{1} << (slot % 64);
    if (!(word & bit)) continue;
    word &= ~bit;
    last_tick_ = tick;  // timers scheduled from callbacks below land in later slots
    IntrusiveList due;
    due.splice_back(slots_[slot]);
    while (ListNode* node = due.pop_front()) {
      Timer* timer = timer_of(node);
      if (timer->deadline_ms_ > now) {  // a later round of the wheel
        link(*timer);
        continue;
      }
      --count_;
      timer->callback_(timer->owner_);
    }
  }
  last_tick_ = now;
  in_tick_ = false;
}

void TimerWheel::close() {
  if (handle_ready_) {
    handle_ready_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_), nullptr);
  }
}

}  // namespace chatstream
