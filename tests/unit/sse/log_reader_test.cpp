// A resumed SSE response, on the real Connection over a loopback socket, with a fake clock.
#include "sse/log_reader.hpp"

#include <gtest/gtest.h>

#include "core/graveyard.hpp"
#include "sse/framing.hpp"
#include "support/loopback.hpp"

namespace chatstream::sse {
namespace {

constexpr std::string_view kRun = "0b6f2a9e-8d1c-4f7a-9e2b-5c3d1a7f9e01";

struct ReaderCount final : LogWatcher {
  size_t readers = 0;
  int changes = 0;
  void on_log_readers_changed(size_t n) override {
    readers = n;
    ++changes;
  }
};

class LogReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    settings_.heartbeat_ms = 15000;
    settings_.retry_ms = 2500;
    net_.on_request = [this](http::Connection& connection, http::Request&) {
      LogReader::start(connection, net_.wheel(), settings_, graveyard_, log_, next_seq_);
    };
    log_.set_watcher(&watcher_);
    // Readers are freed through the graveyard; the last ones once the loop closed their connection.
    net_.after_close = [this] { graveyard_.reclaim(); };
  }
  void TearDown() override { graveyard_.reclaim(); }

  std::string framed(uint64_t from, uint64_t to) {
    std::string out;
    log_.frame(from, to, out);
    return out;
  }

  StreamSettings settings_;
  Graveyard graveyard_;
  EventLog log_{kRun};
  ReaderCount watcher_;
  uint64_t next_seq_ = 0;
  testing::Loopback net_;
};

TEST_F(LogReaderTest, ReplaysFromTheCursorThenFollowsLiveToTheEnd) {
  log_.append("meta", R"("run_id":"r")");
  for (int i = 0; i < 4; ++i) log_.append_token("w" + std::to_string(i) + " ");
  next_seq_ = 3;
  net_.get("/chat/stream/r");
  net_.turns(3);
  EXPECT_NE(net_.received().find("Content-Type: text/event-stream"), std::string::npos);
  EXPECT_EQ(net_.body(), "retry: 2500\n\n" + framed(3, 5));
  EXPECT_EQ(watcher_.readers, 1u);

  log_.append_token("live ");
  net_.turns(2);
  EXPECT_EQ(net_.body(), "retry: 2500\n\n" + framed(3, 6));

  log_.append("done", R"("status":"complete")");
  log_.end();
  net_.turns(2);
  bool ended = false;
  EXPECT_EQ(net_.body(&ended), "retry: 2500\n\n" + framed(3, 7));
  EXPECT_TRUE(ended) << "the response ends after the terminal event";
  EXPECT_EQ(watcher_.readers, 0u);
}

TEST_F(LogReaderTest, AFinishedLogIsReplayedAndTheResponseEndsAtOnce) {
  log_.append("meta", "");
  log_.append_token("a");
  log_.append("cancelled", R"("reason":"disconnected")");
  log_.end();
  net_.get("/chat/stream/r");
  net_.turns(3);
  bool ended = false;
  EXPECT_EQ(net_.body(&ended), "retry: 2500\n\n" + framed(0, 3));
  EXPECT_TRUE(ended);
}

TEST_F(LogReaderTest, SendsHeartbeatsOnTheWheelsClock) {
  log_.append("meta", "");
  net_.get("/chat/stream/r");
  net_.turns(2);
  net_.advance(14999);
  EXPECT_EQ(net_.body().find(": ping"), std::string::npos);
  net_.advance(1);
  EXPECT_NE(net_.body().find(": ping\n\n"), std::string::npos);
}

TEST_F(LogReaderTest, AReaderThatLeavesLetsGoOfTheLog) {
  log_.append("meta", "");
  net_.get("/chat/stream/r");
  net_.turns(2);
  EXPECT_EQ(watcher_.readers, 1u);
  net_.client_close();
  net_.turns(3);
  EXPECT_EQ(watcher_.readers, 0u);
  EXPECT_FALSE(net_.connection_open());
  log_.append_token("nobody reads this");  // no reader left to tell
}

TEST_F(LogReaderTest, TakesAtMostHighWaterFromTheLogWhileTheClientDoesNotRead) {
  settings_.high_water = 4096;
  log_.append("meta", "");
  std::string word(100, 'x');
  for (int i = 0; i < 5000; ++i) log_.append_token(word);  // ~650 KB framed
  net_.stop_reading();
  net_.get("/chat/stream/r");
  net_.turns(5);
  // The socket buffers take some; the connection's own queue stays near the high-water mark.
  EXPECT_LT(net_.connection().unsent_bytes(), settings_.high_water + 4096);
  net_.resume_reading();
  const std::string expected = "retry: 2500\n\n" + framed(0, log_.next_seq());
  for (int i = 0; i < 400 && net_.body().size() < expected.size(); ++i) net_.turn();
  EXPECT_EQ(net_.body(), expected);
}

TEST_F(LogReaderTest, ALogThatGoesAwayWithoutAnEndClosesTheConnection) {
  auto log = std::make_unique<EventLog>(kRun);
  log->append("meta", "");
  net_.on_request = [&](http::Connection& connection, http::Request&) {
    LogReader::start(connection, net_.wheel(), settings_, graveyard_, *log, 0);
  };
  net_.get("/chat/stream/r");
  net_.turns(2);
  log.reset();
  net_.turns(3);
  EXPECT_FALSE(net_.connection_open());
}

}  // namespace
}  // namespace chatstream::sse
