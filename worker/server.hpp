#pragma once
// One worker process: a libuv loop, the inherited listening socket, every connection, the flush pass
// that writes once per loop turn, the deferred-free list, and the drain on SIGTERM/SIGINT. Route
// handlers live in handler/.
//
// Drain: stop accepting (close our copy of the listener), close idle keep-alive connections, answer
// the requests in progress with `Connection: close`, let streams run for --drain-timeout, then end the
// remaining runs with error{shutdown}; the loop ends when the last connection is closed.

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "chat/checkpointer.hpp"
#include "chat/run_followers.hpp"
#include "chat/run_publisher.hpp"
#include "chat/run.hpp"
#include "chat/run_registry.hpp"
#include "chat/store.hpp"
#include "db/pool.hpp"
#include "config.hpp"
#include "handler/context.hpp"
#include "core/graveyard.hpp"
#include "core/intrusive_list.hpp"
#include "core/timer_wheel.hpp"
#include "http/connection.hpp"
#include "http/router.hpp"
#include "llm/provider.hpp"

namespace chatstream {

// What the master tells a worker it forks: itself, and the workers of this instance that died (their
// running runs are closed as worker_lost by whichever worker starts next).
struct WorkerOrigin {
  int master_pid = 0;
  std::vector<int> lost_worker_pids;
};

class Server final : private http::Host, private handler::WorkerState {
 public:
  Server(uv_loop_t* loop, const Config& config, int worker_index, const WorkerOrigin& origin);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Starts serving on an already bound and listening socket inherited from the master.
  Status listen_on(int fd);
  // Runs the loop until the drain has finished.
  void run();
  void begin_drain();

 private:
  // http::Host
  const http::Limits& limits() const override { return limits_; }
  TimerWheel& wheel() override { return wheel_; }
  void dispatch(http::Connection& connection, http::Request& request) override;
  void schedule_flush(http::Connection& connection) override { flush_list_.push_back(connection.flush_node); }
  void on_connection_closed(http::Connection& connection) override;
  uv_buf_t read_buffer() override { return uv_buf_init(read_buffer_.get(), kReadBufferSize); }

  // handler::WorkerState
  bool draining() const override { return draining_; }
  int64_t connection_count() const override { return connection_count_; }
  int worker_index() const override { return worker_index_; }

  void on_cancel_notification(std::string_view payload);
  void on_listening_again();
  void on_run_end_notification(std::string_view payload);
  void stop_if_drained();
  std::vector<http::Connection*> connection_snapshot();
  void close_handles();

  static void on_connection(uv_stream_t* listener, int status);
  static void on_prepare(uv_prepare_t* handle);
  static void on_check(uv_check_t* handle);
  void flush_pass();
  static void on_signal(uv_signal_t* handle, int signum);
  static void on_drain_deadline(void* self);
  static void on_drain_force(void* self);
  static void on_drain_writes(void* self);

  static constexpr unsigned kReadBufferSize = 64 * 1024;

  uv_loop_t* loop_;
  const Config& config_;
  int worker_index_;
  http::Limits limits_;
  TimerWheel wheel_;
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } listener_;
  bool listening_ = false;
  uv_prepare_t flush_prepare_;
  uv_check_t flush_check_;
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  IntrusiveList flush_list_;
  IntrusiveList connections_;
  int connection_count_ = 0;
  http::Router router_;
  chat::RunRegistry registry_;
  chat::SessionWaiters waiters_;
  std::unique_ptr<llm::Provider> provider_;
  std::unique_ptr<db::Pool> pool_;    // null without a database
  std::unique_ptr<chat::Store> store_;
  std::unique_ptr<chat::Conversations> conversations_;  // null without a database
  std::unique_ptr<auth::SignIn> sign_in_;
  std::unique_ptr<chat::Checkpointer> checkpointer_;
  std::unique_ptr<chat::RunPublisher> publisher_;   // null without a database
  std::unique_ptr<chat::RunFollowers> followers_;   // null without a database
  Graveyard graveyard_;  // after the wheel and the provider: buried runs use both when deleted
  std::unique_ptr<chat::RunEnvironment> run_env_;
  std::unique_ptr<handler::HandlerContext> handler_context_;
  std::unique_ptr<char[]> read_buffer_;
  Timer drain_deadline_;
  Timer drain_force_;
  Timer drain_writes_;       // re-checks whether the last conversation writes are done
  uint64_t writes_deadline_ms_ = 0;
  bool draining_ = false;
  bool handles_closed_ = false;
};

// Entry point of a forked worker process: returns its exit status.
int run_worker(const Config& config, int listen_fd, int worker_index, const WorkerOrigin& origin);

}  // namespace chatstream
