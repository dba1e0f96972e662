#include "obs/metrics.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace chatstream::obs {
namespace {

// The value of the sample `name` (with its labels, e.g. `x_total{code="404"}`) in Prometheus text, or -1.
double sample(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 && line[name.size()] == ' ') {
      return std::strtod(line.c_str() + name.size() + 1, nullptr);
    }
  }
  ADD_FAILURE() << "no sample " << name;
  return -1;
}

std::string bucket(const char* le) {
  return std::string("chatstream_time_to_first_token_seconds_bucket{le=\"") + le + "\"}";
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    shared_ = SharedMetrics::create(2);
    ASSERT_NE(shared_, nullptr);
  }
  // Back to the private slot so no other test writes into this mapping.
  void TearDown() override { bind_worker_slot(nullptr, 0); }

  // Writes what two workers would have written, each into its own slot.
  void record_two_workers() {
    bind_worker_slot(shared_, 0);
    add(Counter::kConnectionsAccepted, 3);
    add(Counter::kRunsComplete);
    add(Counter::kRunsComplete);
    count_run_error(Errc::kSlowConsumer);
    gauge_add(Gauge::kConnections, 5);
    gauge_add(Gauge::kActiveStreams, 2);
    observe_ttft(0.0005);
    observe_ttft(0.003);
    count_response(200);
    count_response(404);

    bind_worker_slot(shared_, 1);
    add(Counter::kConnectionsAccepted, 4);
    add(Counter::kTokensSent, 1000);
    gauge_add(Gauge::kConnections, 1);
    observe_ttft(0.001);  // on a bucket bound: counted in that bucket (le = less or equal)
    observe_ttft(0.7);
    observe_ttft(20.0);
    count_response(201);
    count_response(415);
    count_response(503);
  }

  SharedMetrics* shared_ = nullptr;
};

TEST_F(MetricsTest, CreateGivesZeroedSlots) {
  EXPECT_EQ(shared_->slot_count, 2u);
  for (uint32_t slot = 0; slot < 2; ++slot) {
    for (const auto& counter : shared_->slots[slot].counters) EXPECT_EQ(counter.load(), 0u);
    for (const auto& gauge : shared_->slots[slot].gauges) EXPECT_EQ(gauge.load(), 0);
  }
  std::string text = shared_->render_prometheus();
  EXPECT_EQ(sample(text, "chatstream_connections_accepted_total"), 0);
  EXPECT_EQ(sample(text, bucket("+Inf")), 0);
}

TEST_F(MetricsTest, BindingChoosesTheSlotThatIsWritten) {
  bind_worker_slot(shared_, 1);
  EXPECT_EQ(shared_metrics(), shared_);
  EXPECT_EQ(&local_slot(), &shared_->slots[1]);
  add(Counter::kHeartbeatsSent, 2);
  EXPECT_EQ(shared_->slots[1].counters[static_cast<size_t>(Counter::kHeartbeatsSent)].load(), 2u);
  EXPECT_EQ(shared_->slots[0].counters[static_cast<size_t>(Counter::kHeartbeatsSent)].load(), 0u);

  bind_worker_slot(nullptr, 0);
  EXPECT_EQ(shared_metrics(), nullptr);
  add(Counter::kHeartbeatsSent, 5);  // goes to the private slot
  EXPECT_EQ(shared_->slots[1].counters[static_cast<size_t>(Counter::kHeartbeatsSent)].load(), 2u);
}

TEST_F(MetricsTest, GaugeValueReadsTheLocalSlot) {
  bind_worker_slot(shared_, 0);
  gauge_add(Gauge::kActiveRuns, 3);
  gauge_add(Gauge::kActiveRuns, -1);
  EXPECT_EQ(gauge_value(Gauge::kActiveRuns), 2);
  bind_worker_slot(shared_, 1);
  EXPECT_EQ(gauge_value(Gauge::kActiveRuns), 0);
}

TEST_F(MetricsTest, RenderSumsCountersAndGaugesOfAllSlots) {
  record_two_workers();
  std::string text = shared_->render_prometheus();
  EXPECT_EQ(sample(text, "chatstream_connections_accepted_total"), 7);
  EXPECT_EQ(sample(text, "chatstream_connections"), 6);
  EXPECT_EQ(sample(text, "chatstream_active_streams"), 2);
  EXPECT_EQ(sample(text, "chatstream_active_runs"), 0);
  EXPECT_EQ(sample(text, "chatstream_runs_total{status=\"complete\"}"), 2);
  EXPECT_EQ(sample(text, "chatstream_runs_total{status=\"error\"}"), 0);
  EXPECT_EQ(sample(text, "chatstream_run_errors_total{code=\"slow_consumer\"}"), 1);
  EXPECT_EQ(sample(text, "chatstream_tokens_sent_total"), 1000);
  EXPECT_EQ(sample(text, "chatstream_http_responses_total{code=\"2xx\"}"), 2);
  EXPECT_EQ(sample(text, "chatstream_http_responses_total{code=\"404\"}"), 1);
  EXPECT_EQ(sample(text, "chatstream_http_responses_total{code=\"415\"}"), 1);
  EXPECT_EQ(sample(text, "chatstream_http_responses_total{code=\"5xx\"}"), 1);
  EXPECT_EQ(sample(text, "chatstream_http_responses_total{code=\"400\"}"), 0);
}

TEST_F(MetricsTest, RendersHelpAndTypeLines) {
  std::string text = shared_->render_prometheus();
  EXPECT_NE(text.find("# TYPE chatstream_connections_accepted_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE chatstream_connections gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE chatstream_time_to_first_token_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("# HELP chatstream_runs_total "), std::string::npos);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
}

TEST_F(MetricsTest, HistogramBucketsAreCumulativeAcrossSlots) {
  record_two_workers();
  std::string text = shared_->render_prometheus();
  // Observations: 0.0005, 0.001, 0.003, 0.7, 20.
  EXPECT_EQ(sample(text, bucket("0.001")), 2);
  EXPECT_EQ(sample(text, bucket("0.0025")), 2);
  EXPECT_EQ(sample(text, bucket("0.005")), 3);
  EXPECT_EQ(sample(text, bucket("0.01")), 3);
  EXPECT_EQ(sample(text, bucket("0.5")), 3);
  EXPECT_EQ(sample(text, bucket("1")), 4);
  EXPECT_EQ(sample(text, bucket("10")), 4);
  EXPECT_EQ(sample(text, bucket("+Inf")), 5);
  EXPECT_EQ(sample(text, "chatstream_time_to_first_token_seconds_count"), 5);
  EXPECT_NEAR(sample(text, "chatstream_time_to_first_token_seconds_sum"), 20.7045, 1e-5);
}

TEST_F(MetricsTest, HistogramHasEveryBucketInIncreasingOrder) {
  record_two_workers();
  std::string text = shared_->render_prometheus();
  std::vector<double> counts;
  std::istringstream lines(text);
  std::string line;
  const std::string prefix = "chatstream_time_to_first_token_seconds_bucket{le=\"";
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    counts.push_back(std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr));
  }
  ASSERT_EQ(counts.size(), kTtftBucketCount + 1);
  for (size_t i = 1; i < counts.size(); ++i) EXPECT_LE(counts[i - 1], counts[i]) << "bucket " << i;
  EXPECT_EQ(counts.back(), sample(text, "chatstream_time_to_first_token_seconds_count"));
}

TEST_F(MetricsTest, ResetGaugesZeroesOneSlotsGaugesAndKeepsCounters) {
  record_two_workers();
  shared_->reset_gauges(0);
  std::string text = shared_->render_prometheus();
  EXPECT_EQ(sample(text, "chatstream_connections"), 1);  // slot 1 keeps its gauge
  EXPECT_EQ(sample(text, "chatstream_active_streams"), 0);
  EXPECT_EQ(sample(text, "chatstream_connections_accepted_total"), 7);
  EXPECT_EQ(sample(text, "chatstream_runs_total{status=\"complete\"}"), 2);
  EXPECT_EQ(sample(text, bucket("+Inf")), 5);

  shared_->reset_gauges(1);
  shared_->reset_gauges(2);  // no such slot: ignored
  text = shared_->render_prometheus();
  EXPECT_EQ(sample(text, "chatstream_connections"), 0);
  EXPECT_EQ(sample(text, "chatstream_connections_accepted_total"), 7);
}

TEST_F(MetricsTest, RendersWorkerCountAndRestarts) {
  shared_->workers_running.store(2);
  shared_->worker_restarts.store(3);
  std::string text = shared_->render_prometheus();
  EXPECT_EQ(sample(text, "chatstream_workers"), 2);
  EXPECT_EQ(sample(text, "chatstream_worker_restarts_total"), 3);
}

TEST_F(MetricsTest, ANegativeGaugeSumIsRenderedAsZero) {
  bind_worker_slot(shared_, 0);
  gauge_add(Gauge::kActiveRuns, -2);
  EXPECT_EQ(sample(shared_->render_prometheus(), "chatstream_active_runs"), 0);
}

TEST_F(MetricsTest, LatencyHistogramsSumOverSlotsAndKeepTheirOwnFamilies) {
  bind_worker_slot(shared_, 0);
  observe(Histogram::kTokenGap, 400);      // 0.0004 s: the first bucket (0.0005)
  observe(Histogram::kTokenGap, 50'000);   // 0.05 s: exactly on a bound, counted in it
  bind_worker_slot(shared_, 1);
  observe(Histogram::kTokenGap, 20'000'000);  // 20 s: +Inf only
  observe(Histogram::kDbWait, 1'500);         // 0.0015 s: 0.0025 and up
  std::string text = shared_->render_prometheus();
  EXPECT_EQ(sample(text, "chatstream_token_gap_seconds_bucket{le=\"0.0005\"}"), 1);
  EXPECT_EQ(sample(text, "chatstream_token_gap_seconds_bucket{le=\"0.05\"}"), 2);
  EXPECT_EQ(sample(text, "chatstream_token_gap_seconds_bucket{le=\"10\"}"), 2);
  EXPECT_EQ(sample(text, "chatstream_token_gap_seconds_bucket{le=\"+Inf\"}"), 3);
  EXPECT_EQ(sample(text, "chatstream_token_gap_seconds_count"), 3);
  EXPECT_NEAR(sample(text, "chatstream_token_gap_seconds_sum"), 20.0504, 1e-6);
  EXPECT_EQ(sample(text, "chatstream_db_wait_seconds_bucket{le=\"0.001\"}"), 0);
  EXPECT_EQ(sample(text, "chatstream_db_wait_seconds_bucket{le=\"0.0025\"}"), 1);
  EXPECT_EQ(sample(text, "chatstream_db_wait_seconds_count"), 1);
  EXPECT_NE(text.find("# TYPE chatstream_token_gap_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE chatstream_db_wait_seconds histogram\n"), std::string::npos);
}

}  // namespace
}  // namespace chatstream::obs
