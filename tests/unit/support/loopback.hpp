#pragma once
// An in-process loopback for unit tests: the real http::Connection on one end of a unix socketpair,
// adopted by a Host that runs the flush pass like worker/server.cpp, a timer wheel on a fake clock
// (tests move time; nothing sleeps), and the client end read by the test.
//
//   Loopback net;
//   net.on_request = [&](http::Connection& c, http::Request&) { … start a producer on c … };
//   net.client_send("GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
//   net.turn();                       // one loop turn: the server reads, answers, flushes
//   net.advance(15000);               // 15 s pass on the wheel's clock (heartbeats fire)
//   std::string body = net.body();    // the response body so far, de-chunked
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "core/intrusive_list.hpp"
#include "core/timer_wheel.hpp"
#include "http/connection.hpp"
#include "support/fake_clock.hpp"

namespace chatstream::testing {

class Loopback final : public http::Host {
 public:
  Loopback() : wheel_(nullptr, [] { return fake_clock_ms(); }) {
    EXPECT_EQ(uv_loop_init(&loop_), 0);
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
    fcntl(fds_[1], F_SETFL, fcntl(fds_[1], F_GETFL) | O_NONBLOCK);
    uv_prepare_init(&loop_, &flush_prepare_);
    flush_prepare_.data = this;
    uv_prepare_start(&flush_prepare_, &Loopback::on_prepare);
    connection_ = new http::Connection(*this, /*is_unix=*/true);
    EXPECT_EQ(connection_->adopt(&loop_, fds_[0]), 0);
  }
  ~Loopback() {
    if (connection_open_) connection_->close();
    wheel_.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&flush_prepare_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (after_close) after_close();
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle outlived its connection";
    if (fds_[1] >= 0) ::close(fds_[1]);
  }

  // http::Host
  const http::Limits& limits() const override { return limits_; }
  TimerWheel& wheel() override { return wheel_; }
  bool draining() const override { return false; }
  void dispatch(http::Connection& connection, http::Request& request) override {
    if (on_request) on_request(connection, request);
    else connection.respond(404, "text/plain", "no handler");
  }
  void schedule_flush(http::Connection& connection) override { flush_list_.push_back(connection.flush_node); }
  void on_connection_closed(http::Connection&) override { connection_open_ = false; }
  uv_buf_t read_buffer() override { return uv_buf_init(read_buffer_, sizeof read_buffer_); }

  std::function<void(http::Connection&, http::Request&)> on_request;
  std::function<void()> after_close;  // runs once the loop finished every close callback
  http::Limits limits_;

  http::Connection& connection() { return *connection_; }
  bool connection_open() const { return connection_open_; }
  uv_loop_t* loop() { return &loop_; }

  void client_send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fds_[1], bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) bytes.remove_prefix(static_cast<size_t>(n));
      else if (errno == EAGAIN) turn(false);
      else break;
    }
  }
  void get(std::string_view path) {
    client_send(std::string("GET ") + std::string(path) + " HTTP/1.1\r\nHost: test\r\n\r\n");
  }
  // One loop turn; then (unless told not to) whatever the server wrote is read by the client.
  void turn(bool read = true) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    if (read) client_read();
  }
  void turns(int n) {
    for (int i = 0; i < n; ++i) turn();
  }
  // The client stops reading (its socket buffer fills) until resume_reading().
  void stop_reading() { reading_ = false; }
  void resume_reading() { reading_ = true; }
  // The client goes away.
  void client_close() {
    ::close(fds_[1]);
    fds_[1] = -1;
  }
  void advance(uint64_t ms) {
    fake_clock_ms() += ms;
    wheel_.advance_to(fake_clock_ms());
    turn();
  }

  const std::string& received() const { return received_; }
  // The response body (after the head), with chunked framing removed; `ended` tells whether the
  // last chunk was seen.
  std::string body(bool* ended = nullptr) const {
    size_t at = received_.find("\r\n\r\n");
    std::string out;
    if (ended) *ended = false;
    if (at == std::string::npos) return out;
    at += 4;
    while (at < received_.size()) {
      size_t line_end = received_.find("\r\n", at);
      if (line_end == std::string::npos) break;
      size_t size = std::strtoul(received_.substr(at, line_end - at).c_str(), nullptr, 16);
      if (size == 0) {
        if (ended) *ended = true;
        break;
      }
      if (line_end + 2 + size > received_.size()) break;
      out.append(received_, line_end + 2, size);
      at = line_end + 2 + size + 2;
    }
    return out;
  }

 private:
  static void on_prepare(uv_prepare_t* handle) {
    auto* self = static_cast<Loopback*>(handle->data);
    IntrusiveList batch;
    batch.splice_back(self->flush_list_);
    while (ListNode* node = batch.pop_front()) static_cast<OwnedNode<http::Connection>*>(node)->owner->flush();
  }
  void client_read() {
    if (!reading_ || fds_[1] < 0) return;
    char buffer[65536];
    for (;;) {
      ssize_t n = ::recv(fds_[1], buffer, sizeof buffer, 0);
      if (n <= 0) return;
      received_.append(buffer, static_cast<size_t>(n));
    }
  }

  uv_loop_t loop_;
  int fds_[2] = {-1, -1};
  TimerWheel wheel_;
  uv_prepare_t flush_prepare_;
  IntrusiveList flush_list_;
  http::Connection* connection_ = nullptr;
  bool connection_open_ = true;
  bool reading_ = true;
  std::string received_;
  char read_buffer_[16384];
};

}  // namespace chatstream::testing
