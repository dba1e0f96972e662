// One client connection: a uv_tcp_t, its llhttp parser, the request being read, the unsent
// response bytes, and the one close path. Requests on a connection are answered one at a time, in
// order (keep-alive and pipelining: bytes of the next request wait, bounded, until the current
// response has ended).
//
// Writing: response bytes are appended to `pending_` and the connection asks the server for a flush;
// the server flushes every such connection once per loop turn (before the loop polls, and after it),
// so all the chunks of one turn go out in one write. A flush tries the socket first (uv_try_write);
// only what the kernel does not take becomes one uv_write, and while it is in flight new bytes
// accumulate in `pending_`.
//
// Backpressure: the producer of a streamed answer checks queued() and stops above kHighWater; the
// connection calls Producer::on_output_drained when the socket took bytes and the queue is under it.
// A client that stops reading: when more than kPausedMark bytes wait and the kernel takes none of them
// for kPausedAfterUs, it counts once in Stats::paused_detected (a reader that is merely slower than
// the producer, as at --rate 0, keeps taking bytes and does not count).
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/header_reader.hpp"
#include "timer_heap.hpp"

namespace chatstream::fakellm {

class Server;

struct Request {
  std::string method;
  std::string path;  // without the query string
  std::string body;
  std::optional<std::string> authorization;
  // X-Fake-* overrides, "" when absent.
  std::string fake_fault;
  std::string fake_key;
  std::string fake_fail_times;
  std::string fake_fault_after;
  std::string fake_tokens;
  std::string fake_rate;
};

// The answer in progress on a connection (a streamed completion, or a stalled one).
class Producer {
 public:
  virtual ~Producer() = default;
  // The socket took bytes and queued() is at most Connection::kHighWater: a producer that stopped
  // above it may go on. Called from the flush or a write callback, never from inside the producer.
  virtual void on_output_drained() = 0;
  // The connection is closing: stop all timers, never touch the connection again.
  virtual void on_connection_closed() = 0;
};

class Connection {
 public:
  static constexpr size_t kHighWater = 256 * 1024;
  static constexpr size_t kPausedMark = 64 * 1024;
  static constexpr uint64_t kPausedAfterUs = 200'000;
  static constexpr size_t kMaxHeaderBytes = 64 * 1024;
  static constexpr size_t kMaxBody = 8 * 1024 * 1024;

  explicit Connection(Server& server);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Accepts a pending connection of `listener` and starts reading. On failure the connection
  // closes itself (its memory is reclaimed in the close callback).
  void accept(uv_stream_t* listener);

  // Answers the request being handled with a whole response (Content-Length).
  void respond(int status, std::string_view content_type, std::string_view body,
               std::string_view extra_headers = {});
  // Starts a 200 text/event-stream response: chunked on HTTP/1.1, close-delimited on HTTP/1.0.
  void begin_stream(std::string_view extra_headers);
  // Appends response body bytes: one HTTP chunk on a chunked response.
  void write_body(std::string_view bytes);
  // Ends a streamed response (the last chunk); the next request may be read.
  void end_stream();
  // Sends what is queued, then closes the connection without ending the response (disconnect fault).
  void close_after_output();
  // The producer of the answer in progress; kept until the next request or the connection's end.
  void set_producer(std::unique_ptr<Producer> producer) { producer_ = std::move(producer); }

  // Response bytes not yet taken by the kernel.
  size_t queued() const { return pending_.size() + tcp_.write_queue_size; }
  bool closing() const { return closing_; }

  // Server side: closes at once (server stopping).
  void close_now() { close(false); }
  // Called by the server's per-turn flush.
  void flush();

  // Server bookkeeping: the list of every connection, and the flush list.
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
  bool in_flush_list_ = false;

 private:
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buffer);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buffer);
  static void on_write(uv_write_t* request, int status);
  static void on_close(uv_handle_t* handle);
  static void on_paused_timer(void* self);
  static const llhttp_settings_t& parser_settings();
  static int on_message_begin(llhttp_t* parser);
  static int on_url(llhttp_t* parser, const char* at, size_t length);
  static int on_header_field(llhttp_t* parser, const char* at, size_t length);
  static int on_header_value(llhttp_t* parser, const char* at, size_t length);
  static int on_header_value_complete(llhttp_t* parser);
  static int on_headers_complete(llhttp_t* parser);
  static int on_body(llhttp_t* parser, const char* at, size_t length);
  static int on_message_complete(llhttp_t* parser);
  int refuse_large_head();  // 431

  void feed(const char* data, size_t length);
  size_t parse(const char* data, size_t length);
  void process_buffered_input();
  void dispatch();
  void reject(int status, std::string_view message);
  void append_head(int status, std::string_view content_type, std::string_view extra_headers,
                   std::optional<size_t> content_length);
  void finish_response();
  void request_flush();
  void write_out();
  void after_queue_change();
  // Bytes the kernel has accepted so far (libuv's partial progress on a uv_write included).
  uint64_t bytes_accepted() const { return bytes_submitted_ - tcp_.write_queue_size; }
  // The one close path. `by_client`: the peer closed or reset (counted when a response was open).
  void close(bool by_client);

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

  Server& server_;
  uv_tcp_t tcp_{};
  llhttp_t parser_{};
  Request request_;
  bench::HeaderReader headers_{kMaxHeaderBytes};
  int parse_error_status_ = 0;  // 413 / 431 set by a callback that stopped llhttp
  bool expect_continue_ = false;
  bool request_keep_alive_ = true;
  bool request_http10_ = false;

  std::string input_;  // received bytes not parsed yet (a request waiting for the current response)
  bool reading_ = false;
  bool resume_parsing_ = false;

  std::string pending_;  // response bytes not handed to the socket yet
  std::string writing_;  // bytes of the uv_write in flight (libuv points into it)
  uv_write_t write_request_{};
  bool write_in_flight_ = false;

  bool busy_ = false;       // a request is being answered
  bool chunked_ = false;    // the current response uses chunked encoding
  bool keep_alive_ = true;  // the current response lets another request follow
  bool close_after_output_ = false;
  bool closing_ = false;

  std::unique_ptr<Producer> producer_;
  Timer paused_timer_;
  bool paused_counted_ = false;   // this stretch above kPausedMark was counted already
  uint64_t bytes_taken_ = 0;      // response bytes the kernel has accepted, up to the last check
  uint64_t bytes_submitted_ = 0;  // bytes handed to uv_try_write (accepted) and uv_write (all)
};

}  // namespace chatstream::fakellm
