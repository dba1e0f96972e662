#include "server.hpp"

#include <unistd.h>

#include <cstdio>

namespace chatstream::fakellm {

Server::Server(uv_loop_t* loop, const Options& options)
    : loop_(loop), options_(options), timers_(loop), id_salt_(static_cast<uint32_t>(getpid())) {}

int Server::start() {
  sockaddr_storage address{};
  int rc = uv_ip4_addr(options_.address.c_str(), options_.port, reinterpret_cast<sockaddr_in*>(&address));
  if (rc != 0)
    rc = uv_ip6_addr(options_.address.c_str(), options_.port, reinterpret_cast<sockaddr_in6*>(&address));
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  if (rc == 0) rc = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&address), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 4096, &Server::on_connection);
  if (rc != 0) {
    std::fprintf(stderr, "fake-llm: cannot listen on %s: %s\n", options_.listen.c_str(), uv_strerror(rc));
    return rc;
  }

  sockaddr_storage bound{};
  int length = sizeof bound;
  uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &length);
  char host[64] = {};
  int port = 0;
  if (bound.ss_family == AF_INET6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&bound);
    uv_ip6_name(v6, host, sizeof host);
    port = ntohs(v6->sin6_port);
    std::fprintf(stderr, "fake-llm: listening on [%s]:%d\n", host, port);
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&bound);
    uv_ip4_name(v4, host, sizeof host);
    port = ntohs(v4->sin_port);
    std::fprintf(stderr, "fake-llm: listening on %s:%d\n", host, port);
  }

  uv_signal_init(loop_, &sigterm_);
  uv_signal_init(loop_, &sigint_);
  sigterm_.data = sigint_.data = this;
  uv_signal_start(&sigterm_, &Server::on_signal, SIGTERM);
  uv_signal_start(&sigint_, &Server::on_signal, SIGINT);
  uv_prepare_init(loop_, &prepare_);
  uv_check_init(loop_, &check_);
  uv_idle_init(loop_, &idle_);
  prepare_.data = check_.data = idle_.data = this;
  uv_prepare_start(&prepare_, &Server::on_prepare);
  uv_check_start(&check_, &Server::on_check);
  return 0;
}

void Server::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<Server*>(listener->data);
  if (status < 0 || self->stopping_) return;
  auto* connection = new Connection(*self);
  connection->next_ = self->connections_;
  if (self->connections_ != nullptr) self->connections_->prev_ = connection;
  self->connections_ = connection;
  ++self->stats_.connections_accepted;
  ++self->stats_.open_connections;
  connection->accept(listener);
}

void Server::forget(Connection& connection) {
  if (connection.prev_ != nullptr) {
    connection.prev_->next_ = connection.next_;
  } else {
    connections_ = connection.next_;
  }
  if (connection.next_ != nullptr) connection.next_->prev_ = connection.prev_;
  if (connection.in_flush_list_) std::erase(flush_list_, &connection);
  --stats_.open_connections;
}

void Server::schedule_flush(Connection& connection) {
  if (connection.in_flush_list_) return;
  connection.in_flush_list_ = true;
  flush_list_.push_back(&connection);
}

// Runs before the loop polls (output made by timers) and after it polls (output made by reads and
// write completions): every connection with output writes once per phase, all its chunks together.
void Server::flush_connections() {
  flushing_.swap(flush_list_);
  for (Connection* connection : flushing_) {
    connection->in_flush_list_ = false;
    connection->flush();  // may close it; its memory stays until the close callback, after this phase
  }
  flushing_.clear();
  // A flush that made more output (the next pipelined request answered) is left for the next phase;
  // the idle handle keeps the poll from blocking until then.
  if (!flush_list_.empty()) {
    uv_idle_start(&idle_, [](uv_idle_t*) {});
  } else {
    uv_idle_stop(&idle_);
  }
}

void Server::on_prepare(uv_prepare_t* handle) {
  static_cast<Server*>(handle->data)->flush_connections();
}

void Server::on_check(uv_check_t* handle) {
  static_cast<Server*>(handle->data)->flush_connections();
}

void Server::on_signal(uv_signal_t* handle, int) {
  static_cast<Server*>(handle->data)->stop();
}

void Server::stop() {
  if (stopping_) return;
  stopping_ = true;
  std::fprintf(stderr, "fake-llm: stopping\n");
  uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  for (Connection* connection = connections_; connection != nullptr;) {
    Connection* next = connection->next_;
    connection->close_now();
    connection = next;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), nullptr);
  timers_.close();
}

std::string Server::next_id(const char* prefix) {
  char id[48];
  int n = std::snprintf(id, sizeof id, "%sfake%08x%012llx", prefix, id_salt_,
                        static_cast<unsigned long long>(++id_counter_));
  return std::string(id, static_cast<size_t>(n));
}

bool Server::fault_applies(const std::string& key, uint32_t fail_times) {
  if (fail_times == 0) return true;
  // Bounded: a test suite uses a handful of keys; a runaway one cannot grow the map forever.
  constexpr size_t kMaxKeys = 100'000;
  if (faulted_by_key_.size() >= kMaxKeys && !faulted_by_key_.contains(key)) faulted_by_key_.clear();
  uint32_t& faulted = faulted_by_key_[key];
  if (faulted >= fail_times) return false;
  ++faulted;
  return true;
}

}  // namespace chatstream::fakellm
