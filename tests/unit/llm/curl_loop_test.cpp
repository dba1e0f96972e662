// llm/curl_loop: libcurl's multi socket interface on a libuv loop, against a small HTTP/1.1 server on
// the same loop (loopback TCP, in process). The loop runs until what a test waits for happened;
// nothing sleeps.
#include "llm/curl_loop.hpp"

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace chatstream::llm {
namespace {

// An HTTP/1.1 server that collects requests and answers them when the test says so.
class TinyServer {
 public:
  struct Client {
    uv_tcp_t tcp;
    TinyServer* server;
    std::string received;
    bool complete = false;  // a whole request arrived
    bool closed = false;    // the peer closed (EOF or error)
  };

  explicit TinyServer(uv_loop_t* loop) : loop_(loop) {
    uv_tcp_init(loop_, &listener_);
    listener_.data = this;
    sockaddr_in address{};
    uv_ip4_addr("127.0.0.1", 0, &address);
    EXPECT_EQ(uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&address), 0), 0);
    EXPECT_EQ(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 128, &TinyServer::on_connection), 0);
    sockaddr_in bound{};
    int length = sizeof bound;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &length);
    port_ = ntohs(bound.sin_port);
  }

  std::string url(const std::string& path = "/x") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // Called once per complete request.
  std::function<void(Client&)> on_request;

  void write(Client& client, std::string bytes) {
    auto* request = new uv_write_t;
    auto* copy = new std::string(std::move(bytes));
    request->data = copy;
    uv_buf_t buffer = uv_buf_init(copy->data(), static_cast<unsigned>(copy->size()));
    uv_write(request, reinterpret_cast<uv_stream_t*>(&client.tcp), &buffer, 1, [](uv_write_t* done, int) {
      delete static_cast<std::string*>(done->data);
      delete done;
    });
  }
  void respond(Client& client, const std::string& body) {
    write(client, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }

  size_t requests() const {
    size_t n = 0;
    for (const auto& client : clients_) n += client->complete ? 1 : 0;
    return n;
  }
  size_t closed() const {
    size_t n = 0;
    for (const auto& client : clients_) n += client->closed ? 1 : 0;
    return n;
  }
  std::vector<std::unique_ptr<Client>>& clients() { return clients_; }

  void close() {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    for (auto& client : clients_) {
      if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&client->tcp))) {
        uv_close(reinterpret_cast<uv_handle_t*>(&client->tcp), nullptr);
      }
    }
  }

 private:
  static void on_connection(uv_stream_t* listener, int status) {
    auto* self = static_cast<TinyServer*>(listener->data);
    if (status < 0) return;
    auto client = std::make_unique<Client>();
    client->server = self;
    uv_tcp_init(self->loop_, &client->tcp);
    client->tcp.data = client.get();
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&client->tcp)) != 0) return;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&client->tcp),
        [](uv_handle_t*, size_t, uv_buf_t* buffer) {
          static char storage[65536];
          *buffer = uv_buf_init(storage, sizeof storage);
        },
        &TinyServer::on_read);
    self->clients_.push_back(std::move(client));
  }

  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buffer) {
    auto* client = static_cast<Client*>(stream->data);
    if (n < 0) {
      client->closed = true;
      uv_read_stop(stream);
      return;
    }
    client->received.append(buffer->base, static_cast<size_t>(n));
    size_t head_end = client->received.find("\r\n\r\n");
    if (client->complete || head_end == std::string::npos) return;
    size_t body = 0;
    if (size_t at = client->received.find("Content-Length: "); at != std::string::npos && at < head_end) {
      body = std::stoul(client->received.substr(at + 16));
    }
    if (client->received.size() < head_end + 4 + body) return;
    client->complete = true;
    if (client->server->on_request) client->server->on_request(*client);
  }

  uv_loop_t* loop_;
  uv_tcp_t listener_;
  int port_ = 0;
  std::vector<std::unique_ptr<Client>> clients_;
};

class RecordingTransfer final : public Transfer {
 public:
  explicit RecordingTransfer(const std::string& url) : url_(url) { configure(); }
  void configure() {
    reset_handle();
    curl_easy_setopt(easy(), CURLOPT_URL, url_.c_str());
  }
  std::string body;
  std::vector<std::string> headers;
  int done_calls = 0;
  CURLcode result = CURL_LAST;
  bool refuse_body = false;

 private:
  void on_header(std::string_view line) override { headers.emplace_back(line); }
  bool on_body(const char* data, size_t length) override {
    if (refuse_body) return false;
    body.append(data, length);
    return true;
  }
  void on_done(CURLcode code) override {
    ++done_calls;
    result = code;
  }
  std::string url_;
};

// Every transfer of `transfers` (pointers or owning pointers) reported its end.
template <typename Transfers>
bool all_done(const Transfers& transfers) {
  for (const auto& transfer : transfers) {
    if (transfer->done_calls == 0) return false;
  }
  return true;
}

class CurlLoopTest : public ::testing::Test {
 protected:
  CurlLoopTest() {
    uv_loop_init(&loop_);
    server_ = std::make_unique<TinyServer>(&loop_);
    curl_ = std::make_unique<CurlLoop>(&loop_);
  }
  ~CurlLoopTest() override {
    transfers_.clear();  // removes what is still added
    curl_->close();
    server_->close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle outlived the test";
  }

  RecordingTransfer& transfer(const std::string& path = "/x") {
    transfers_.push_back(std::make_unique<RecordingTransfer>(server_->url(path)));
    return *transfers_.back();
  }

  // Runs the loop until `done` holds, checked before each poll (so the loop never blocks once it
  // holds); false if it does not within 5 s (a timer stops the loop then).
  bool run_until(const std::function<bool()>& done) {
    struct Watch {
      const std::function<bool()>* done;
      bool timed_out = false;
    } watch{&done};
    uv_prepare_t check;
    uv_prepare_init(&loop_, &check);
    check.data = &watch;
    uv_prepare_start(&check, [](uv_prepare_t* handle) {
      if ((*static_cast<Watch*>(handle->data)->done)()) uv_stop(handle->loop);
    });
    uv_timer_t limit;
    uv_timer_init(&loop_, &limit);
    limit.data = &watch;
    uv_timer_start(&limit, [](uv_timer_t* handle) {
      static_cast<Watch*>(handle->data)->timed_out = true;
      uv_stop(handle->loop);
    }, 5000, 0);
    if (!done()) uv_run(&loop_, UV_RUN_DEFAULT);
    uv_close(reinterpret_cast<uv_handle_t*>(&check), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&limit), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);  // their close callbacks, before they go out of scope
    return !watch.timed_out && done();
  }

  uv_loop_t loop_;
  std::unique_ptr<TinyServer> server_;
  std::unique_ptr<CurlLoop> curl_;
  std::vector<std::unique_ptr<RecordingTransfer>> transfers_;
};

TEST_F(CurlLoopTest, DeliversHeadersAndBodyThenReportsDoneOnce) {
  server_->on_request = [&](TinyServer::Client& client) { server_->respond(client, "hello world"); };
  RecordingTransfer& t = transfer();
  ASSERT_TRUE(curl_->add(t));
  EXPECT_TRUE(t.active());
  ASSERT_TRUE(run_until([&] { return t.done_calls > 0; }));
  EXPECT_EQ(t.result, CURLE_OK);
  EXPECT_EQ(t.body, "hello world");
  ASSERT_FALSE(t.headers.empty());
  EXPECT_EQ(t.headers.front().rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_FALSE(t.active());
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(t.done_calls, 1);
}

TEST_F(CurlLoopTest, ARefusedBodyAbortsWithAWriteError) {
  server_->on_request = [&](TinyServer::Client& client) { server_->respond(client, "unwanted"); };
  RecordingTransfer& t = transfer();
  t.refuse_body = true;
  ASSERT_TRUE(curl_->add(t));
  ASSERT_TRUE(run_until([&] { return t.done_calls > 0; }));
  EXPECT_EQ(t.result, CURLE_WRITE_ERROR);
}

TEST_F(CurlLoopTest, RemovingATransferMidResponseClosesItsConnectionWithoutOnDone) {
  server_->on_request = [&](TinyServer::Client& client) {
    server_->write(client, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
  };
  RecordingTransfer& t = transfer();
  ASSERT_TRUE(curl_->add(t));
  ASSERT_TRUE(run_until([&] { return t.body == "first"; }));
  curl_->remove(t);
  EXPECT_FALSE(t.active());
  ASSERT_TRUE(run_until([&] { return server_->closed() == 1; })) << "the upstream sees its request end";
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(t.done_calls, 0);
}

TEST_F(CurlLoopTest, APausedTransferGetsNothingUntilResumed) {
  TinyServer::Client* held = nullptr;
  server_->on_request = [&](TinyServer::Client& client) {
    held = &client;
    server_->write(client, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n");
  };
  RecordingTransfer& t = transfer();
  ASSERT_TRUE(curl_->add(t));
  ASSERT_TRUE(run_until([&] { return t.body == "one"; }));
  curl_->pause(t, true);
  server_->write(*held, "3\r\ntwo\r\n0\r\n\r\n");
  // The response's end is on the socket; a paused transfer neither reads it nor completes.
  for (int i = 0; i < 20; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(t.body, "one");
  EXPECT_EQ(t.done_calls, 0);
  curl_->pause(t, false);
  ASSERT_TRUE(run_until([&] { return t.done_calls > 0; }));
  EXPECT_EQ(t.body, "onetwo");
  EXPECT_EQ(t.result, CURLE_OK);
}

// The connection gate (curl_loop.hpp) admits transfers to a multiplexing upstream one connection at
// a time. Against an HTTP/1.1 upstream, which gives every transfer its own connection, it must not
// serialise the transfers behind each other's responses: five requests that the server answers only
// once all five arrived all complete.
TEST_F(CurlLoopTest, GatedTransfersToAnHttp1UpstreamAllStartInParallel) {
  std::vector<TinyServer::Client*> waiting;
  server_->on_request = [&](TinyServer::Client& client) {
    waiting.push_back(&client);
    if (waiting.size() == 5) {
      for (TinyServer::Client* c : waiting) server_->respond(*c, "ok");
    }
  };
  std::vector<RecordingTransfer*> all;
  for (int i = 0; i < 5; ++i) {
    all.push_back(&transfer());
    ASSERT_TRUE(curl_->add(*all.back(), /*multiplexed=*/true));
    EXPECT_TRUE(all.back()->active()) << "a transfer waiting at the gate counts as added";
  }
  ASSERT_TRUE(run_until([&] { return all_done(all); })) << "requests that reached the server: " << server_->requests();
  for (RecordingTransfer* t : all) {
    EXPECT_EQ(t->result, CURLE_OK);
    EXPECT_EQ(t->body, "ok");
  }
  EXPECT_EQ(server_->clients().size(), 5u);
}

TEST_F(CurlLoopTest, ATransferRemovedWhileWaitingAtTheGateNeverStarts) {
  server_->on_request = [&](TinyServer::Client& client) { server_->respond(client, "ok"); };
  RecordingTransfer& first = transfer();
  RecordingTransfer& second = transfer();
  RecordingTransfer& third = transfer();
  ASSERT_TRUE(curl_->add(first, true));
  ASSERT_TRUE(curl_->add(second, true));
  ASSERT_TRUE(curl_->add(third, true));
  curl_->remove(second);  // before the loop ran: still waiting
  EXPECT_FALSE(second.active());
  ASSERT_TRUE(run_until([&] { return first.done_calls > 0 && third.done_calls > 0; }));
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(second.done_calls, 0);
  EXPECT_EQ(server_->requests(), 2u);
}

TEST_F(CurlLoopTest, ATransferPausedWhileWaitingStartsPaused) {
  server_->on_request = [&](TinyServer::Client& client) { server_->respond(client, "body"); };
  RecordingTransfer& t = transfer();
  ASSERT_TRUE(curl_->add(t, true));
  curl_->pause(t, true);
  ASSERT_TRUE(run_until([&] { return server_->requests() == 1; }));
  for (int i = 0; i < 20; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(t.body, "");
  EXPECT_EQ(t.done_calls, 0);
  curl_->pause(t, false);
  ASSERT_TRUE(run_until([&] { return t.done_calls > 0; }));
  EXPECT_EQ(t.body, "body");
}

TEST_F(CurlLoopTest, AnUnreachableUpstreamFailsEveryGatedTransfer) {
  // A port nothing listens on: the first transfer's connection fails, and the transfers it held try
  // on their own instead of waiting their turn behind one failure after another.
  TinyServer closed_port(&loop_);
  std::string url = closed_port.url();
  closed_port.close();
  uv_run(&loop_, UV_RUN_NOWAIT);
  std::vector<std::unique_ptr<RecordingTransfer>> local;
  for (int i = 0; i < 4; ++i) {
    local.push_back(std::make_unique<RecordingTransfer>(url));
    ASSERT_TRUE(curl_->add(*local.back(), true));
  }
  ASSERT_TRUE(run_until([&] { return all_done(local); }));
  for (auto& t : local) EXPECT_EQ(t->result, CURLE_COULDNT_CONNECT);
}

}  // namespace
}  // namespace chatstream::llm
