#include "obs/metrics.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <new>

namespace chatstream::obs {

namespace {
WorkerSlot g_private_slot;
WorkerSlot* g_slot = &g_private_slot;
SharedMetrics* g_shared = nullptr;

uint64_t sum_counter(const SharedMetrics& m, Counter c) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < m.slot_count; ++i) total += m.slots[i].counters[static_cast<size_t>(c)].load();
  return total;
}
int64_t sum_gauge(const SharedMetrics& m, Gauge g) {
  int64_t total = 0;
  for (uint32_t i = 0; i < m.slot_count; ++i) total += m.slots[i].gauges[static_cast<size_t>(g)].load();
  return total;
}

void line(std::string& out, const char* name, const char* labels, uint64_t value) {
  out += name;
  out += labels;
  out.push_back(' ');
  out += std::to_string(value);
  out.push_back('\n');
}
void help(std::string& out, const char* name, const char* type, const char* text) {
  out += "# HELP ";
  out += name;
  out.push_back(' ');
  out += text;
  out += "\n# TYPE ";
  out += name;
  out.push_back(' ');
  out += type;
  out.push_back('\n');
}
}  // namespace

SharedMetrics* SharedMetrics::create(uint32_t slot_count) {
  size_t bytes = sizeof(SharedMetrics) + sizeof(WorkerSlot) * (slot_count > 0 ? slot_count - 1 : 0);
  void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  // The mapping is zero-filled, which is the initial state of every atomic in it.
  auto* shared = static_cast<SharedMetrics*>(memory);
  shared->slot_count = slot_count;
  return shared;
}

void SharedMetrics::reset_gauges(uint32_t slot) {
  if (slot >= slot_count) return;
  for (auto& gauge : slots[slot].gauges) gauge.store(0);
}

void bind_worker_slot(SharedMetrics* shared, uint32_t slot) {
  g_shared = shared;
  g_slot = shared && slot < shared->slot_count ? &shared->slots[slot] : &g_private_slot;
}
SharedMetrics* shared_metrics() { return g_shared; }
WorkerSlot& local_slot() { return *g_slot; }

void observe_ttft(double seconds) {
  WorkerSlot& slot = local_slot();
  size_t bucket = 0;
  while (bucket < kTtftBucketCount && seconds > kTtftBuckets[bucket]) ++bucket;
  auto& cell = slot.ttft_buckets[bucket];
  cell.store(cell.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  auto micros = static_cast<uint64_t>(seconds * 1e6);
  slot.ttft_sum_us.store(slot.ttft_sum_us.load(std::memory_order_relaxed) + micros, std::memory_order_relaxed);
}

void observe(Histogram histogram, uint64_t micros) {
  HistogramCells& cells = local_slot().histograms[static_cast<size_t>(histogram)];
  double seconds = static_cast<double>(micros) / 1e6;
  size_t bucket = 0;
  while (bucket < kLatencyBucketCount && seconds > kLatencyBuckets[bucket]) ++bucket;
  auto& cell = cells.buckets[bucket];
  cell.store(cell.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  cells.sum_us.store(cells.sum_us.load(std::memory_order_relaxed) + micros, std::memory_order_relaxed);
}

void count_response(int status) {
  Counter counter;
  switch (status) {
    case 400: counter = Counter::kResponses400; break;
    case 401: counter = Counter::kResponses401; break;
    case 403: counter = Counter::kResponses403; break;
    case 404: counter = Counter::kResponses404; break;
    case 405: counter = Counter::kResponses405; break;
    case 408: counter = Counter::kResponses408; break;
    case 409: counter = Counter::kResponses409; break;
    case 410: counter = Counter::kResponses410; break;
    case 413: counter = Counter::kResponses413; break;
    case 415: counter = Counter::kResponses415; break;
    case 429: counter = Counter::kResponses429; break;
    case 431: counter = Counter::kResponses431; break;
    default: counter = status >= 500 ? Counter::kResponses5xx : Counter::kResponses2xx;
  }
  add(counter);
}

std::string SharedMetrics::render_prometheus() const {
  const SharedMetrics& m = *this;
  std::string out;
  out.reserve(4096);
  auto counter = [&](const char* name, const char* text, Counter c) {
    help(out, name, "counter", text);
    line(out, name, "", sum_counter(m, c));
  };
  auto gauge = [&](const char* name, const char* text, Gauge g) {
    help(out, name, "gauge", text);
    int64_t value = sum_gauge(m, g);
    line(out, name, "", value > 0 ? static_cast<uint64_t>(value) : 0);
  };
  gauge("chatstream_connections", "Open client connections.", Gauge::kConnections);
  counter("chatstream_connections_accepted_total", "Client connections accepted.", Counter::kConnectionsAccepted);
  counter("chatstream_connections_rejected_total", "Connections refused with 503 over --max-connections.",
          Counter::kConnectionsRejected);
  gauge("chatstream_active_streams", "SSE streams in progress.", Gauge::kActiveStreams);
  gauge("chatstream_active_runs", "Runs in progress (streams and POST /chat).", Gauge::kActiveRuns);

  help(out, "chatstream_runs_total", "counter", "Finished runs by final status.");
  line(out, "chatstream_runs_total", "{status=\"complete\"}", sum_counter(m, Counter::kRunsComplete));
  line(out, "chatstream_runs_total", "{status=\"cancelled\"}", sum_counter(m, Counter::kRunsCancelled));
  line(out, "chatstream_runs_total", "{status=\"disconnected\"}", sum_counter(m, Counter::kRunsDisconnected));
  line(out, "chatstream_runs_total", "{status=\"timeout\"}", sum_counter(m, Counter::kRunsTimeout));
  line(out, "chatstream_runs_total", "{status=\"error\"}", sum_counter(m, Counter::kRunsError));

  help(out, "chatstream_run_errors_total", "counter", "Runs ended by an error event, by code.");
  for (size_t e = 0; e < kErrcCount; ++e) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < m.slot_count; ++i) total += m.slots[i].run_errors[e].load(std::memory_order_relaxed);
    std::string labels = "{code=\"";
    labels += errc_row(static_cast<Errc>(e)).metric;
    labels += "\"}";
    line(out, "chatstream_run_errors_total", labels.c_str(), total);
  }

  help(out, "chatstream_time_to_first_token_seconds", "histogram",
       "Time from request to the first token written to the client.");
  uint64_t cumulative = 0;
  uint64_t sum_us = 0;
  for (size_t b = 0; b <= kTtftBucketCount; ++b) {
    for (uint32_t i = 0; i < m.slot_count; ++i) cumulative += m.slots[i].ttft_buckets[b].load();
    char labels[48];
    if (b < kTtftBucketCount) {
      std::snprintf(labels, sizeof labels, "{le=\"%g\"}", kTtftBuckets[b]);
    } else {
      std::snprintf(labels, sizeof labels, "{le=\"+Inf\"}");
    }
    line(out, "chatstream_time_to_first_token_seconds_bucket", labels, cumulative);
  }
  for (uint32_t i = 0; i < m.slot_count; ++i) sum_us += m.slots[i].ttft_sum_us.load();
  char sum[48];
  std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(sum_us) / 1e6);
  out += "chatstream_time_to_first_token_seconds_sum ";
  out += sum;
  out.push_back('\n');
  line(out, "chatstream_time_to_first_token_seconds_count", "", cumulative);

  auto histogram = [&](const char* name, const char* text, Histogram h) {
    help(out, name, "histogram", text);
    std::string bucket_name = std::string(name) + "_bucket";
    uint64_t cumulative = 0, sum_us = 0;
    for (size_t b = 0; b <= kLatencyBucketCount; ++b) {
      for (uint32_t i = 0; i < m.slot_count; ++i) cumulative += m.slots[i].histograms[static_cast<size_t>(h)].buckets[b].load();
      char labels[48];
      if (b < kLatencyBucketCount) {
        std::snprintf(labels, sizeof labels, "{le=\"%g\"}", kLatencyBuckets[b]);
      } else {
        std::snprintf(labels, sizeof labels, "{le=\"+Inf\"}");
      }
      line(out, bucket_name.c_str(), labels, cumulative);
    }
    for (uint32_t i = 0; i < m.slot_count; ++i) sum_us += m.slots[i].histograms[static_cast<size_t>(h)].sum_us.load();
    char sum[64];
    std::snprintf(sum, sizeof sum, "%s_sum %.6f\n", name, static_cast<double>(sum_us) / 1e6);
    out += sum;
    line(out, (std::string(name) + "_count").c_str(), "", cumulative);
  };
  histogram("chatstream_token_gap_seconds", "Time between two consecutive tokens of a run, as the provider delivered them.",
            Histogram::kTokenGap);
  histogram("chatstream_db_wait_seconds", "Time a database statement waited for a free pooled connection.",
            Histogram::kDbWait);

  counter("chatstream_tokens_sent_total", "Provider tokens written to clients.", Counter::kTokensSent);
  counter("chatstream_token_events_sent_total", "token events written (merged tokens count once).",
          Counter::kTokenEventsSent);
  counter("chatstream_events_sent_total", "SSE events written (all types).", Counter::kEventsSent);
  counter("chatstream_bytes_sent_total", "Response bytes handed to the kernel.", Counter::kBytesSent);
  counter("chatstream_heartbeats_sent_total", "Heartbeat comments written.", Counter::kHeartbeatsSent);
  counter("chatstream_slow_consumer_closes_total", "Clients dropped for staying over the output cap.",
          Counter::kSlowConsumerCloses);

  help(out, "chatstream_http_responses_total", "counter", "HTTP responses by status.");
  static const std::pair<const char*, Counter> kStatuses[] = {
      {"2xx", Counter::kResponses2xx}, {"400", Counter::kResponses400}, {"401", Counter::kResponses401},
      {"403", Counter::kResponses403}, {"404", Counter::kResponses404},
      {"405", Counter::kResponses405}, {"408", Counter::kResponses408}, {"413", Counter::kResponses413},
      {"409", Counter::kResponses409}, {"410", Counter::kResponses410}, {"415", Counter::kResponses415}, {"429", Counter::kResponses429}, {"431", Counter::kResponses431}, {"5xx", Counter::kResponses5xx}};
  for (const auto& [code, c] : kStatuses) {
    std::string labels = std::string("{code=\"") + code + "\"}";
    line(out, "chatstream_http_responses_total", labels.c_str(), sum_counter(m, c));
  }

  counter("chatstream_db_queries_total", "Database statements completed (or failed).", Counter::kDbQueries);
  counter("chatstream_persist_deferred_total",
          "Conversation writes kept in memory because the database was unavailable (retried).",
          Counter::kPersistDeferred);
  counter("chatstream_persist_lost_total", "Conversation writes that could not be saved.", Counter::kPersistLost);
  counter("chatstream_checkpoint_statements_total",
          "Checkpoint statements (one per worker per --checkpoint-interval, for all of its runs).",
          Counter::kCheckpointStatements);
  counter("chatstream_worker_lost_runs_total", "Runs closed as worker_lost because their worker was gone.",
          Counter::kRunsClosedLost);
  counter("chatstream_resumes_total", "Streams resumed (GET /chat/stream/{run_id}) on the worker that owns the run.",
          Counter::kResumes);
  counter("chatstream_resumes_remote_total",
          "Streams resumed on a worker that does not own the run (replayed from PostgreSQL, followed by NOTIFY).",
          Counter::kResumesRemote);
  counter("chatstream_disconnect_grace_expired_total",
          "Runs cancelled because their client left and no resume came within --disconnect-grace.",
          Counter::kDisconnectGraceExpired);
  counter("chatstream_events_published_total",
          "Events the owner of a run sent through PostgreSQL to readers on other workers.", Counter::kEventsPublished);

  help(out, "chatstream_workers", "gauge", "Worker processes running.");
  line(out, "chatstream_workers", "", static_cast<uint64_t>(std::max<int64_t>(0, m.workers_running.load())));
  help(out, "chatstream_worker_restarts_total", "counter", "Workers restarted by the master after dying.");
  line(out, "chatstream_worker_restarts_total", "", m.worker_restarts.load());
  return out;
}

}  // namespace chatstream::obs
