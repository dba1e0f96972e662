#include "load_runner.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "common/clock.hpp"
#include "process_stats.hpp"
#include "requests.hpp"

namespace chatstream::bench {
namespace {

constexpr uint64_t kRampTickMs = 1;  // finest libuv timer; several opens per tick when N / ramp > 1/ms
constexpr uint64_t kSweepTickMs = 250;
constexpr uint64_t kProgressEveryMs = 1000;

uint64_t seconds_to_ms(double seconds) {
  return static_cast<uint64_t>(seconds * 1000 + 0.5);
}

}  // namespace

LoadRunner::LoadRunner(const Options& options) : options_(options), context_(&loop_, options, *this) {}

LoadRunner::~LoadRunner() = default;

bool LoadRunner::run(RunResult& result) {
  result_ = &result;
  if (int rc = uv_loop_init(&loop_); rc != 0) {
    std::fprintf(stderr, "sseload: uv_loop_init: %s\n", uv_strerror(rc));
    return false;
  }
  context_.request = build_stream_request(options_);
  if (options_.unix_path.empty()) {
    auto* address = &context_.server_address;
    int rc = uv_ip4_addr(options_.address.c_str(), options_.port, reinterpret_cast<sockaddr_in*>(address));
    if (rc != 0)
      rc = uv_ip6_addr(options_.address.c_str(), options_.port, reinterpret_cast<sockaddr_in6*>(address));
    if (rc != 0) {
      std::fprintf(stderr, "sseload: bad address %s\n", options_.address.c_str());
      return false;
    }
  }
  slots_.reserve(options_.streams);
  for (uint32_t i = 0; i < options_.streams; ++i) slots_.push_back(std::make_unique<Stream>(context_));

  if (options_.hold) result.rss_before_kib = processes_rss_kib(options_.server_pids);
  std::optional<double> server_cpu_start = processes_cpu_seconds(options_.server_pids);
  double client_cpu_start = own_cpu_seconds();

  uv_timer_init(&loop_, &ramp_timer_);
  uv_timer_init(&loop_, &sweep_timer_);
  uv_timer_init(&loop_, &deadline_timer_);
  uv_timer_init(&loop_, &cut_timer_);
  uv_timer_init(&loop_, &resume_timer_);
  cut_timer_.data = resume_timer_.data = this;
  if (options_.cut_after_tokens > 0) cut_waiting_ = options_.streams;
  uv_signal_init(&loop_, &sigint_);
  uv_signal_init(&loop_, &sigterm_);
  ramp_timer_.data = sweep_timer_.data = deadline_timer_.data = this;
  sigint_.data = sigterm_.data = this;
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);

  uv_update_time(&loop_);
  start_ms_ = uv_now(&loop_);
  start_us_ = now_micros();
  next_progress_ms_ = start_ms_ + kProgressEveryMs;
  uv_timer_start(&ramp_timer_, on_ramp_tick, 0, kRampTickMs);
  uv_timer_start(&sweep_timer_, on_sweep_tick, kSweepTickMs, kSweepTickMs);
  uv_timer_start(&deadline_timer_, on_deadline, seconds_to_ms(options_.duration_s), 0);

  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);

  result.totals = &context_.totals;
  result.duration_s = static_cast<double>(end_us_ - start_us_) / 1e6;
  result.client_cpu_seconds = own_cpu_seconds() - client_cpu_start;
  result.client_max_rss_kib = own_max_rss_kib();
  std::optional<double> server_cpu_end = processes_cpu_seconds(options_.server_pids);
  if (!options_.server_pids.empty() && server_cpu_start && server_cpu_end) {
    result.server_cpu_seconds = *server_cpu_end - *server_cpu_start;
  }
  return true;
}

void LoadRunner::on_ramp_tick(uv_timer_t* timer) {
  static_cast<LoadRunner*>(timer->data)->open_due_streams();
}

// Slot k opens at k x ramp / N: the pacing is computed from elapsed time, so a late tick catches up
// instead of drifting.
void LoadRunner::open_due_streams() {
  uint64_t streams = options_.streams;
  uint64_t due = streams;
  uint64_t ramp_ms = seconds_to_ms(options_.ramp_s);
  if (ramp_ms > 0) due = std::min(streams, (uv_now(&loop_) - start_ms_) * streams / ramp_ms + 1);
  while (slots_opened_ < due && claim_stream()) {
    ++slots_active_;
    slots_[slots_opened_++]->start();
  }
  if (slots_opened_ == streams || stopping_) uv_timer_stop(&ramp_timer_);
  check_hold_reached();
}

bool LoadRunner::claim_stream() {
  Totals& totals = context_.totals;
  if (stopping_ || totals.streams_started >= options_.total) return false;
  ++totals.streams_started;
  return true;
}

void LoadRunner::on_first_event(Stream&) {
  check_hold_reached();
}

void LoadRunner::on_stream_closed(Stream& stream) {
  --slots_active_;
  if (claim_stream()) {
    ++slots_active_;
    stream.start();
    return;
  }
  if (options_.cut_after_tokens > 0) {
    if (!cut_done_ && !stream.reached_cut()) count_cut_ready();  // ended before the cut: nothing to wait for
    if (cut_done_ && stream.was_cut() && cut_closing_ > 0 && --cut_closing_ == 0 && resume_pending_) {
      uv_timer_start(&resume_timer_, on_resume_tick, seconds_to_ms(options_.resume_delay_s), 0);
    }
  }
  check_hold_reached();
  finish_if_idle();
}

void LoadRunner::on_cut_ready(Stream&) {
  count_cut_ready();
}

void LoadRunner::count_cut_ready() {
  if (cut_waiting_ == 0 || --cut_waiting_ > 0 || stopping_) return;
  // Not from inside the stream callback that got here: the cut closes that stream too.
  uv_timer_start(&cut_timer_, on_cut_tick, 0, 0);
}

void LoadRunner::on_cut_tick(uv_timer_t* timer) {
  static_cast<LoadRunner*>(timer->data)->cut_all();
}

// Every connection in one loop turn: the server sees them all drop at once.
void LoadRunner::cut_all() {
  if (cut_done_ || stopping_) return;
  cut_done_ = true;
  result_->cut_at_s = static_cast<double>(now_micros() - start_us_) / 1e6;
  for (auto& slot : slots_) {
    if (slot->cut()) ++cut_closing_;
  }
  resume_pending_ = options_.resume && cut_closing_ > 0;
  if (!options_.quiet) {
    std::fprintf(stderr, "sseload: cut %u streams at %.2f s%s\n", cut_closing_, *result_->cut_at_s,
                 options_.resume ? ", resuming them once all are closed" : "");
  }
}

void LoadRunner::on_resume_tick(uv_timer_t* timer) {
  static_cast<LoadRunner*>(timer->data)->resume_all();
}

void LoadRunner::resume_all() {
  if (!resume_pending_ || stopping_) return;
  resume_pending_ = false;
  result_->resumed_at_s = static_cast<double>(now_micros() - start_us_) / 1e6;
  for (auto& slot : slots_) {
    if (!slot->was_cut() || !slot->idle()) continue;
    ++slots_active_;
    slot->resume();
  }
  if (!options_.quiet) {
    std::fprintf(stderr, "sseload: resumed %" PRIu64 " streams at %.2f s\n", context_.totals.resumes_sent,
                 *result_->resumed_at_s);
  }
}

// --hold: once every stream has its first event (or has failed), the server holds them all; that is
// when its RSS is worth reading, and when the hold time starts.
void LoadRunner::check_hold_reached() {
  if (!options_.hold || holding_ || stopping_) return;
  if (slots_opened_ < options_.streams || context_.totals.awaiting_first_event > 0) return;
  holding_ = true;
  result_->hold_reached = true;
  result_->rss_after_kib = processes_rss_kib(options_.server_pids);
  result_->streams_established_at_rss = context_.totals.streams_established;
  uint64_t elapsed_ms = uv_now(&loop_) - start_ms_;
  uint64_t duration_ms = seconds_to_ms(options_.duration_s);
  uint64_t left_ms = duration_ms > elapsed_ms ? duration_ms - elapsed_ms : 0;
  uint64_t hold_ms = std::min(seconds_to_ms(options_.hold_s), left_ms);
  if (!options_.quiet) {
    std::fprintf(stderr, "sseload: %" PRIu64 " streams established, holding them %.1f s\n",
                 context_.totals.streams_established, static_cast<double>(hold_ms) / 1000);
  }
  uv_timer_start(&deadline_timer_, on_deadline, hold_ms, 0);
}

void LoadRunner::on_deadline(uv_timer_t* timer) {
  static_cast<LoadRunner*>(timer->data)->stop();
}

void LoadRunner::on_signal(uv_signal_t* handle, int) {
  static_cast<LoadRunner*>(handle->data)->stop();
}

void LoadRunner::on_sweep_tick(uv_timer_t* timer) {
  auto* self = static_cast<LoadRunner*>(timer->data);
  uint64_t now_ms = uv_now(&self->loop_);
  for (auto& slot : self->slots_) slot->check_deadlines(now_ms);
  if (!self->options_.quiet && now_ms >= self->next_progress_ms_) {
    self->print_progress(now_ms);
    self->next_progress_ms_ = now_ms + kProgressEveryMs;
  }
}

void LoadRunner::print_progress(uint64_t now_ms) {
  const Totals& totals = context_.totals;
  uint64_t new_events = totals.events - events_at_last_progress_;
  events_at_last_progress_ = totals.events;
  std::fprintf(stderr,
               "sseload %.1fs: open %u, started %" PRIu64 ", established %" PRIu64 ", completed %" PRIu64
               ", failed %" PRIu64 ", events %" PRIu64 " (+%" PRIu64 ")",
               static_cast<double>(now_ms - start_ms_) / 1000, slots_active_, totals.streams_started,
               totals.streams_established, totals.streams_completed, totals.streams_failed, totals.events,
               new_events);
  if (options_.cut_after_tokens > 0) {
    std::fprintf(stderr, ", cut %" PRIu64 ", resumed %" PRIu64 " (established %" PRIu64 ")",
                 totals.streams_cut, totals.resumes_sent, totals.resumes_established);
  }
  std::fputc('\n', stderr);
}

void LoadRunner::stop() {
  if (stopping_) return;
  stopping_ = true;
  uv_timer_stop(&ramp_timer_);
  uv_timer_stop(&cut_timer_);
  uv_timer_stop(&resume_timer_);
  resume_pending_ = false;
  if (holding_) result_->rss_end_kib = processes_rss_kib(options_.server_pids);
  for (auto& slot : slots_) slot->stop(options_.hold);
  finish_if_idle();
}

// The run ends when no stream is open and none will be started: close the loop's own handles so
// uv_run returns.
void LoadRunner::finish_if_idle() {
  if (handles_closed_ || slots_active_ > 0 || resume_pending_) return;
  if (!stopping_ && context_.totals.streams_started < options_.total) return;
  handles_closed_ = true;
  end_us_ = now_micros();
  if (!options_.quiet) print_progress(uv_now(&loop_));
  uv_close(reinterpret_cast<uv_handle_t*>(&ramp_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sweep_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&cut_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&resume_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
}

}  // namespace chatstream::bench
