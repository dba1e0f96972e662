// chat::Run driven on the real Connection over loopback sockets, with the scripted provider and a
// fake clock: a streamed run, the disconnect grace, a resume that keeps it alive, "on_disconnect":
// "continue". No database: the run, its writer, its event log and a LogReader, nothing else.
#include "chat/run.hpp"

#include <gtest/gtest.h>

#include <memory>

#include "chat/run_registry.hpp"
#include "llm/scripted_provider.hpp"
#include "sse/log_reader.hpp"
#include "support/loopback.hpp"

namespace chatstream::chat {
namespace {

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    llm::ScriptedSettings scripted;
    scripted.tokens = 20;
    scripted.pace.rate = 10;  // one token per 100 ms of the fake clock
    provider_ = std::make_unique<llm::ScriptedProvider>(net_.wheel(), scripted);
    settings_.heartbeat_ms = 15000;
    env_ = std::make_unique<RunEnvironment>(RunEnvironment{net_.wheel(), *provider_, registry_, waiters_, graveyard_,
                                                           settings_, 60000, 0, 1000});
    net_.on_request = [this](http::Connection& connection, http::Request&) {
      ChatRequest request;
      request.user_id = "anonymous";
      request.message = "hello";
      request.on_disconnect = on_disconnect_;
      chat::Run::start(*env_, connection, std::move(request), RunMode::kStream);
    };
    resume_net_.on_request = [this](http::Connection& connection, http::Request&) {
      chat::Run* run = registry_.snapshot().empty() ? nullptr : registry_.snapshot().front();
      ASSERT_NE(run, nullptr);
      sse::LogReader::start(connection, net_.wheel(), settings_, graveyard_, *run->event_log(), resume_from_);
    };
    net_.after_close = resume_net_.after_close = [this] { graveyard_.reclaim(); };
  }

  void TearDown() override {
    for (chat::Run* run : registry_.snapshot()) run->cancel();
    turn(3);
    graveyard_.reclaim();
  }

  void turn(int n = 1) {
    for (int i = 0; i < n; ++i) {
      net_.turn();
      resume_net_.turn();
    }
  }
  // Time passes in steps of 10 ms, so the provider's tokens come in their own turns.
  void advance(uint64_t ms) {
    for (uint64_t t = 0; t < ms; t += 10) {
      net_.advance(10);
      resume_net_.turn();
    }
    graveyard_.reclaim();
  }
  void post() {
    net_.client_send("POST /chat/stream HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
    turn(3);
  }
  std::string logged() {
    std::string out;
    chat::Run* run = registry_.snapshot().front();
    run->event_log()->frame(0, run->event_log()->next_seq(), out);
    return out;
  }

  Graveyard graveyard_;
  RunRegistry registry_;
  SessionWaiters waiters_;
  sse::StreamSettings settings_;
  testing::Loopback net_;
  testing::Loopback resume_net_;
  std::unique_ptr<llm::ScriptedProvider> provider_;
  std::unique_ptr<RunEnvironment> env_;
  OnDisconnect on_disconnect_ = OnDisconnect::kGrace;
  uint64_t resume_from_ = 0;
};

TEST_F(RunTest, AStreamedRunAnswersAndItsLogIsWhatTheClientGot) {
  post();
  ASSERT_EQ(registry_.size(), 1u);
  std::string before_end = "retry: 3000\n\n" + logged();
  advance(2500);
  EXPECT_EQ(registry_.size(), 0u) << "20 tokens at 10/s are done";
  bool ended = false;
  std::string body = net_.body(&ended);
  EXPECT_TRUE(ended);
  EXPECT_EQ(body.substr(0, before_end.size()), before_end);
  EXPECT_NE(body.find("event: done"), std::string::npos);
  EXPECT_NE(body.find("t19 "), std::string::npos);
}

// A checkpoint stores the answer as far as the event log holds it; its token count must be of the
// same text. A token that arrived in this loop turn waits for the flush pass to be framed: it is in
// tokens() but not yet in framed_tokens() (a worker killed then would store a count one too high).
TEST_F(RunTest, FramedTokensCountOnlyWhatTheEventLogHolds) {
  post();
  advance(300);
  ASSERT_EQ(registry_.size(), 1u);
  chat::Run* run = registry_.snapshot().front();
  uint64_t framed = run->tokens();
  ASSERT_GT(framed, 0u);
  EXPECT_EQ(run->framed_tokens(), framed);
  uint64_t logged_events = run->event_log()->next_seq();

  testing::fake_clock_ms() += 100;  // the provider's next token, without the loop's flush pass
  net_.wheel().advance_to(testing::fake_clock_ms());
  EXPECT_EQ(run->tokens(), framed + 1);
  EXPECT_EQ(run->framed_tokens(), framed);
  EXPECT_EQ(run->event_log()->next_seq(), logged_events);

  turn();  // the flush pass frames it
  EXPECT_EQ(run->framed_tokens(), framed + 1);
  EXPECT_EQ(run->event_log()->next_seq(), logged_events + 1);
}

TEST_F(RunTest, AClientThatLeavesIsWaitedForThenTheRunIsCancelled) {
  post();
  advance(300);
  net_.client_close();
  turn(2);
  ASSERT_EQ(registry_.size(), 1u) << "the run goes on in its grace";
  chat::Run* run = registry_.snapshot().front();
  sse::EventLog* log = run->event_log();
  uint64_t seq_at_leave = log->next_seq();
  advance(500);
  EXPECT_GT(log->next_seq(), seq_at_leave) << "tokens keep going into the log";
  advance(600);
  EXPECT_EQ(registry_.size(), 0u) << "no resume within the grace (1 s): cancelled";
}

TEST_F(RunTest, AResumeWithinTheGraceKeepsTheRunAndGetsTheRestOfTheAnswer) {
  post();
  advance(300);
  net_.client_close();
  turn(2);
  advance(700);  // within the 1 s grace
  resume_from_ = 0;
  resume_net_.get("/chat/stream/run");
  turn(3);
  advance(3000);  // well past the grace: the reader keeps the run alive to its end
  EXPECT_EQ(registry_.size(), 0u);
  bool ended = false;
  std::string body = resume_net_.body(&ended);
  EXPECT_TRUE(ended);
  EXPECT_NE(body.find("event: meta"), std::string::npos) << "from seq 0";
  EXPECT_NE(body.find("t19 "), std::string::npos) << "the whole answer";
  EXPECT_NE(body.find("event: done"), std::string::npos);
}

TEST_F(RunTest, OnDisconnectContinueFinishesWithNobodyListening) {
  on_disconnect_ = OnDisconnect::kContinue;
  post();
  advance(200);
  chat::Run* run = registry_.snapshot().front();
  sse::EventLog* log = run->event_log();
  net_.client_close();
  turn(2);
  advance(1500);  // past the grace
  ASSERT_EQ(registry_.size(), 1u) << "still answering";
  std::string tail;
  log->frame(0, log->next_seq(), tail);
  EXPECT_EQ(tail.find("event: cancelled"), std::string::npos);
  advance(1000);
  EXPECT_EQ(registry_.size(), 0u) << "finished by itself";
}

}  // namespace
}  // namespace chatstream::chat

namespace chatstream::chat {
namespace {

TEST_F(RunTest, TheRunTimeoutCountsOnTheWheelsClock) {
  env_->run_timeout_ms = 500;
  post();
  advance(490);
  EXPECT_EQ(registry_.size(), 1u);
  advance(30);
  EXPECT_EQ(registry_.size(), 0u);
  bool ended = false;
  std::string body = net_.body(&ended);
  EXPECT_TRUE(ended);
  EXPECT_NE(body.find(R"("code":"timeout")"), std::string::npos) << body;
}

}  // namespace
}  // namespace chatstream::chat
