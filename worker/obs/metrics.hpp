#pragma once
// Metrics shared by every worker of a master, in one anonymous shared mapping made before the workers
// are forked. Each worker writes only its own slot (single writer: plain relaxed loads and stores, no
// locked instructions on the hot path); /metrics, answered by any worker, sums all slots, so a scrape
// through nginx sees the whole server whichever worker answers. Counters survive a worker restart
// (the new worker reuses the slot); gauges of a dead worker are reset by the master.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/errc.hpp"

namespace chatstream::obs {

enum class Counter : uint32_t {
  kConnectionsAccepted,
  kConnectionsRejected,
  kRunsComplete,
  kRunsCancelled,
  kRunsDisconnected,
  kRunsTimeout,
  kRunsError,
  kTokensSent,
  kTokenEventsSent,
  kEventsSent,
  kBytesSent,
  kHeartbeatsSent,
  kSlowConsumerCloses,
  kResponses2xx,
  kResponses400,
  kResponses401,
  kResponses403,
  kResponses404,
  kResponses405,
  kResponses408,
  kResponses409,
  kResponses410,
  kResponses413,
  kResponses415,
  kResponses429,
  kResponses431,
  kResponses5xx,
  kDbQueries,
  kPersistDeferred,
  kPersistLost,
  kCheckpointStatements,
  kRunsClosedLost,
  kResumes,
  kResumesRemote,
  kDisconnectGraceExpired,
  kEventsPublished,
  kCount
};

enum class Gauge : uint32_t { kConnections, kActiveStreams, kActiveRuns, kCount };

// Time-to-first-token histogram bucket upper bounds, seconds.
inline constexpr double kTtftBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
inline constexpr size_t kTtftBucketCount = sizeof(kTtftBuckets) / sizeof(kTtftBuckets[0]);

// Latency histograms besides TTFT, all on one bucket list (seconds): the gap between two tokens of a
// run as the provider delivers them (what a reader sees stall), and how long a statement waited
// for a free pooled database connection (the pool's queue, not the statement's own time).
enum class Histogram : uint32_t { kTokenGap, kDbWait, kCount };
inline constexpr double kLatencyBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
inline constexpr size_t kLatencyBucketCount = sizeof(kLatencyBuckets) / sizeof(kLatencyBuckets[0]);

struct HistogramCells {
  std::atomic<uint64_t> buckets[kLatencyBucketCount + 1];  // last one is +Inf
  std::atomic<uint64_t> sum_us;
};

struct alignas(64) WorkerSlot {
  std::atomic<uint64_t> counters[static_cast<size_t>(Counter::kCount)];
  std::atomic<int64_t> gauges[static_cast<size_t>(Gauge::kCount)];
  std::atomic<uint64_t> ttft_buckets[kTtftBucketCount + 1];  // last one is +Inf
  std::atomic<uint64_t> ttft_sum_us;
  std::atomic<uint64_t> run_errors[kErrcCount];  // runs ended by an error, by Errc
  HistogramCells histograms[static_cast<size_t>(Histogram::kCount)];
};

struct SharedMetrics {
  std::atomic<uint64_t> worker_restarts;
  std::atomic<int64_t> workers_running;
  uint32_t slot_count;
  WorkerSlot slots[1];  // slot_count of them

  static SharedMetrics* create(uint32_t slot_count);  // anonymous MAP_SHARED mapping, zeroed
  void reset_gauges(uint32_t slot);
  std::string render_prometheus() const;
};

// The slot this process writes to. Until bind_worker_slot is called, a private slot is used (tests).
void bind_worker_slot(SharedMetrics* shared, uint32_t slot);
SharedMetrics* shared_metrics();
WorkerSlot& local_slot();

inline void add(Counter counter, uint64_t n = 1) {
  auto& cell = local_slot().counters[static_cast<size_t>(counter)];
  cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void gauge_add(Gauge gauge, int64_t n) {
  auto& cell = local_slot().gauges[static_cast<size_t>(gauge)];
  cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline int64_t gauge_value(Gauge gauge) {
  return local_slot().gauges[static_cast<size_t>(gauge)].load(std::memory_order_relaxed);
}
void observe_ttft(double seconds);
// A run ended with error `code`: chatstream_run_errors_total{code=<the row's metric label>}.
inline void count_run_error(Errc code) {
  auto& cell = local_slot().run_errors[static_cast<size_t>(code)];
  cell.store(cell.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
void observe(Histogram histogram, uint64_t micros);
void count_response(int status);

}  // namespace chatstream::obs
