// Drives a whole sseload run on one libuv loop: opens the first N streams evenly over the ramp
// (one pacing timer), replaces each finished stream at once until the total is reached, enforces
// the per-stream deadlines with one sweep timer, stops everything at --duration (or at the end of
// the hold in --hold mode, or on SIGINT/SIGTERM), and collects what the report prints.
//
// With --cut-after-tokens: once every stream has that many tokens (or has ended), all connections
// are closed at once (one loop turn); with --resume, --resume-delay after the last one closed, every
// cut stream is resumed at once, and the run ends when the resumed streams have.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "options.hpp"
#include "stream.hpp"
#include "stream_context.hpp"

namespace chatstream::bench {

struct RunResult {
  const Totals* totals = nullptr;
  double duration_s = 0;
  double client_cpu_seconds = 0;
  uint64_t client_max_rss_kib = 0;
  std::optional<double> server_cpu_seconds;
  // --hold with --pid: server RSS before the first stream, once all are established, at the end.
  std::optional<uint64_t> rss_before_kib;
  std::optional<uint64_t> rss_after_kib;
  std::optional<uint64_t> rss_end_kib;
  uint64_t streams_established_at_rss = 0;
  bool hold_reached = false;  // --hold: every stream got its first event (or failed) in time
  // --cut-after-tokens: seconds from the start to the cut and to the resumes.
  std::optional<double> cut_at_s;
  std::optional<double> resumed_at_s;
};

class LoadRunner final : StreamOwner {
 public:
  explicit LoadRunner(const Options& options);
  ~LoadRunner();
  LoadRunner(const LoadRunner&) = delete;
  LoadRunner& operator=(const LoadRunner&) = delete;

  // Runs the loop until every stream is closed; false if the loop could not be set up.
  bool run(RunResult& result);

 private:
  static void on_ramp_tick(uv_timer_t* timer);
  static void on_sweep_tick(uv_timer_t* timer);
  static void on_deadline(uv_timer_t* timer);
  static void on_signal(uv_signal_t* handle, int signal_number);
  static void on_cut_tick(uv_timer_t* timer);
  static void on_resume_tick(uv_timer_t* timer);

  // StreamOwner
  bool claim_stream() override;
  void on_first_event(Stream& stream) override;
  void on_cut_ready(Stream& stream) override;
  void on_stream_closed(Stream& stream) override;

  void open_due_streams();
  void check_hold_reached();
  void count_cut_ready();
  void cut_all();
  void resume_all();
  void stop();
  void finish_if_idle();
  void print_progress(uint64_t now_ms);

  const Options& options_;
  uv_loop_t loop_{};
  StreamContext context_;
  std::vector<std::unique_ptr<Stream>> slots_;
  uint32_t slots_opened_ = 0;  // slots started by the ramp; each then restarts itself
  uint32_t slots_active_ = 0;

  uv_timer_t ramp_timer_{};
  uv_timer_t sweep_timer_{};
  uv_timer_t deadline_timer_{};  // --duration, then in --hold the end of the hold
  uv_timer_t cut_timer_{};       // the cut, deferred out of the stream callback that made it due
  uv_timer_t resume_timer_{};    // --resume-delay
  uv_signal_t sigint_{};
  uv_signal_t sigterm_{};

  uint64_t start_us_ = 0;
  uint64_t end_us_ = 0;
  uint64_t start_ms_ = 0;  // loop time at start, for the ramp
  uint64_t next_progress_ms_ = 0;
  uint64_t events_at_last_progress_ = 0;
  bool stopping_ = false;
  bool handles_closed_ = false;
  bool holding_ = false;
  uint32_t cut_waiting_ = 0;  // streams yet to reach --cut-after-tokens (or to end before it)
  uint32_t cut_closing_ = 0;  // cut streams whose connection is not closed yet
  bool cut_done_ = false;
  bool resume_pending_ = false;  // cut streams wait for their resume: the run is not over
  RunResult* result_ = nullptr;
};

}  // namespace chatstream::bench
