#pragma once
// libcurl's multi socket interface on the worker's libuv loop: one CURLM per worker, a uv_poll_t per
// socket libcurl asks us to watch (CURLMOPT_SOCKETFUNCTION) and one uv_timer_t for libcurl's
// timeouts (CURLMOPT_TIMERFUNCTION); readiness is handed back with curl_multi_socket_action. No
// threads, no blocking call; connections (and TLS sessions) are reused across transfers by the
// multi handle's connection cache.
//
// Connections to a multiplexing (HTTP/2) upstream are opened one at a time. libcurl 7.88 opens a new
// connection for every transfer added while the connections it has are full and the next one is
// still in its TLS handshake (CURLOPT_PIPEWAIT only helps for the very first connection): a burst of
// 300 runs made 201 connections of one stream each. So a transfer whose addition made libcurl open
// a connection (a "pioneer") holds the transfers added after it in a FIFO until that connection is
// established (CURLOPT_PREREQFUNCTION: right before its request is sent); they are then handed to
// libcurl one by one, each as long as it found room on an existing connection. The gate is only for
// upstreams that multiplex: it opens for good once a connection turns out to speak HTTP/1.1, and for
// the transfers waiting when a pioneer fails to connect (they try on their own then).
//
// A Transfer owns one easy handle. Removing a transfer before it completes ends its request, which is
// how a cancelled run makes the upstream stop generating: over HTTP/1.1 libcurl closes the
// connection; over HTTP/2 it resets only that stream (RST_STREAM) and the connection goes on carrying
// the others.

#include <curl/curl.h>
#include <uv.h>

#include <cstddef>
#include <deque>
#include <string_view>
#include <vector>

namespace chatstream::llm {

class CurlLoop;

class Transfer {
 public:
  Transfer();
  virtual ~Transfer();
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  CURL* easy() const { return easy_; }
  bool active() const { return loop_ != nullptr; }
  // Resets the easy handle (curl_easy_reset) and installs the callbacks that route its body to
  // on_body: for a transfer reused for another request.
  void reset_handle();

 protected:
  // Response header lines as they arrive, status lines included ("HTTP/2 200\r\n").
  virtual void on_header(std::string_view line) { (void)line; }
  // Body bytes as they arrive. Return false to abort the transfer (on_done then reports an error).
  virtual bool on_body(const char* data, size_t length) = 0;
  // Once, when libcurl is done with the transfer (success or failure); the transfer is already
  // removed from the loop and may be reused or destroyed.
  virtual void on_done(CURLcode result) = 0;

 private:
  friend class CurlLoop;
  static size_t on_write(char* data, size_t size, size_t count, void* self);
  static size_t on_header_line(char* data, size_t size, size_t count, void* self);
  static int on_connected(void* self, char* primary_ip, char* local_ip, int primary_port, int local_port);
  CURL* easy_;
  CurlLoop* loop_ = nullptr;
  bool multiplexed_ = false;  // added for an upstream that may multiplex: subject to the gate
  bool waiting_ = false;    // added, held by the connection gate (not yet in the multi handle)
  bool paused_ = false;     // pause() was asked: on_write refuses bytes (CURL_WRITEFUNC_PAUSE)
  bool connected_ = false;  // libcurl gave it a connection (PREREQFUNCTION ran)
};

class CurlLoop {
 public:
  explicit CurlLoop(uv_loop_t* loop);
  CurlLoop(const CurlLoop&) = delete;
  CurlLoop& operator=(const CurlLoop&) = delete;
  ~CurlLoop();

  // Starts the transfer (its easy handle is configured by the caller), or queues it behind a
  // connection being opened to a multiplexing upstream (see above). Never calls into libcurl's
  // callbacks from inside: queued transfers start from the loop. Returns false on failure.
  // `multiplexed`: the upstream may speak HTTP/2 (https://), so the transfer may share a connection.
  bool add(Transfer& transfer, bool multiplexed = false);
  // Stops it at once (no on_done); an unfinished response closes its HTTP/1.1 connection or resets
  // its HTTP/2 stream.
  void remove(Transfer& transfer);
  // Stops or resumes reading the response (a slow client downstream).
  void pause(Transfer& transfer, bool paused);
  // Closes the timer; the poll handles close as libcurl releases its sockets.
  void close();

 private:
  friend class Transfer;
  struct Socket;
  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* self, void* socket_data);
  static int on_timer_request(CURLM* multi, long timeout_ms, void* self);
  static void on_poll(uv_poll_t* handle, int status, int events);
  static void on_timeout(uv_timer_t* handle);
  static void on_admit(uv_timer_t* handle);
  void act(curl_socket_t fd, int flags);
  void after_call();
  void reap();
  bool start(Transfer& transfer);
  // Hands queued transfers to libcurl until one of them needs a new connection.
  void admit();
  void schedule_admit();
  void transfer_connected(Transfer& transfer);
  void upstream_speaks_http1();

  uv_loop_t* loop_;
  CURLM* multi_;
  uv_timer_t timer_;
  uv_timer_t admit_timer_;  // runs admit() from the loop, never inside a caller or a libcurl call
  std::deque<Transfer*> waiting_;
  Transfer* pioneer_ = nullptr;  // its addition opened a connection that is not established yet
  bool gate_open_ = false;       // the upstream does not multiplex: no reason to hold transfers
  bool flooding_ = false;        // a pioneer failed to connect: the waiting start on their own
  bool closed_ = false;
  // > 0 while libcurl runs our callbacks (inside curl_multi_socket_action or curl_easy_pause): libcurl
  // forbids removing handles then, so removals wait until the call returns.
  int depth_ = 0;
  std::vector<CURL*> deferred_removals_;
};

}  // namespace chatstream::llm
