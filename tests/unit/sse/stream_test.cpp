// sse::Stream on the real Connection over a loopback socket, with a fake clock: coalescing, the
// output bounds that push back on the source, the slow consumer, and the event log of a resumable
// run that goes on after the client left.
#include "sse/stream.hpp"

#include <gtest/gtest.h>

#include <memory>

#include "sse/framing.hpp"
#include "support/loopback.hpp"

namespace chatstream::sse {
namespace {

constexpr std::string_view kRun = "0b6f2a9e-8d1c-4f7a-9e2b-5c3d1a7f9e01";

struct Observer final : StreamObserver {
  std::vector<bool> pressure;
  int slow = 0, gone = 0;
  void on_pressure(bool over_cap) override { pressure.push_back(over_cap); }
  void on_slow_consumer() override { ++slow; }
  void on_client_gone() override { ++gone; }
};

class StreamTest : public ::testing::Test {
 protected:
  void open(bool with_log) {
    if (with_log) log_ = std::make_unique<EventLog>(kRun);
    net_.on_request = [this](http::Connection& connection, http::Request&) {
      stream_ = std::make_unique<Stream>(connection, net_.wheel(), settings_, observer_, Framing::kChatstream,
                                         log_.get());
      stream_->open(kRun, R"("run_id":"r")");
    };
    net_.get("/chat/stream");
    net_.turns(2);
    ASSERT_TRUE(stream_);
  }
  void TearDown() override {
    stream_.reset();
  }

  StreamSettings settings_;
  Observer observer_;
  std::unique_ptr<EventLog> log_;
  testing::Loopback net_;
  std::unique_ptr<Stream> stream_;  // after net_: destroyed first, while the connection lives
};

TEST_F(StreamTest, TokensOfOneLoopTurnBecomeOneEvent) {
  open(false);
  stream_->send_token("Hel");
  stream_->send_token("lo");
  net_.turns(2);
  std::string expected = "retry: 3000\n\n";
  append_event(expected, kRun, 0, "meta", R"("run_id":"r")");
  append_token_event(expected, kRun, 1, "Hello");
  EXPECT_EQ(net_.body(), expected);
}

TEST_F(StreamTest, TheLogHoldsExactlyWhatTheClientGot) {
  open(true);
  stream_->send("stage", R"("stage":"generating")");
  stream_->send_token("a ");
  net_.turn();
  stream_->send_token("b ");
  stream_->send_token("c");
  net_.turn();
  stream_->close({"done", R"("status":"complete")", {}, {}, {}});
  net_.turns(2);
  bool ended = false;
  std::string body = net_.body(&ended);
  EXPECT_TRUE(ended);
  std::string logged;
  log_->frame(0, log_->next_seq(), logged);
  EXPECT_EQ(body, "retry: 3000\n\n" + logged);
  EXPECT_EQ(log_->next_seq(), 5u);  // meta, stage, "a ", "b c", done
  EXPECT_TRUE(log_->ended());
}

TEST_F(StreamTest, AfterTheClientLeftTheLogGoesOnAlone) {
  open(true);
  stream_->send_token("before ");
  net_.turn();
  net_.client_close();
  net_.turns(3);
  EXPECT_EQ(observer_.gone, 1);
  EXPECT_FALSE(stream_->attached());
  EXPECT_TRUE(stream_->live());
  uint64_t before = log_->next_seq();
  stream_->send_token("one ");
  stream_->send_token("two ");  // no connection to coalesce for: one event each, at once
  stream_->send("citations", R"("citations":[])");
  EXPECT_EQ(log_->next_seq(), before + 3);
  stream_->close({"cancelled", R"("reason":"disconnected")", {}, {}, {}});
  EXPECT_TRUE(log_->ended());
  EXPECT_FALSE(stream_->live());
  std::string tail;
  log_->frame(before, log_->next_seq(), tail);
  std::string expected;
  append_token_event(expected, kRun, before, "one ");
  append_token_event(expected, kRun, before + 1, "two ");
  append_event(expected, kRun, before + 2, "citations", R"("citations":[])");
  append_event(expected, kRun, before + 3, "cancelled", R"("reason":"disconnected")");
  EXPECT_EQ(tail, expected);
}

TEST_F(StreamTest, WithoutALogNothingIsFramedAfterTheClientLeft) {
  open(false);
  net_.client_close();
  net_.turns(3);
  EXPECT_EQ(observer_.gone, 1);
  EXPECT_FALSE(stream_->live());
  stream_->send_token("lost");
  EXPECT_EQ(stream_->events_sent(), 1u);
}

TEST_F(StreamTest, AClientThatDoesNotReadPausesTheSourceThenIsASlowConsumer) {
  settings_.high_water = 8 * 1024;
  settings_.hard_cap = 64 * 1024;
  settings_.slow_consumer_grace_ms = 5000;
  open(false);
  net_.stop_reading();
  std::string chunk(1000, 'x');
  for (int i = 0; i < 2000 && observer_.pressure.empty(); ++i) {
    stream_->send_token(chunk);
    net_.turn(false);
  }
  ASSERT_EQ(observer_.pressure, std::vector<bool>{true}) << "the source is paused at the hard cap";
  net_.advance(4999);
  EXPECT_EQ(observer_.slow, 0);
  net_.advance(1);
  EXPECT_EQ(observer_.slow, 1) << "still over the cap after the grace: a slow consumer";
}

TEST_F(StreamTest, AClientThatCatchesUpResumesTheSource) {
  settings_.high_water = 8 * 1024;
  settings_.hard_cap = 64 * 1024;
  open(false);
  net_.stop_reading();
  std::string chunk(1000, 'x');
  for (int i = 0; i < 2000 && observer_.pressure.empty(); ++i) {
    stream_->send_token(chunk);
    net_.turn(false);
  }
  ASSERT_EQ(observer_.pressure, std::vector<bool>{true});
  net_.resume_reading();
  for (int i = 0; i < 200 && observer_.pressure.size() < 2; ++i) net_.turn();
  EXPECT_EQ(observer_.pressure, (std::vector<bool>{true, false}));
  net_.advance(10000);
  EXPECT_EQ(observer_.slow, 0);
}

TEST_F(StreamTest, HeartbeatsKeepTheirScheduleFromTheStart) {
  settings_.heartbeat_ms = 1000;
  open(false);
  net_.advance(1000);
  net_.advance(1000);
  net_.advance(500);
  std::string body = net_.body();
  size_t pings = 0;
  for (size_t at = body.find(": ping"); at != std::string::npos; at = body.find(": ping", at + 1)) ++pings;
  EXPECT_EQ(pings, 2u);
}

}  // namespace
}  // namespace chatstream::sse
