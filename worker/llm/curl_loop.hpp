#pragma once
// libcurl's multi socket interface on the worker's libuv loop: one CURLM per worker, a uv_poll_t per
// socket libcurl asks us to watch (CURLMOPT_SOCKETFUNCTION) and one uv_timer_t for libcurl's
// timeouts (CURLMOPT_TIMERFUNCTION); readiness is handed back with curl_multi_socket_action. No
// threads, no blocking call; connections (and TLS sessions) are reused across transfers by the
// multi handle's connection cache.
//
// A Transfer owns one easy handle. Removing a transfer before it completes closes its connection,
// which is how a cancelled run makes the upstream stop generating.

#include <curl/curl.h>
#include <uv.h>

#include <cstddef>
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
  // Body bytes as they arrive. Return false to abort the transfer (on_done then reports an error).
  virtual bool on_body(const char* data, size_t length) = 0;
  // Once, when libcurl is done with the transfer (success or failure); the transfer is already
  // removed from the loop and may be reused or destroyed.
  virtual void on_done(CURLcode result) = 0;

 private:
  friend class CurlLoop;
  static size_t on_write(char* data, size_t size, size_t count, void* self);
  CURL* easy_;
  CurlLoop* loop_ = nullptr;
};

class CurlLoop {
 public:
  explicit CurlLoop(uv_loop_t* loop);
  CurlLoop(const CurlLoop&) = delete;
  CurlLoop& operator=(const CurlLoop&) = delete;
  ~CurlLoop();

  // Starts the transfer (its easy handle is configured by the caller). Returns false on failure.
  bool add(Transfer& transfer);
  // Stops it at once (no on_done); the connection is closed if the response was not complete.
  void remove(Transfer& transfer);
  // Stops or resumes reading the response (a slow client downstream).
  void pause(Transfer& transfer, bool paused);
  // Closes the timer; the poll handles close as libcurl releases its sockets.
  void close();

 private:
  struct Socket;
  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* self, void* socket_data);
  static int on_timer_request(CURLM* multi, long timeout_ms, void* self);
  static void on_poll(uv_poll_t* handle, int status, int events);
  static void on_timeout(uv_timer_t* handle);
  void act(curl_socket_t fd, int flags);
  void after_call();
  void reap();

  uv_loop_t* loop_;
  CURLM* multi_;
  uv_timer_t timer_;
  bool closed_ = false;
  // > 0 while libcurl runs our callbacks (inside curl_multi_socket_action or curl_easy_pause): libcurl
  // forbids removing handles then, so removals wait until the call returns.
  int depth_ = 0;
  std::vector<CURL*> deferred_removals_;
};

}  // namespace chatstream::llm
