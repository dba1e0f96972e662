#pragma once
// One client connection: its libuv stream (TCP or unix socket), its llhttp parser, its bounded input
// and output, its timeouts, and the one close path.
//
// Requests are answered strictly in order (HTTP/1.1 pipelining): parsing pauses at the end of each
// request until its response has ended, while reading goes on so a client that goes away is noticed at
// once (its response producer is told, and stops all work). Output goes to an OutputQueue and is
// written once per loop turn by the server's flush pass (try the socket first, queue only the rest,
// one write in flight at a time).
//
// Lifetime: created by the server on accept; close() is the only way out; the object is deleted in the
// libuv close callback, never before. Nothing may touch a Connection after close() except through a
// handle it gave out before (none are given out).

#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/errc.hpp"
#include "core/intrusive_list.hpp"
#include "core/timer_wheel.hpp"
#include "http/output_queue.hpp"
#include "http/request.hpp"

namespace chatstream::http {

class Connection;

struct Limits {
  size_t max_header_bytes = 8192;
  size_t max_body = 65536;
  uint64_t header_timeout_ms = 10000;
  uint64_t keepalive_timeout_ms = 75000;
  int send_buffer = 0;  // SO_SNDBUF for accepted sockets, 0 = kernel default
};

// Whoever produces a response that does not end at once (an SSE stream, a deferred JSON answer)
// attaches itself to the connection and is called back on the loop:
class ResponseProducer {
 public:
  // Once per loop turn in which the connection was marked for flushing, before it writes.
  virtual void on_flush() = 0;
  // The socket took queued bytes; unsent_bytes() is smaller now.
  virtual void on_output_drained() = 0;
  // The connection is closing (client gone, write error, shutdown). The producer is detached first:
  // it must stop its work and never touch the connection again.
  virtual void on_connection_lost() = 0;

 protected:
  ~ResponseProducer() = default;
};

// What a connection needs from the server that owns it.
class Host {
 public:
  virtual const Limits& limits() const = 0;
  virtual TimerWheel& wheel() = 0;
  virtual bool draining() const = 0;
  // A complete request: answer it now (respond) or attach a producer that answers later.
  virtual void dispatch(Connection& connection, Request& request) = 0;
  // Queue `connection` for the flush pass of this loop turn.
  virtual void schedule_flush(Connection& connection) = 0;
  // The connection is being closed; it is deleted right after the server's hook returns.
  virtual void on_connection_closed(Connection& connection) = 0;
  // The one read buffer of the loop (data is parsed or copied out before the next read).
  virtual uv_buf_t read_buffer() = 0;

 protected:
  ~Host() = default;
};

class Connection {
 public:
  Connection(Host& host, bool is_unix);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Accepts a pending connection from `listener` and starts reading. Returns a negative libuv error
  // (the connection then closes itself) or 0.
  int accept_from(uv_stream_t* listener);
  // Adopts a socket that is already connected (a unix socketpair end when is_unix, so tests and fuzz
  // targets drive the real connection without a listener) and starts reading, as accept_from does.
  int adopt(uv_loop_t* loop, uv_os_sock_t socket);

  // --- Answering the current request (exactly one of these ends it) ---
  // A complete response with a body.
  void respond(int status, std::string_view content_type, std::string_view body,
               std::string_view extra_headers = {});
  // The JSON error shape of docs/protocol.md: status, code and Retry-After from the row of `errc`.
  void respond_error(Errc errc, std::string_view message, std::string_view extra_headers = {},
                     std::string_view extra_fields = {});
  // Streaming: writes the head now (chunked for HTTP/1.1, close-delimited for HTTP/1.0); then
  // write_body() any number of times and end_stream() once.
  void begin_stream(std::string_view content_type, std::string_view extra_headers);
  void write_body(std::string_view bytes);
  void end_stream();
  // Answers with an error and closes the connection once the answer is written (malformed input,
  // timeouts, the connection cap).
  void reject(Errc errc, std::string_view message, std::string_view extra_headers = {});
  // A producer for a response that ends later (via respond()/end_stream()), told about drains and loss.
  void attach(ResponseProducer* producer) { producer_ = producer; }
  void detach(ResponseProducer* producer) {
    if (producer_ == producer) producer_ = nullptr;
  }

  size_t unsent_bytes() const { return output_.size(); }
  bool closing() const { return closing_; }
  bool response_in_progress() const { return busy_; }
  // Called by the server's flush pass (once per loop turn).
  void flush();
  void request_flush();
  // Closes idle keep-alive connections at once, and makes busy ones close after their response.
  void begin_drain();
  // The one close path. Safe to call more than once and from any callback.
  void close();

  Host& host() { return host_; }
  OwnedNode<Connection> flush_node{this};       // in the server's flush list while a flush is pending
  OwnedNode<Connection> connection_node{this};  // in the server's list of all connections

 private:
  enum class TimerKind : uint8_t { kNone, kRequest, kIdle, kLinger };

  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_close(uv_handle_t* handle);
  static void on_timer(void* self);

  // llhttp callbacks.
  static int on_message_begin(llhttp_t* parser);
  static int on_url(llhttp_t* parser, const char* at, size_t length);
  static int on_header_field(llhttp_t* parser, const char* at, size_t length);
  static int on_header_value(llhttp_t* parser, const char* at, size_t length);
  static int on_header_value_complete(llhttp_t* parser);
  static int on_headers_complete(llhttp_t* parser);
  static int on_body(llhttp_t* parser, const char* at, size_t length);
  static int on_message_complete(llhttp_t* parser);
  static const llhttp_settings_t& parser_settings();

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&handle_); }
  void init_handle(uv_loop_t* loop);
  int start_reading();
  void feed(const char* data, size_t length);
  size_t parse(const char* data, size_t length);
  void process_buffered_input();
  void dispatch_request();
  void finish_response();
  void write_out();
  void after_output_drained();
  void arm_timer(TimerKind kind, uint64_t delay_ms);
  bool count_header_bytes(size_t length);

  Host& host_;
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } handle_;
  llhttp_t parser_;
  Timer timer_;
  OutputQueue output_;
  // What is being parsed: allocated when a request begins and freed once it is dispatched, so a
  // long-lived stream holds no request memory (the handler copies what it keeps).
  struct PendingRequest;
  std::unique_ptr<PendingRequest> pending_;
  std::string input_;  // bytes read but not parsed yet (pipelined behind a response in progress)
  ResponseProducer* producer_ = nullptr;
  uv_write_t* write_req_ = nullptr;  // allocated only while a write waits for the socket
  size_t write_in_flight_bytes_ = 0;
  std::optional<Errc> pending_error_;  // set by a parser callback that rejects the request
  TimerKind timer_kind_ = TimerKind::kNone;
  bool is_unix_;
  bool closing_ = false;
  bool busy_ = false;               // a request was dispatched and its response has not ended
  bool streaming_ = false;          // begin_stream() was called for the current response
  bool chunked_ = false;            // the current streamed body is chunk-framed
  bool keep_alive_ = true;          // of the current request
  bool close_after_output_ = false; // graceful close once everything queued is written
  bool lingering_ = false;          // shut down for writing; discarding input until EOF
  bool reading_ = false;
  bool resume_parsing_ = false;     // buffered pipelined input waits for the flush pass
  bool request_started_ = false;    // bytes of a request arrived since the last response
  bool http11_ = true;              // the current request is HTTP/1.1 or later
};

}  // namespace chatstream::http
