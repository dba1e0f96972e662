#include "llm/curl_loop.hpp"

#include "obs/log.hpp"

#include <algorithm>

namespace chatstream::llm {

struct CurlLoop::Socket {
  uv_poll_t poll;
  curl_socket_t fd;
  CurlLoop* owner;
};

Transfer::Transfer() : easy_(curl_easy_init()) { reset_handle(); }

void Transfer::reset_handle() {
  curl_easy_reset(easy_);
  curl_easy_setopt(easy_, CURLOPT_PRIVATE, this);
  curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &Transfer::on_write);
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &Transfer::on_header_line);
  curl_easy_setopt(easy_, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(easy_, CURLOPT_PREREQFUNCTION, &Transfer::on_connected);
  curl_easy_setopt(easy_, CURLOPT_PREREQDATA, this);
  curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
}

Transfer::~Transfer() {
  if (loop_) loop_->remove(*this);
  curl_easy_cleanup(easy_);
}

size_t Transfer::on_write(char* data, size_t size, size_t count, void* self) {
  auto* transfer = static_cast<Transfer*>(self);
  // Paused before libcurl could be told (while waiting at the gate, or before the response began,
  // when libcurl's own pause flag does not stick yet): libcurl keeps these bytes until unpaused.
  if (transfer->paused_) return CURL_WRITEFUNC_PAUSE;
  size_t length = size * count;
  return transfer->on_body(data, length) ? length : 0;  // 0 makes libcurl abort with CURLE_WRITE_ERROR
}

size_t Transfer::on_header_line(char* data, size_t size, size_t count, void* self) {
  auto* transfer = static_cast<Transfer*>(self);
  std::string_view line(data, size * count);
  if (transfer->multiplexed_ && transfer->loop_ && line.starts_with("HTTP/1.")) transfer->loop_->upstream_speaks_http1();
  transfer->on_header(line);
  return size * count;
}

int Transfer::on_connected(void* self, char*, char*, int, int) {
  auto* transfer = static_cast<Transfer*>(self);
  transfer->connected_ = true;
  if (transfer->loop_) transfer->loop_->transfer_connected(*transfer);
  return CURL_PREREQFUNC_OK;
}

CurlLoop::CurlLoop(uv_loop_t* loop) : loop_(loop), multi_(curl_multi_init()) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  uv_timer_init(loop_, &admit_timer_);
  admit_timer_.data = this;
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlLoop::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlLoop::on_timer_request);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  // HTTP/2 multiplexing when the upstream offers it: many runs share one connection.
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
}

CurlLoop::~CurlLoop() { close(); }

void CurlLoop::close() {
  if (closed_) return;
  closed_ = true;
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&admit_timer_), nullptr);
  // Transfers still added are removed by their owners; the multi handle goes last.
  curl_multi_cleanup(multi_);
  multi_ = nullptr;
}

bool CurlLoop::add(Transfer& transfer, bool multiplexed) {
  if (closed_ || transfer.loop_) return false;
  transfer.multiplexed_ = multiplexed;
  transfer.connected_ = false;
  transfer.paused_ = false;
  if (!multiplexed || gate_open_) return start(transfer);
  // Whether it finds room on a connection or needs a new one is learnt by handing it to libcurl,
  // which admit() does from the loop.
  transfer.loop_ = this;
  transfer.waiting_ = true;
  waiting_.push_back(&transfer);
  schedule_admit();
  return true;
}

bool CurlLoop::start(Transfer& transfer) {
  if (curl_multi_add_handle(multi_, transfer.easy_) != CURLM_OK) return false;
  transfer.loop_ = this;
  return true;
}

void CurlLoop::schedule_admit() {
  if (!closed_ && !waiting_.empty() && !uv_is_active(reinterpret_cast<uv_handle_t*>(&admit_timer_))) {
    uv_timer_start(&admit_timer_, &CurlLoop::on_admit, 0, 0);
  }
}

void CurlLoop::on_admit(uv_timer_t* handle) { static_cast<CurlLoop*>(handle->data)->admit(); }

void CurlLoop::admit() {
  while (!waiting_.empty() && !pioneer_ && multi_) {
    Transfer* transfer = waiting_.front();
    waiting_.pop_front();
    transfer->waiting_ = false;
    transfer->loop_ = nullptr;
    if (!start(*transfer)) {
      transfer->on_done(CURLE_FAILED_INIT);
      continue;
    }
    if (gate_open_ || flooding_) continue;
    // libcurl picks the transfer's connection now: one with room runs PREREQFUNCTION inside this
    // call; a transfer still without one has made libcurl open a connection.
    act(CURL_SOCKET_TIMEOUT, 0);
    if (transfer->loop_ == this && !transfer->connected_) pioneer_ = transfer;
  }
}

void CurlLoop::transfer_connected(Transfer& transfer) {
  flooding_ = false;
  if (pioneer_ == &transfer) {
    pioneer_ = nullptr;
    schedule_admit();
  }
}

void CurlLoop::upstream_speaks_http1() {
  if (gate_open_) return;
  gate_open_ = true;  // every transfer needs a connection of its own: open them in parallel
  pioneer_ = nullptr;
  schedule_admit();
}

void CurlLoop::remove(Transfer& transfer) {
  if (transfer.loop_ != this) return;
  transfer.loop_ = nullptr;
  if (transfer.waiting_) {
    transfer.waiting_ = false;
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &transfer));
    return;
  }
  if (pioneer_ == &transfer) {
    pioneer_ = nullptr;
    schedule_admit();
  }
  if (!multi_) return;
  if (depth_ > 0) {
    deferred_removals_.push_back(transfer.easy_);
    return;
  }
  curl_multi_remove_handle(multi_, transfer.easy_);
}

void CurlLoop::pause(Transfer& transfer, bool paused) {
  if (transfer.loop_ != this) return;
  transfer.paused_ = paused;
  if (transfer.waiting_) return;  // on_write pauses it once it starts
  // Unpausing may deliver buffered data at once, into our callbacks.
  ++depth_;
  curl_easy_pause(transfer.easy_, paused ? CURLPAUSE_RECV : CURLPAUSE_CONT);
  --depth_;
  if (depth_ == 0) after_call();
}

int CurlLoop::on_socket(CURL*, curl_socket_t fd, int what, void* self_ptr, void* socket_data) {
  auto* self = static_cast<CurlLoop*>(self_ptr);
  auto* socket = static_cast<Socket*>(socket_data);
  if (what == CURL_POLL_REMOVE) {
    if (socket) {
      curl_multi_assign(self->multi_, fd, nullptr);
      // uv_close takes the fd out of epoll at once; libcurl may close (and reuse) the fd after.
      uv_close(reinterpret_cast<uv_handle_t*>(&socket->poll),
               [](uv_handle_t* handle) { delete static_cast<Socket*>(handle->data); });
    }
    return 0;
  }
  if (!socket) {
    socket = new Socket{{}, fd, self};
    if (uv_poll_init_socket(self->loop_, &socket->poll, fd) != 0) {
      delete socket;
      return -1;
    }
    socket->poll.data = socket;
    curl_multi_assign(self->multi_, fd, socket);
  }
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= UV_WRITABLE;
  uv_poll_start(&socket->poll, events, &CurlLoop::on_poll);
  return 0;
}

int CurlLoop::on_timer_request(CURLM*, long timeout_ms, void* self_ptr) {
  auto* self = static_cast<CurlLoop*>(self_ptr);
  if (timeout_ms < 0) {
    uv_timer_stop(&self->timer_);
  } else {
    // 0 means "as soon as possible": from the loop, not from inside libcurl's call.
    uv_timer_start(&self->timer_, &CurlLoop::on_timeout, static_cast<uint64_t>(timeout_ms), 0);
  }
  return 0;
}

void CurlLoop::on_poll(uv_poll_t* handle, int status, int events) {
  auto* socket = static_cast<Socket*>(handle->data);
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  socket->owner->act(socket->fd, flags);
}

void CurlLoop::on_timeout(uv_timer_t* handle) {
  static_cast<CurlLoop*>(handle->data)->act(CURL_SOCKET_TIMEOUT, 0);
}

void CurlLoop::act(curl_socket_t fd, int flags) {
  if (!multi_) return;
  int running = 0;
  ++depth_;
  curl_multi_socket_action(multi_, fd, flags, &running);
  --depth_;
  if (depth_ == 0) after_call();
}

void CurlLoop::after_call() {
  // Transfers removed from inside a callback leave the multi handle now; their easy handles are
  // still alive (owners are deleted on a later loop turn, never inside a callback).
  std::vector<CURL*> removals;
  removals.swap(deferred_removals_);
  for (CURL* easy : removals) curl_multi_remove_handle(multi_, easy);
  reap();
}

void CurlLoop::reap() {
  int pending = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_, &pending)) {
    if (message->msg != CURLMSG_DONE) continue;
    Transfer* transfer = nullptr;
    curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &transfer);
    CURLcode result = message->data.result;
    if (!transfer || transfer->loop_ != this) continue;  // removed meanwhile: no on_done
    // A pioneer that ended without a connection (the upstream is unreachable): the transfers it
    // held try on their own rather than one connect timeout after another.
    if (transfer == pioneer_ && !transfer->connected_) flooding_ = true;
    remove(*transfer);
    // The message is invalid once the handle is removed; everything needed was copied above.
    transfer->on_done(result);
  }
}

}  // namespace chatstream::llm
