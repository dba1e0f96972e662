#include "timer_heap.hpp"

namespace chatstream::fakellm {

Timer::~Timer() {
  if (heap_ != nullptr) heap_->cancel(*this);
}

TimerHeap::TimerHeap(uv_loop_t* loop) {
  uv_timer_init(loop, &handle_);
  handle_.data = this;
}

void TimerHeap::place(size_t index, const Entry& entry) {
  heap_[index] = entry;
  entry.timer->index_ = index;
}

void TimerHeap::sift_up(size_t index) {
  Entry entry = heap_[index];
  while (index > 0) {
    size_t parent = (index - 1) / 2;
    if (!(entry < heap_[parent])) break;
    place(index, heap_[parent]);
    index = parent;
  }
  place(index, entry);
}

void TimerHeap::sift_down(size_t index) {
  Entry entry = heap_[index];
  size_t count = heap_.size();
  for (;;) {
    size_t child = 2 * index + 1;
    if (child >= count) break;
    if (child + 1 < count && heap_[child + 1] < heap_[child]) ++child;
    if (!(heap_[child] < entry)) break;
    place(index, heap_[child]);
    index = child;
  }
  place(index, entry);
}

void TimerHeap::remove_at(size_t index) {
  Timer* removed = heap_[index].timer;
  Entry last = heap_.back();
  heap_.pop_back();
  if (index < heap_.size()) {
    place(index, last);
    sift_down(index);
    sift_up(last.timer->index_);
  }
  removed->index_ = Timer::kNotScheduled;
  removed->heap_ = nullptr;
}

void TimerHeap::schedule(Timer& timer, uint64_t deadline_us) {
  if (timer.scheduled()) remove_at(timer.index_);
  timer.heap_ = this;
  heap_.push_back(Entry{deadline_us, next_sequence_++, &timer});
  sift_up(heap_.size() - 1);
  if (!in_run_ && heap_.front().timer == &timer) rearm();
}

void TimerHeap::cancel(Timer& timer) {
  if (!timer.scheduled()) return;
  remove_at(timer.index_);
  // Leaving the uv timer armed for a cancelled deadline costs one empty wake-up; re-arm only when
  // nothing is left, so an idle server does not wake at all.
  if (!in_run_ && heap_.empty()) rearm();
}

void TimerHeap::on_tick(uv_timer_t* handle) {
  auto* self = static_cast<TimerHeap*>(handle->data);
  self->armed_for_us_ = 0;
  self->run_due();
}

void TimerHeap::run_due() {
  in_run_ = true;
  uint64_t now = now_us();
  // Only timers scheduled before this run may fire in it: one rescheduled for "now" by its own
  // callback waits for the next turn instead of looping here.
  uint64_t sequence_limit = next_sequence_;
  while (!heap_.empty()) {
    const Entry& first = heap_.front();
    if (first.deadline_us > now || first.sequence >= sequence_limit) break;
    Timer* timer = first.timer;
    remove_at(0);
    timer->callback_(timer->owner_);
  }
  in_run_ = false;
  rearm();
}

void TimerHeap::rearm() {
  if (closed_) return;
  if (heap_.empty()) {
    if (armed_for_us_ != 0) uv_timer_stop(&handle_);
    armed_for_us_ = 0;
    return;
  }
  uint64_t deadline = heap_.front().deadline_us;
  if (armed_for_us_ != 0 && armed_for_us_ <= deadline) return;  // an earlier wake-up will re-arm
  uint64_t now = now_us();
  // Round up: libuv timers have millisecond resolution and a token must not go out early.
  uint64_t timeout_ms = deadline > now ? (deadline - now + 999) / 1000 : 0;
  uv_timer_start(&handle_, on_tick, timeout_ms, 0);
  armed_for_us_ = deadline == 0 ? 1 : deadline;
}

void TimerHeap::close() {
  closed_ = true;
  uv_timer_stop(&handle_);
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_), nullptr);
}

}  // namespace chatstream::fakellm
