// Fuzz target: HTTP request bytes → the real http::Connection (llhttp, limits, pipelining, timeouts,
// the one close path) → the real http::Router → the real chat request decoders
// (chat::parse_chat_request, parse_openai_request, parse_cancel_request), answered through the
// Connection, as worker/server.cpp wires them (without runs, providers or a database).
//
// The connection adopts one end of a unix socketpair; the harness is the client on the other end.
// Input: 4 bytes that seed the client's behaviour, then the bytes it sends. The client writes them in
// pieces of 1..64 bytes cut at seeded points, lets the loop turn between pieces (so pipelined requests
// arrive split anywhere, and sometimes while a streamed response is still being written), and for
// one seed in 8 lets 11 s pass on the connection's clock now and then (header and keep-alive
// timeouts fire); for another the server begins draining at some point. Then the client closes its
// side and the connection must close.
//
// Oracles: ASan/UBSan (use after close, leaks of the producer or the connection), and everything the
// server writes must parse as a sequence of HTTP/1.1 responses (llhttp in response mode).
#include <fcntl.h>
#include <llhttp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "chat/chat_request.hpp"
#include "core/intrusive_list.hpp"
#include "core/timer_wheel.hpp"
#include "handler/dispatch.hpp"
#include "http/connection.hpp"
#include "http/router.hpp"
#include "json/writer.hpp"
#include "seeded_input.hpp"

namespace {

using namespace chatstream;

[[noreturn]] void fail(const char* what, const char* detail = "") {
  fprintf(stderr, "http_request: %s %s\n", what, detail);
  abort();
}

// The connection's clock: advanced by the client, so timeouts fire without sleeping.
uint64_t g_now_ms = 0;
uint64_t fake_now_ms() { return g_now_ms; }

// A streamed answer that ends a few loop turns later, written in small pieces, like an SSE run: the
// connection holds pipelined requests back while it is in progress.
class EchoStream final : public http::ResponseProducer {
 public:
  static void start(http::Connection& connection, std::string text) {
    auto* stream = new EchoStream(connection, std::move(text));
    connection.attach(stream);
    connection.begin_stream("text/event-stream", "Cache-Control: no-store\r\n");
  }

  void on_flush() override {
    if (remaining_.empty()) {
      connection_.end_stream();  // detaches this producer
      delete this;
      return;
    }
    size_t length = std::min<size_t>(remaining_.size(), 7);
    std::string event = "data: ";
    event.append(remaining_, 0, length);
    event += "\n\n";
    remaining_.erase(0, length);
    connection_.write_body(event);
  }
  void on_output_drained() override {}
  void on_connection_lost() override { delete this; }

 private:
  EchoStream(http::Connection& connection, std::string text) : connection_(connection), remaining_(std::move(text)) {}
  http::Connection& connection_;
  std::string remaining_;
};

void answer_chat(http::Connection& connection, const chat::ChatRequest& request, bool stream) {
  if (stream) {
    EchoStream::start(connection, request.message);
    return;
  }
  std::string body;
  json::Object object(body);
  object.field("message", request.message).field("prior_turns", static_cast<int64_t>(request.prior_turns.size()));
  if (request.session_id) object.field("session_id", request.session_id->to_string());
  object.close();
  connection.respond(200, "application/json", body);
}

class FuzzHost final : public http::Host {
 public:
  explicit FuzzHost(uv_loop_t* loop) : wheel_(nullptr, &fake_now_ms) {
    limits_.max_header_bytes = 1024;  // small, so the fuzzer reaches 431 and 413
    limits_.max_body = 2048;
    uv_prepare_init(loop, &flush_prepare_);
    flush_prepare_.data = this;
    uv_prepare_start(&flush_prepare_, &FuzzHost::on_prepare);
    add_routes();
  }

  const http::Limits& limits() const override { return limits_; }
  TimerWheel& wheel() override { return wheel_; }
  bool draining() const override { return draining_; }
  void schedule_flush(http::Connection& connection) override { flush_list_.push_back(connection.flush_node); }
  void on_connection_closed(http::Connection&) override { connection_open_ = false; }
  uv_buf_t read_buffer() override { return uv_buf_init(read_buffer_, sizeof read_buffer_); }

  // The worker's own dispatch (handler/routes.cpp): the route, or 404 / 405 with Allow.
  void dispatch(http::Connection& connection, http::Request& request) override {
    handler::dispatch(router_, connection, request);
  }

  bool connection_open() const { return connection_open_; }
  // What the server does on SIGTERM (once), for this one connection.
  void begin_drain(http::Connection& connection) {
    if (draining_) return;
    draining_ = true;
    connection.begin_drain();
  }
  void advance_clock(uint64_t ms) {
    g_now_ms += ms;
    wheel_.advance_to(g_now_ms);
  }
  void close(uv_loop_t* loop) {
    wheel_.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&flush_prepare_), nullptr);
    uv_run(loop, UV_RUN_DEFAULT);
  }

 private:
  static void on_prepare(uv_prepare_t* handle) {
    auto* self = static_cast<FuzzHost*>(handle->data);
    IntrusiveList batch;
    batch.splice_back(self->flush_list_);
    while (ListNode* node = batch.pop_front()) {
      static_cast<OwnedNode<http::Connection>*>(node)->owner->flush();
    }
  }

  void add_routes() {
    router_.add("POST", "/chat", [](http::Connection& c, http::Request& r, const http::RouteParams&) {
      chat::ChatRequest request;
      if (Status parsed = chat::parse_chat_request(r, &request); !parsed) return c.respond_error(parsed.error().code, parsed.error().message);
      answer_chat(c, request, false);
    });
    router_.add("POST", "/chat/stream", [](http::Connection& c, http::Request& r, const http::RouteParams&) {
      chat::ChatRequest request;
      if (Status parsed = chat::parse_chat_request(r, &request); !parsed) return c.respond_error(parsed.error().code, parsed.error().message);
      answer_chat(c, request, true);
    });
    router_.add("POST", "/v1/chat/completions", [](http::Connection& c, http::Request& r, const http::RouteParams&) {
      chat::ChatRequest request;
      if (Status parsed = chat::parse_openai_request(r, &request); !parsed) return c.respond_error(parsed.error().code, parsed.error().message);
      answer_chat(c, request, request.stream);
    });
    router_.add("POST", "/chat/cancel", [](http::Connection& c, http::Request& r, const http::RouteParams&) {
      chat::CancelRequest cancel;
      if (Status parsed = chat::parse_cancel_request(r, &cancel); !parsed) return c.respond_error(parsed.error().code, parsed.error().message);
      c.respond_error(Errc::kNotFound, "No run in progress with this run_id " + cancel.run_id.to_string());
    });
    router_.add("GET", "/healthz", [](http::Connection& c, http::Request&, const http::RouteParams&) {
      c.respond(200, "application/json", R"({"status":"ok"})");
    });
    router_.add("GET", "/v1/models/{id}", [](http::Connection& c, http::Request&, const http::RouteParams& p) {
      if (p.get("id") != "chatstream") return c.respond_error(Errc::kNotFound, "No such model");
      c.respond(200, "application/json", R"({"id":"chatstream"})");
    });
  }

  http::Limits limits_;
  TimerWheel wheel_;
  http::Router router_;
  uv_prepare_t flush_prepare_;
  IntrusiveList flush_list_;
  bool connection_open_ = true;
  bool draining_ = false;
  char read_buffer_[1024];  // small: a request spans several reads
};

// Everything the server writes, parsed as HTTP responses.
class ResponseChecker {
 public:
  ResponseChecker() {
    llhttp_settings_init(&settings_);
    llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
  }
  void feed(const char* data, size_t length) {
    llhttp_errno_t err = llhttp_execute(&parser_, data, length);
    if (err != HPE_OK) fail("the server wrote something that is not an HTTP response:", llhttp_get_error_reason(&parser_));
  }

 private:
  llhttp_settings_t settings_;
  llhttp_t parser_;
};

class Client {
 public:
  // One seed in 8 lets time pass on the connection's clock (timeouts fire); the others leave it
  // still, or long requests would nearly always end in a 408 before the fuzzer sees their end.
  // Another one in 8 drains the server at some point (as on SIGTERM).
  explicit Client(uint32_t seed) : cuts_(seed), clock_runs_(seed % 8 == 7), drains_(seed % 8 == 6) {
    if (uv_loop_init(&loop_) != 0) fail("uv_loop_init");
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds_) != 0) fail("socketpair");
    fcntl(fds_[1], F_SETFL, fcntl(fds_[1], F_GETFL) | O_NONBLOCK);
    host_ = new FuzzHost(&loop_);
    auto* connection = new http::Connection(*host_, /*is_unix=*/true);
    if (connection->adopt(&loop_, fds_[0]) != 0) fail("adopt");
    connection_ = connection;
  }

  ~Client() {
    host_->close(&loop_);
    delete host_;
    if (uv_loop_close(&loop_) != 0) fail("a handle outlived its connection");
    ::close(fds_[1]);
  }

  void send_all(std::string_view bytes) {
    while (!bytes.empty() && host_->connection_open()) {
      size_t length = std::min<size_t>(bytes.size(), 1 + next() % 64);
      std::string_view piece = bytes.substr(0, length);
      while (!piece.empty() && host_->connection_open()) {
        ssize_t n = send(fds_[1], piece.data(), piece.size(), MSG_NOSIGNAL);
        if (n > 0) piece.remove_prefix(static_cast<size_t>(n));
        else if (n < 0 && errno != EAGAIN && errno != EINTR) return;  // the server closed its side
        else turn();
      }
      bytes.remove_prefix(length - piece.size());
      turn();
      if (next() % 16 == 0) turn();
      if (clock_runs_ && next() % 32 == 0 && host_->connection_open()) host_->advance_clock(11000);
      if (drains_ && next() % 16 == 0 && host_->connection_open()) host_->begin_drain(*connection_);
    }
  }

  // Lets the server answer what it has, then closes the client's side: the connection must close.
  void finish() {
    for (int i = 0; i < 64 && host_->connection_open() && connection_->response_in_progress(); ++i) turn();
    shutdown(fds_[1], SHUT_WR);
    for (int i = 0; i < 1000 && host_->connection_open(); ++i) turn();
    if (host_->connection_open()) fail("the connection stayed open after the client closed");
    turn();
  }

 private:
  uint32_t next() { return cuts_.next(); }

  void turn() {
    uv_run(&loop_, UV_RUN_NOWAIT);
    char buffer[4096];
    for (;;) {
      ssize_t n = recv(fds_[1], buffer, sizeof buffer, 0);
      if (n <= 0) break;
      if (getenv("HTTP_REQUEST_FUZZ_ECHO")) fwrite(buffer, 1, static_cast<size_t>(n), stderr);  // replaying an input
      checker_.feed(buffer, static_cast<size_t>(n));
    }
  }

  uv_loop_t loop_;
  int fds_[2];
  FuzzHost* host_;
  http::Connection* connection_;  // deleted by its close callback; used only while connection_open()
  ResponseChecker checker_;
  fuzz::Cuts cuts_;
  bool clock_runs_;
  bool drains_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::SeededInput input = fuzz::split_seed(data, size);
  Client client(input.seed);
  client.send_all(input.payload);
  client.finish();
  return 0;
}
