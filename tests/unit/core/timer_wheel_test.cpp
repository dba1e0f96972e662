#include "core/timer_wheel.hpp"

#include <gtest/gtest.h>
#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <vector>

namespace chatstream {
namespace {

// The wheel reads time through a plain function pointer, so the fake clock is a global.
uint64_t g_now = 0;
uint64_t fake_now() {
  return g_now;
}

struct Firing {
  int id;
  uint64_t deadline;  // the timer's deadline when it fired
  uint64_t at;        // the clock when it fired
};

// A timer that records when it fires and then runs an optional action (reschedule, cancel, …).
struct Probe {
  Probe(std::vector<Firing>* log, int id) : timer(&Probe::on_fire, this), log(log), id(id) {}
  static void on_fire(void* self) {
    auto* probe = static_cast<Probe*>(self);
    probe->log->push_back({probe->id, probe->timer.deadline_ms(), g_now});
    if (probe->action) probe->action();
  }
  Timer timer;
  std::vector<Firing>* log;
  int id;
  std::function<void()> action;
};

std::vector<int> ids(const std::vector<Firing>& log) {
  std::vector<int> out;
  for (const Firing& f : log) out.push_back(f.id);
  return out;
}

class TimerWheelTest : public ::testing::Test {
 protected:
  // Not a multiple of the wheel span, so slot indexes wrap in the middle of the tests.
  static constexpr uint64_t kStart = 1'000'123;

  static uint64_t reset_clock() { return g_now = kStart; }

  // Moves the clock one millisecond at a time, advancing the wheel at every step.
  void step_to(uint64_t t) {
    while (g_now < t) {
      ++g_now;
      wheel_.advance_to(g_now);
    }
  }
  // Moves the clock straight to `t` and advances the wheel once.
  void jump_to(uint64_t t) {
    g_now = t;
    wheel_.advance_to(t);
  }

  uint64_t start_ = reset_clock();  // before wheel_: the wheel reads the clock when constructed
  TimerWheel wheel_{nullptr, &fake_now};
  std::vector<Firing> log_;
};

TEST_F(TimerWheelTest, ReadsTheInjectedClock) {
  EXPECT_EQ(wheel_.now_ms(), kStart);
  g_now += 5;
  EXPECT_EQ(wheel_.now_ms(), kStart + 5);
}

TEST_F(TimerWheelTest, FiresAtItsDeadlineAndNotBefore) {
  Probe probe(&log_, 1);
  wheel_.schedule(probe.timer, kStart + 10);
  EXPECT_TRUE(probe.timer.scheduled());
  EXPECT_EQ(probe.timer.deadline_ms(), kStart + 10);
  step_to(kStart + 9);
  EXPECT_TRUE(log_.empty());
  step_to(kStart + 10);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_EQ(log_[0].at, kStart + 10);
  EXPECT_FALSE(probe.timer.scheduled());
  EXPECT_EQ(wheel_.size(), 0u);
  step_to(kStart + 5000);
  EXPECT_EQ(log_.size(), 1u);  // once
}

TEST_F(TimerWheelTest, ScheduleInIsRelativeToTheClock) {
  Probe probe(&log_, 1);
  g_now = kStart + 7;
  wheel_.schedule_in(probe.timer, 20);
  EXPECT_EQ(probe.timer.deadline_ms(), kStart + 27);
  step_to(kStart + 26);
  EXPECT_TRUE(log_.empty());
  step_to(kStart + 27);
  EXPECT_EQ(log_.size(), 1u);
}

TEST_F(TimerWheelTest, FiresInDeadlineOrderAndInScheduleOrderForEqualDeadlines) {
  const uint64_t offsets[] = {30, 5, 17, 5, 4095, 2, 1000, 17, 1};
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < 9; ++i) {
    probes.push_back(std::make_unique<Probe>(&log_, i));
    wheel_.schedule(probes.back()->timer, kStart + offsets[i]);
  }
  EXPECT_EQ(wheel_.size(), 9u);
  step_to(kStart + 4095);
  EXPECT_EQ(ids(log_), (std::vector<int>{8, 5, 1, 3, 2, 7, 0, 6, 4}));
  for (const Firing& f : log_) EXPECT_EQ(f.at, f.deadline);
  EXPECT_EQ(wheel_.size(), 0u);
}

TEST_F(TimerWheelTest, OneLargeAdvanceStillFiresInDeadlineOrder) {
  const uint64_t offsets[] = {300, 4000, 1, 2500, 64, 65, 63};
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < 7; ++i) {
    probes.push_back(std::make_unique<Probe>(&log_, i));
    wheel_.schedule(probes.back()->timer, kStart + offsets[i]);
  }
  jump_to(kStart + 4000);
  EXPECT_EQ(ids(log_), (std::vector<int>{2, 6, 4, 5, 0, 3, 1}));
}

TEST_F(TimerWheelTest, DeadlinesBeyondTheWheelSpanFireOnTime) {
  const uint64_t span = TimerWheel::kSlots;
  const uint64_t offsets[] = {span - 1, span, span + 1, 5000, 2 * span, 3 * span + 7, 10000};
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < 7; ++i) {
    probes.push_back(std::make_unique<Probe>(&log_, i));
    wheel_.schedule(probes.back()->timer, kStart + offsets[i]);
  }
  step_to(kStart + 3 * span + 7);
  ASSERT_EQ(log_.size(), 7u);
  for (const Firing& f : log_) {
    EXPECT_EQ(f.at, kStart + offsets[f.id]) << "timer " << f.id << " fired " << int64_t(f.at - f.deadline);
  }
  EXPECT_EQ(ids(log_), (std::vector<int>{0, 1, 2, 3, 4, 6, 5}));
}

TEST_F(TimerWheelTest, DeadlineBeyondTheSpanDoesNotFireARoundEarlyWithCoarseAdvances) {
  Probe probe(&log_, 1);
  wheel_.schedule(probe.timer, kStart + 4096 + 300);
  for (uint64_t t = kStart + 250; t <= kStart + 4096 + 250; t += 250) {
    jump_to(t);
    ASSERT_TRUE(log_.empty()) << "fired at +" << (t - kStart);
  }
  jump_to(kStart + 4096 + 500);
  ASSERT_EQ(log_.size(), 1u);
}

TEST_F(TimerWheelTest, PastDeadlineFiresOnTheNextAdvance) {
  jump_to(kStart + 100);
  Probe probe(&log_, 1);
  wheel_.schedule(probe.timer, kStart + 10);  // already past
  EXPECT_EQ(wheel_.size(), 1u);
  jump_to(kStart + 101);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_EQ(log_[0].at, kStart + 101);
  EXPECT_EQ(wheel_.size(), 0u);
}

TEST_F(TimerWheelTest, DeadlineAtTheCurrentTimeFiresOnTheNextAdvance) {
  jump_to(kStart + 100);
  Probe probe(&log_, 1);
  wheel_.schedule(probe.timer, kStart + 100);
  jump_to(kStart + 101);
  EXPECT_EQ(log_.size(), 1u);
}

TEST_F(TimerWheelTest, FirstTimerAfterALongIdlePeriodFiresOnTime) {
  g_now = kStart + 1'000'000;  // the wheel was not advanced meanwhile
  Probe probe(&log_, 1);
  wheel_.schedule_in(probe.timer, 10);
  step_to(kStart + 1'000'009);
  EXPECT_TRUE(log_.empty());
  step_to(kStart + 1'000'010);
  EXPECT_EQ(log_.size(), 1u);
}

TEST_F(TimerWheelTest, ALongStallFiresEveryDueTimerOnceAndNoOtherTimer) {
  Probe a(&log_, 1), b(&log_, 2), c(&log_, 3), later(&log_, 4);
  wheel_.schedule(a.timer, kStart + 1);
  wheel_.schedule(b.timer, kStart + 100);
  wheel_.schedule(c.timer, kStart + 3000);
  wheel_.schedule(later.timer, kStart + 20000);
  jump_to(kStart + 10000);
  std::vector<int> fired = ids(log_);
  std::sort(fired.begin(), fired.end());
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(wheel_.size(), 1u);
  step_to(kStart + 19999);
  EXPECT_EQ(log_.size(), 3u);
  step_to(kStart + 20000);
  EXPECT_EQ(log_.size(), 4u);
}

TEST_F(TimerWheelTest, PeriodicTimerWithAbsoluteDeadlinesDoesNotDrift) {
  const uint64_t period = 15;
  Probe probe(&log_, 1);
  probe.action = [&] { wheel_.schedule(probe.timer, probe.timer.deadline_ms() + period); };
  wheel_.schedule(probe.timer, kStart + period);
  step_to(kStart + 1000 * period);
  ASSERT_EQ(log_.size(), 1000u);
  for (size_t k = 0; k < log_.size(); ++k) {
    ASSERT_EQ(log_[k].deadline, kStart + (k + 1) * period) << "period " << k;
    ASSERT_EQ(log_[k].at, log_[k].deadline) << "period " << k;
  }
  EXPECT_EQ(wheel_.size(), 1u);
  wheel_.cancel(probe.timer);
}

TEST_F(TimerWheelTest, PeriodicTimerCatchesUpWithoutDriftUnderIrregularAdvances) {
  const uint64_t period = 15;
  Probe probe(&log_, 1);
  probe.action = [&] { wheel_.schedule(probe.timer, probe.timer.deadline_ms() + period); };
  wheel_.schedule(probe.timer, kStart + period);
  std::mt19937 random(7);
  while (g_now < kStart + 1000 * period) jump_to(std::min(g_now + 1 + random() % 60, kStart + 1000 * period));
  ASSERT_EQ(log_.size(), 1000u);
  for (size_t k = 0; k < log_.size(); ++k) {
    ASSERT_EQ(log_[k].deadline, kStart + (k + 1) * period) << "period " << k;
    ASSERT_GE(log_[k].at, log_[k].deadline) << "period " << k;
    ASSERT_LT(log_[k].at, log_[k].deadline + 60) << "period " << k;
  }
  wheel_.cancel(probe.timer);
}

TEST_F(TimerWheelTest, PeriodLongerThanTheWheelSpanDoesNotDrift) {
  const uint64_t period = 5000;
  Probe probe(&log_, 1);
  probe.action = [&] { wheel_.schedule(probe.timer, probe.timer.deadline_ms() + period); };
  wheel_.schedule(probe.timer, kStart + period);
  step_to(kStart + 10 * period);
  ASSERT_EQ(log_.size(), 10u);
  for (size_t k = 0; k < log_.size(); ++k) EXPECT_EQ(log_[k].at, kStart + (k + 1) * period);
  wheel_.cancel(probe.timer);
}

TEST_F(TimerWheelTest, CallbackCanCancelATimerDueInTheSameTick) {
  Probe first(&log_, 1), second(&log_, 2), third(&log_, 3);
  first.action = [&] { wheel_.cancel(second.timer); };
  wheel_.schedule(first.timer, kStart + 10);
  wheel_.schedule(second.timer, kStart + 10);
  wheel_.schedule(third.timer, kStart + 10);
  step_to(kStart + 10);
  EXPECT_EQ(ids(log_), (std::vector<int>{1, 3}));
  EXPECT_FALSE(second.timer.scheduled());
  EXPECT_EQ(wheel_.size(), 0u);
  step_to(kStart + 5000);
  EXPECT_EQ(log_.size(), 2u);
}

TEST_F(TimerWheelTest, CallbackCanCancelATimerDueLaterInTheSameAdvance) {
  Probe first(&log_, 1), second(&log_, 2);
  first.action = [&] { wheel_.cancel(second.timer); };
  wheel_.schedule(first.timer, kStart + 10);
  wheel_.schedule(second.timer, kStart + 20);
  jump_to(kStart + 30);
  EXPECT_EQ(ids(log_), (std::vector<int>{1}));
  EXPECT_EQ(wheel_.size(), 0u);
}

TEST_F(TimerWheelTest, CallbackCanPostponeATimerDueInTheSameTick) {
  Probe first(&log_, 1), second(&log_, 2);
  first.action = [&] { wheel_.schedule(second.timer, kStart + 50); };
  wheel_.schedule(first.timer, kStart + 10);
  wheel_.schedule(second.timer, kStart + 10);
  step_to(kStart + 49);
  EXPECT_EQ(ids(log_), (std::vector<int>{1}));
  EXPECT_EQ(wheel_.size(), 1u);
  step_to(kStart + 50);
  EXPECT_EQ(ids(log_), (std::vector<int>{1, 2}));
  EXPECT_EQ(log_[1].at, kStart + 50);
}

TEST_F(TimerWheelTest, TimerScheduledFromACallbackFiresLaterInTheSameAdvance) {
  Probe first(&log_, 1), second(&log_, 2);
  first.action = [&] { wheel_.schedule(second.timer, kStart + 15); };
  wheel_.schedule(first.timer, kStart + 10);
  jump_to(kStart + 20);
  EXPECT_EQ(ids(log_), (std::vector<int>{1, 2}));
  EXPECT_EQ(log_[1].deadline, kStart + 15);
}

TEST_F(TimerWheelTest, CallbackReschedulingItselfForNowFiresOnTheNextAdvanceNotInALoop) {
  Probe probe(&log_, 1);
  int fired = 0;
  probe.action = [&] {
    if (++fired < 3) wheel_.schedule(probe.timer, g_now);
  };
  wheel_.schedule(probe.timer, kStart + 10);
  step_to(kStart + 10);
  EXPECT_EQ(fired, 1);
  step_to(kStart + 11);
  EXPECT_EQ(fired, 2);
  step_to(kStart + 12);
  EXPECT_EQ(fired, 3);
}

TEST_F(TimerWheelTest, ReschedulingAScheduledTimerMovesIt) {
  Probe probe(&log_, 1);
  wheel_.schedule(probe.timer, kStart + 10);
  wheel_.schedule(probe.timer, kStart + 50);
  EXPECT_EQ(wheel_.size(), 1u);
  EXPECT_EQ(probe.timer.deadline_ms(), kStart + 50);
  step_to(kStart + 49);
  EXPECT_TRUE(log_.empty());
  step_to(kStart + 50);
  ASSERT_EQ(log_.size(), 1u);

  wheel_.schedule(probe.timer, kStart + 500);
  wheel_.schedule(probe.timer, kStart + 60);  // earlier
  step_to(kStart + 1000);
  ASSERT_EQ(log_.size(), 2u);
  EXPECT_EQ(log_[1].at, kStart + 60);
}

TEST_F(TimerWheelTest, CancelledTimerDoesNotFire) {
  Probe probe(&log_, 1);
  wheel_.schedule(probe.timer, kStart + 10);
  wheel_.cancel(probe.timer);
  EXPECT_FALSE(probe.timer.scheduled());
  step_to(kStart + 100);
  EXPECT_TRUE(log_.empty());
}

TEST_F(TimerWheelTest, SizeCountsScheduledTimers) {
  Probe a(&log_, 1), b(&log_, 2), c(&log_, 3);
  EXPECT_EQ(wheel_.size(), 0u);
  wheel_.schedule(a.timer, kStart + 10);
  wheel_.schedule(b.timer, kStart + 20);
  wheel_.schedule(c.timer, kStart + 9000);
  EXPECT_EQ(wheel_.size(), 3u);
  wheel_.schedule(b.timer, kStart + 30);  // a move, not a new timer
  EXPECT_EQ(wheel_.size(), 3u);
  wheel_.cancel(c.timer);
  EXPECT_EQ(wheel_.size(), 2u);
  wheel_.cancel(c.timer);  // not scheduled: no change
  EXPECT_EQ(wheel_.size(), 2u);
  step_to(kStart + 10);
  EXPECT_EQ(wheel_.size(), 1u);
  step_to(kStart + 30);
  EXPECT_EQ(wheel_.size(), 0u);
}

// timer_wheel.hpp: "~Timer cancels itself".
TEST_F(TimerWheelTest, DestroyingAScheduledTimerCancelsIt) {
  {
    Probe probe(&log_, 1);
    wheel_.schedule(probe.timer, kStart + 10);
    EXPECT_EQ(wheel_.size(), 1u);
  }
  EXPECT_EQ(wheel_.size(), 0u);
  step_to(kStart + 100);
  EXPECT_TRUE(log_.empty());
}

TEST_F(TimerWheelTest, CallbackCanDestroyATimerDueInTheSameTick) {
  auto doomed = std::make_unique<Probe>(&log_, 2);
  Probe first(&log_, 1);
  first.action = [&] { doomed.reset(); };
  wheel_.schedule(first.timer, kStart + 10);
  wheel_.schedule(doomed->timer, kStart + 10);
  step_to(kStart + 10);
  EXPECT_EQ(ids(log_), (std::vector<int>{1}));
  EXPECT_EQ(wheel_.size(), 0u);
}

// The same wheel on a real loop: one uv_timer_t, monotonic clock, callbacks in deadline order and never
// before their deadline.
struct LoopProbe {
  LoopProbe(TimerWheel* wheel, std::vector<int>* order, int id)
      : timer(&LoopProbe::on_fire, this), wheel(wheel), order(order), id(id) {}
  static void on_fire(void* self) {
    auto* probe = static_cast<LoopProbe*>(self);
    probe->fired_at = probe->wheel->now_ms();
    probe->order->push_back(probe->id);
  }
  Timer timer;
  TimerWheel* wheel;
  std::vector<int>* order;
  int id;
  uint64_t fired_at = 0;
};

TEST(TimerWheelOnALoop, FiresTimersInOrderAndNotBeforeTheirDeadlines) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  // A guard that ends the test instead of hanging if the wheel never fires (unref'd: it does not keep
  // the loop alive by itself).
  uv_timer_t guard;
  uv_timer_init(&loop, &guard);
  uv_timer_start(
      &guard, [](uv_timer_t* handle) { uv_stop(handle->loop); }, 5000, 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&guard));

  std::vector<int> order;
  {
    TimerWheel wheel(&loop);
    LoopProbe at20(&wheel, &order, 20), at5(&wheel, &order, 5), at10(&wheel, &order, 10);
    uint64_t start = wheel.now_ms();
    wheel.schedule_in(at20.timer, 20);
    wheel.schedule_in(at5.timer, 5);
    wheel.schedule_in(at10.timer, 10);
    EXPECT_EQ(wheel.size(), 3u);

    uv_run(&loop, UV_RUN_DEFAULT);  // returns once the wheel has nothing left to wait for

    EXPECT_EQ(order, (std::vector<int>{5, 10, 20}));
    EXPECT_EQ(wheel.size(), 0u);
    for (const LoopProbe* probe : {&at5, &at10, &at20}) {
      EXPECT_GE(probe->fired_at, probe->timer.deadline_ms()) << "timer " << probe->id;
      EXPECT_GE(probe->fired_at, start + static_cast<uint64_t>(probe->id)) << "timer " << probe->id;
    }
    EXPECT_LT(at20.fired_at, start + 1000);  // and not absurdly late
    wheel.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace chatstream
