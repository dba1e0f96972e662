// The fake-llm server: one libuv loop on one thread. Owns the listening socket, every connection,
// the one TimerHeap, the per-turn flush of connections with output, the counters, and the routes
// (routes.cpp):
//   POST /v1/chat/completions   chat answers, streamed or whole, with the injected faults
//   GET  /v1/models             the one model
//   GET  /stats, POST /reset    counters for tests
// (each also without the /v1 prefix).
#pragma once

#include <simdjson.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "connection.hpp"
#include "options.hpp"
#include "stats.hpp"
#include "timer_heap.hpp"

namespace chatstream::fakellm {

class Server {
 public:
  Server(uv_loop_t* loop, const Options& options);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and installs the signal handlers; prints "listening on HOST:PORT" to stderr.
  // Returns 0 or a negative libuv error (printed).
  int start();

  uv_loop_t* loop() { return loop_; }
  const Options& options() const { return options_; }
  TimerHeap& timers() { return timers_; }
  Stats& stats() { return stats_; }
  bool stopping() const { return stopping_; }

  // Connections ask to be flushed once this loop turn; forget() is their last call, from their
  // close callback.
  void schedule_flush(Connection& connection);
  void forget(Connection& connection);

  // Answers a complete request (routes.cpp).
  void dispatch(Connection& connection, Request& request);
  // Answers with an OpenAI-shaped error ({"error":{"message","type","param","code"}}), counted as bad.
  void reject(Connection& connection, int status, std::string_view message,
              std::string_view extra_headers = {});

  // Scratch space reused by whoever runs now (one thread, nothing kept across callbacks).
  std::string& read_buffer() { return read_buffer_; }
  std::string& scratch_json() { return scratch_json_; }
  std::string& scratch_choice() { return scratch_choice_; }
  std::string& scratch_event() { return scratch_event_; }
  std::vector<uint32_t>& scratch_offsets() { return scratch_offsets_; }

 private:
  static void on_connection(uv_stream_t* listener, int status);
  static void on_signal(uv_signal_t* handle, int signal);
  static void on_prepare(uv_prepare_t* handle);
  static void on_check(uv_check_t* handle);
  void flush_connections();
  void stop();

  void handle_chat(Connection& connection, Request& request);
  // Whether the fault selected for a request applies (--fail-times / X-Fake-Fail-Times per key).
  bool fault_applies(const std::string& key, uint32_t fail_times);
  std::string next_id(const char* prefix);

  uv_loop_t* loop_;
  const Options& options_;
  TimerHeap timers_;
  Stats stats_;
  simdjson::dom::parser json_;

  uv_tcp_t listener_{};
  uv_signal_t sigterm_{};
  uv_signal_t sigint_{};
  uv_prepare_t prepare_{};
  uv_check_t check_{};
  uv_idle_t idle_{};  // keeps the poll from blocking while flushes are left for the next phase
  bool stopping_ = false;

  Connection* connections_ = nullptr;  // every open connection (intrusive list)
  std::vector<Connection*> flush_list_;
  std::vector<Connection*> flushing_;

  std::unordered_map<std::string, uint32_t> faulted_by_key_;
  uint64_t id_counter_ = 0;
  uint32_t id_salt_ = 0;

  std::string read_buffer_ = std::string(64 * 1024, '\0');
  std::string scratch_json_;
  std::string scratch_choice_;
  std::string scratch_event_;
  std::vector<uint32_t> scratch_offsets_;
};

}  // namespace chatstream::fakellm
