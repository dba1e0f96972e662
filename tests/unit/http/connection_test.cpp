// http::Connection over a loopback socket with a fake clock: keep-alive, pipelining held behind a
// streamed response, the header and idle timeouts, malformed and oversized requests, a client that
// leaves mid-response (its producer hears it once), and drains reported to the producer.
#include "http/connection.hpp"

#include <gtest/gtest.h>

#include <string>

#include "support/loopback.hpp"

namespace chatstream::http {
namespace {

// A streamed response that the test writes and ends by hand.
struct Producer final : ResponseProducer {
  Connection* connection = nullptr;
  int flushes = 0, drains = 0, lost = 0;
  void on_flush() override { ++flushes; }
  void on_output_drained() override { ++drains; }
  void on_connection_lost() override {
    ++lost;
    connection = nullptr;
  }
};

size_t count(const std::string& text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net_.on_request = [this](Connection& connection, Request& request) {
      paths_.push_back(request.path);
      if (request.path == "/stream") {
        producer_.connection = &connection;
        connection.attach(&producer_);
        connection.begin_stream("text/event-stream", "");
        connection.write_body("data: first\n\n");
        return;
      }
      connection.respond(200, "text/plain", "answer to " + request.path);
    };
  }
  testing::Loopback net_;
  Producer producer_;
  std::vector<std::string> paths_;
};

TEST_F(ConnectionTest, KeepsTheConnectionForTheNextRequest) {
  net_.get("/a");
  net_.turns(2);
  net_.get("/b");
  net_.turns(2);
  EXPECT_EQ(count(net_.received(), "HTTP/1.1 200"), 2u);
  EXPECT_NE(net_.received().find("answer to /b"), std::string::npos);
  EXPECT_TRUE(net_.connection_open());
}

TEST_F(ConnectionTest, PipelinedRequestsWaitForTheStreamBeforeThemToEnd) {
  net_.client_send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\nGET /after HTTP/1.1\r\nHost: t\r\n\r\n");
  net_.turns(3);
  EXPECT_EQ(paths_, std::vector<std::string>{"/stream"}) << "the second request waits";
  ASSERT_NE(producer_.connection, nullptr);
  producer_.connection->write_body("data: second\n\n");
  producer_.connection->detach(&producer_);
  producer_.connection->end_stream();
  net_.turns(3);
  EXPECT_EQ(paths_, (std::vector<std::string>{"/stream", "/after"}));
  const std::string& got = net_.received();
  EXPECT_LT(got.find("data: second"), got.find("answer to /after")) << "answers in request order";
}

TEST_F(ConnectionTest, AnIncompleteHeadTimesOutWith408) {
  net_.client_send("GET /slow HTTP/1.1\r\nHost:");
  net_.turns(2);
  net_.advance(net_.limits_.header_timeout_ms - 1);
  EXPECT_TRUE(net_.connection_open());
  net_.advance(1);
  net_.turns(2);
  EXPECT_NE(net_.received().find("HTTP/1.1 408"), std::string::npos) << net_.received();
  // The answer is written, the write side shut; the connection lingers for the client's close.
  net_.client_close();
  net_.turns(3);
  EXPECT_FALSE(net_.connection_open());
}

TEST_F(ConnectionTest, AnIdleKeepAliveConnectionIsClosed) {
  net_.get("/a");
  net_.turns(2);
  net_.advance(net_.limits_.keepalive_timeout_ms + 1);
  net_.turns(2);
  EXPECT_FALSE(net_.connection_open());
}

TEST_F(ConnectionTest, AMalformedRequestGetsA400AndTheConnectionCloses) {
  net_.client_send("GET / HTTP/1.1\r\nHost t\r\n\r\n");
  net_.turns(3);
  EXPECT_NE(net_.received().find("HTTP/1.1 400"), std::string::npos) << net_.received();
  EXPECT_NE(net_.received().find(R"("code":"bad_request")"), std::string::npos);
  // A client that never closes its side is not waited for past the linger time.
  net_.advance(2000);
  net_.turns(3);
  EXPECT_FALSE(net_.connection_open());
  EXPECT_TRUE(paths_.empty());
}

TEST_F(ConnectionTest, ABodyOverTheLimitIs413) {
  net_.limits_.max_body = 16;
  net_.client_send("POST /chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
                   "{\"message\":\"xx\"}");
  net_.turns(3);
  EXPECT_NE(net_.received().find("HTTP/1.1 413"), std::string::npos) << net_.received();
  EXPECT_TRUE(paths_.empty());
}

TEST_F(ConnectionTest, AClientThatLeavesMidStreamIsReportedOnce) {
  net_.get("/stream");
  net_.turns(2);
  ASSERT_NE(producer_.connection, nullptr);
  net_.client_close();
  net_.turns(3);
  EXPECT_EQ(producer_.lost, 1);
  EXPECT_FALSE(net_.connection_open());
}

TEST_F(ConnectionTest, WritesWaitForTheFlushPassAndDrainsAreReported) {
  net_.get("/stream");
  net_.turns(2);
  ASSERT_NE(producer_.connection, nullptr);
  net_.stop_reading();
  std::string chunk(64 * 1024, 'x');
  for (int i = 0; i < 64; ++i) {
    producer_.connection->write_body(chunk);
    net_.turn(false);
  }
  size_t queued = producer_.connection->unsent_bytes();
  EXPECT_GT(queued, 0u) << "the socket is full: the rest waits in the output queue";
  net_.resume_reading();
  for (int i = 0; i < 200 && producer_.connection->unsent_bytes() > 0; ++i) net_.turn();
  EXPECT_EQ(producer_.connection->unsent_bytes(), 0u);
  EXPECT_GT(producer_.drains, 0);
  EXPECT_GT(producer_.flushes, 0);
  producer_.connection->detach(&producer_);
  producer_.connection->end_stream();
  net_.turns(2);
  bool ended = false;
  EXPECT_EQ(net_.body(&ended).size(), 13 + 64 * chunk.size());
  EXPECT_TRUE(ended);
}

}  // namespace
}  // namespace chatstream::http
