#include "http/connection.hpp"

#include <strings.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstring>

#include "http/response.hpp"
#include "obs/metrics.hpp"

namespace chatstream::http {

namespace {
constexpr int kMaxIov = 16;
// Pipelined requests answered in one pass before the rest waits for the next loop turn, so one
// connection cannot starve the others.
constexpr int kMaxRequestsPerPass = 32;
// After a final response on a connection we close, how long we read and discard before closing, so
// the kernel does not reset the connection (and destroy our answer) because of unread input.
constexpr uint64_t kLingerMs = 2000;
// How long the last response of a closing connection may take to be written.
constexpr uint64_t kCloseDrainMs = 5000;
// Simdjson reads up to 64 bytes past the end of the JSON text.
constexpr size_t kJsonPadding = 64;

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}
Connection* connection_of(llhttp_t* parser) { return static_cast<Connection*>(parser->data); }
}  // namespace

struct Connection::PendingRequest {
  Request request;
  std::string header_field;
  std::string header_value;
  size_t header_bytes = 0;
  bool seen_content_length = false;
  bool seen_transfer_encoding = false;
  bool expect_continue = false;
};

Connection::~Connection() = default;

Connection::Connection(Host& host, bool is_unix)
    : host_(host), timer_(&Connection::on_timer, this), is_unix_(is_unix) {
  llhttp_init(&parser_, HTTP_REQUEST, &parser_settings());
  parser_.data = this;
}

const llhttp_settings_t& Connection::parser_settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &Connection::on_message_begin;
    s.on_url = &Connection::on_url;
    s.on_header_field = &Connection::on_header_field;
    s.on_header_value = &Connection::on_header_value;
    s.on_header_value_complete = &Connection::on_header_value_complete;
    s.on_headers_complete = &Connection::on_headers_complete;
    s.on_body = &Connection::on_body;
    s.on_message_complete = &Connection::on_message_complete;
    return s;
  }();
  return settings;
}

void Connection::init_handle(uv_loop_t* loop) {
  if (is_unix_) uv_pipe_init(loop, &handle_.pipe, 0);
  else uv_tcp_init(loop, &handle_.tcp);
  handle_.tcp.data = this;
}

int Connection::accept_from(uv_stream_t* listener) {
  init_handle(listener->loop);
  int rc = uv_accept(listener, stream());
  if (rc != 0) {
    close();
    return rc;
  }
  return start_reading();
}

int Connection::adopt(uv_loop_t* loop, uv_os_sock_t socket) {
  init_handle(loop);
  int rc = is_unix_ ? uv_pipe_open(&handle_.pipe, socket) : uv_tcp_open(&handle_.tcp, socket);
  if (rc != 0) {
    close();
    return rc;
  }
  return start_reading();
}

int Connection::start_reading() {
  // Events are small and latency matters more than packet count; we batch per loop turn ourselves.
  if (!is_unix_) uv_tcp_nodelay(&handle_.tcp, 1);
  // Our own output queue is the bounded buffer that merges tokens and detects slow readers; a kernel
  // buffer allowed to grow to megabytes would hide a client that stopped reading.
  if (int size = host_.limits().send_buffer; size > 0) {
    uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(&handle_), &size);
  }
  int rc = uv_read_start(stream(), &Connection::on_alloc, &Connection::on_read);
  if (rc != 0) {
    close();
    return rc;
  }
  reading_ = true;
  arm_timer(TimerKind::kRequest, host_.limits().header_timeout_ms);
  return 0;
}

// ---------------------------------------------------------------------------------------------------
// Reading and parsing

void Connection::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  *buf = static_cast<Connection*>(handle->data)->host_.read_buffer();
}

void Connection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Connection*>(stream->data);
  if (nread < 0) {
    // EOF or error: the client is gone (or done). A response in progress is abandoned.
    self->close();
    return;
  }
  if (nread == 0 || self->closing_) return;
  if (self->lingering_) return;  // discarding until EOF
  self->feed(buf->base, static_cast<size_t>(nread));
}

void Connection::feed(const char* data, size_t length) {
  if (busy_ || !input_.empty() || close_after_output_) {
    // A response is in progress (or input is already waiting): keep the bytes for later, bounded.
    size_t cap = host_.limits().max_header_bytes + host_.limits().max_body + 4096;
    input_.append(data, length);
    if (input_.size() > cap && reading_) {
      uv_read_stop(stream());
      reading_ = false;
    }
    if (!busy_ && !close_after_output_) process_buffered_input();
    return;
  }
  size_t consumed = parse(data, length);
  if (consumed < length && !closing_) input_.append(data + consumed, length - consumed);
}

void Connection::process_buffered_input() {
  resume_parsing_ = false;
  if (input_.empty() || closing_) return;
  size_t consumed = parse(input_.data(), input_.size());
  input_.erase(0, consumed);
  if (input_.capacity() > 16 * 1024 && input_.size() < 1024) input_.shrink_to_fit();
  if (!reading_ && !closing_ && !lingering_) {
    if (uv_read_start(stream(), &Connection::on_alloc, &Connection::on_read) == 0) reading_ = true;
  }
}

size_t Connection::parse(const char* data, size_t length) {
  size_t offset = 0;
  int requests = 0;
  while (offset < length && !busy_ && !closing_ && !close_after_output_) {
    if (requests == kMaxRequestsPerPass) {
      resume_parsing_ = true;
      request_flush();
      break;
    }
    llhttp_errno_t err = llhttp_execute(&parser_, data + offset, length - offset);
    if (err == HPE_OK) return length;
    if (err == HPE_PAUSED) {
      // on_message_complete paused the parser right after the request.
      offset = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      llhttp_resume(&parser_);
      ++requests;
      dispatch_request();
      continue;
    }
    if (pending_error_) {
      Errc errc = *pending_error_;
      reject(errc, errc == Errc::kHeadersTooLarge   ? "Request line and headers are too large"
                   : errc == Errc::kPayloadTooLarge ? "Request body is too large"
                                                    : "Content-Length and Transfer-Encoding must not both be present");
    } else if (err == HPE_UNEXPECTED_CONTENT_LENGTH) {
      reject(Errc::kBadRequest, "Content-Length and Transfer-Encoding must not both be present");
    } else {
      reject(Errc::kBadRequest, std::string("Malformed HTTP request: ") + llhttp_get_error_reason(&parser_));
    }
    return length;
  }
  return offset;
}

bool Connection::count_header_bytes(size_t length) {
  pending_->header_bytes += length;
  if (pending_->header_bytes > host_.limits().max_header_bytes) {
    pending_error_ = Errc::kHeadersTooLarge;
    return false;
  }
  return true;
}

int Connection::on_message_begin(llhttp_t* parser) {
  Connection* self = connection_of(parser);
  self->pending_ = std::make_unique<PendingRequest>();
  self->pending_error_.reset();
  if (!self->request_started_) {
    self->request_started_ = true;
    self->arm_timer(TimerKind::kRequest, self->host_.limits().header_timeout_ms);
  }
  return 0;
}

int Connection::on_url(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = connection_of(parser);
  if (!self->count_header_bytes(length)) return -1;
  self->pending_->request.path.append(at, length);
  return 0;
}

int Connection::on_header_field(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = connection_of(parser);
  if (!self->count_header_bytes(length)) return -1;
  self->pending_->header_field.append(at, length);
  return 0;
}

int Connection::on_header_value(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = connection_of(parser);
  if (!self->count_header_bytes(length)) return -1;
  // Only the values chatstream reads are kept.
  std::string_view field = self->pending_->header_field;
  if (equals_ignore_case(field, "content-type") || equals_ignore_case(field, "expect") ||
      equals_ignore_case(field, "x-chatstream-session-id") || equals_ignore_case(field, "authorization") ||
      equals_ignore_case(field, "last-event-id")) {
    self->pending_->header_value.append(at, length);
  }
  return 0;
}

int Connection::on_header_value_complete(llhttp_t* parser) {
  PendingRequest& pending = *connection_of(parser)->pending_;
  std::string_view field = pending.header_field;
  if (equals_ignore_case(field, "content-type")) {
    pending.request.content_type = pending.header_value;
  } else if (equals_ignore_case(field, "content-length")) {
    pending.seen_content_length = true;
  } else if (equals_ignore_case(field, "transfer-encoding")) {
    pending.seen_transfer_encoding = true;
  } else if (equals_ignore_case(field, "expect")) {
    pending.expect_continue = equals_ignore_case(pending.header_value, "100-continue");
  } else if (equals_ignore_case(field, "x-chatstream-session-id")) {
    pending.request.session_header = pending.header_value;
  } else if (equals_ignore_case(field, "authorization")) {
    pending.request.authorization = pending.header_value;
  } else if (equals_ignore_case(field, "last-event-id")) {
    pending.request.last_event_id = pending.header_value;
  }
  pending.header_field.clear();
  pending.header_value.clear();
  return 0;
}

int Connection::on_headers_complete(llhttp_t* parser) {
  Connection* self = connection_of(parser);
  PendingRequest& pending = *self->pending_;
  // Request smuggling guard: a message framed two ways is refused, whatever llhttp would pick.
  if (pending.seen_content_length && pending.seen_transfer_encoding) {
    self->pending_error_ = Errc::kBadRequest;
    return -1;
  }
  const Limits& limits = self->host_.limits();
  if (pending.seen_content_length && parser->content_length > limits.max_body) {
    self->pending_error_ = Errc::kPayloadTooLarge;
    return -1;
  }
  Request& request = pending.request;
  request.method = llhttp_method_name(static_cast<llhttp_method_t>(parser->method));
  request.http_major = parser->http_major;
  request.http_minor = parser->http_minor;
  if (size_t q = request.path.find('?'); q != std::string::npos) {
    request.query = request.path.substr(q + 1);
    request.path.resize(q);
  }
  if (pending.seen_content_length) request.body.reserve(parser->content_length + kJsonPadding);
  if (pending.expect_continue && request.http_minor >= 1) {
    self->output_.append("HTTP/1.1 100 Continue\r\n\r\n");
    self->request_flush();
  }
  return 0;
}

int Connection::on_body(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = connection_of(parser);
  Request& request = self->pending_->request;
  if (request.body.size() + length > self->host_.limits().max_body) {
    self->pending_error_ = Errc::kPayloadTooLarge;
    return -1;
  }
  if (request.body.capacity() < request.body.size() + length + kJsonPadding) {
    request.body.reserve(std::max(request.body.size() * 2, request.body.size() + length + kJsonPadding));
  }
  request.body.append(at, length);
  return 0;
}

int Connection::on_message_complete(llhttp_t* parser) {
  Connection* self = connection_of(parser);
  self->pending_->request.keep_alive = llhttp_should_keep_alive(parser) != 0;
  return HPE_PAUSED;  // parse() dispatches the request, outside of llhttp
}

void Connection::dispatch_request() {
  host_.wheel().cancel(timer_);
  timer_kind_ = TimerKind::kNone;
  request_started_ = false;
  busy_ = true;
  streaming_ = false;
  std::unique_ptr<PendingRequest> pending = std::move(pending_);
  Request& request = pending->request;
  keep_alive_ = request.keep_alive && !host_.draining();
  request.keep_alive = keep_alive_;
  http11_ = request.http_major > 1 || (request.http_major == 1 && request.http_minor >= 1);
  host_.dispatch(*this, request);
}

void Connection::reject(Errc errc, std::string_view message, std::string_view extra_headers) {
  // The parser may be in an error state: answer, then close once the answer is written.
  busy_ = true;
  keep_alive_ = false;
  respond_error(errc, message, extra_headers);
}

// ---------------------------------------------------------------------------------------------------
// Responses

void Connection::respond(int status, std::string_view content_type, std::string_view body,
                         std::string_view extra_headers) {
  if (closing_) return;
  assert(busy_ && !streaming_);  // exactly one answer to the request being served
  std::string head;
  head.reserve(160 + extra_headers.size());
  append_head(head, status, content_type, static_cast<int64_t>(body.size()), keep_alive_, extra_headers);
  output_.append(head);
  output_.append(body);
  obs::count_response(status);
  finish_response();
}

void Connection::respond_error(Errc errc, std::string_view message, std::string_view extra_headers,
                               std::string_view extra_fields) {
  const ErrcRow& row = errc_row(errc);
  std::string body = error_body(errc, message, extra_fields);
  if (row.retry_after.empty() || extra_headers.find("Retry-After:") != std::string_view::npos) {
    respond(row.http_status, "application/json", body, extra_headers);
    return;
  }
  std::string headers(extra_headers);
  headers += row.retry_after;
  respond(row.http_status, "application/json", body, headers);
}

void Connection::begin_stream(std::string_view content_type, std::string_view extra_headers) {
  if (closing_) return;
  assert(busy_ && !streaming_);  // one response per request
  streaming_ = true;
  // HTTP/1.0 has no chunked encoding: the body then ends when the connection closes.
  chunked_ = http11_;
  if (!chunked_) keep_alive_ = false;
  std::string head;
  std::string extra(extra_headers);
  if (chunked_) extra += "Transfer-Encoding: chunked\r\n";
  append_head(head, 200, content_type, -1, keep_alive_, extra);
  output_.append(head);
  obs::count_response(200);
  request_flush();
}

void Connection::write_body(std::string_view bytes) {
  if (closing_ || bytes.empty()) return;
  assert(streaming_);
  if (chunked_) {
    char size_line[24];
    int n = snprintf(size_line, sizeof size_line, "%zx\r\n", bytes.size());
    output_.append(std::string_view(size_line, static_cast<size_t>(n)));
    output_.append(bytes);
    output_.append("\r\n");
  } else {
    output_.append(bytes);
  }
  request_flush();
}

void Connection::end_stream() {
  if (closing_) return;
  assert(streaming_);
  if (chunked_) output_.append("0\r\n\r\n");
  finish_response();
}

void Connection::finish_response() {
  busy_ = false;
  streaming_ = false;
  producer_ = nullptr;
  if (!keep_alive_ || host_.draining()) {
    close_after_output_ = true;
    // A client that stops reading cannot keep the connection open forever.
    arm_timer(TimerKind::kLinger, kCloseDrainMs);
  } else {
    arm_timer(TimerKind::kIdle, host_.limits().keepalive_timeout_ms);
    if (!input_.empty()) resume_parsing_ = true;
  }
  request_flush();
}

void Connection::begin_drain() {
  if (closing_) return;
  if (!busy_ && !request_started_ && output_.empty()) {
    close();
    return;
  }
  keep_alive_ = false;  // the response in progress (if any) is the last one
  if (!busy_) close_after_output_ = true;
  request_flush();
}

// ---------------------------------------------------------------------------------------------------
// Writing

void Connection::request_flush() {
  if (!closing_ && !flush_node.linked()) host_.schedule_flush(*this);
}

void Connection::flush() {
  if (closing_) return;
  if (resume_parsing_ && !busy_) process_buffered_input();
  if (closing_) return;
  if (producer_) producer_->on_flush();
  if (closing_) return;
  write_out();
}

void Connection::write_out() {
  if (closing_ || write_in_flight_bytes_ > 0) return;
  if (output_.empty()) {
    after_output_drained();
    return;
  }
  uv_buf_t bufs[kMaxIov];
  size_t total = 0;
  int count = output_.gather(bufs, kMaxIov, &total);
  // Try the socket first; only what it does not take goes through a queued uv_write.
  int written = uv_try_write(stream(), bufs, static_cast<unsigned>(count));
  if (written > 0) {
    output_.consume(static_cast<size_t>(written));
    obs::add(obs::Counter::kBytesSent, static_cast<uint64_t>(written));
  } else if (written != UV_EAGAIN && written != UV_ENOSYS) {
    close();  // EPIPE, ECONNRESET: the client is gone
    return;
  }
  if (output_.empty()) {
    if (producer_) producer_->on_output_drained();
    if (!closing_) after_output_drained();
    return;
  }
  count = output_.gather(bufs, kMaxIov, &total);
  write_req_ = new uv_write_t;
  int rc = uv_write(write_req_, stream(), bufs, static_cast<unsigned>(count), &Connection::on_write);
  if (rc != 0) {
    delete write_req_;
    write_req_ = nullptr;
    close();
    return;
  }
  write_in_flight_bytes_ = total;
  if (written > 0 && producer_) producer_->on_output_drained();
}

void Connection::on_write(uv_write_t* req, int status) {
  auto* self = static_cast<Connection*>(req->handle->data);
  delete req;
  self->write_req_ = nullptr;
  size_t bytes = self->write_in_flight_bytes_;
  self->write_in_flight_bytes_ = 0;
  if (status < 0) {
    self->close();  // also UV_ECANCELED from our own close: close() is idempotent
    return;
  }
  self->output_.consume(bytes);
  obs::add(obs::Counter::kBytesSent, bytes);
  if (self->producer_) self->producer_->on_output_drained();
  if (self->closing_) return;
  // Whatever was queued meanwhile goes out now, in one writev.
  self->write_out();
}

void Connection::after_output_drained() {
  if (!close_after_output_ || busy_ || closing_ || lingering_) return;
  // Graceful close: send FIN, then read and discard until the client closes (or a short timeout).
  auto* req = new uv_shutdown_t;
  req->data = this;
  if (uv_shutdown(req, stream(), &Connection::on_shutdown) != 0) {
    delete req;
    close();
    return;
  }
  lingering_ = true;
  arm_timer(TimerKind::kLinger, kLingerMs);
  if (!reading_ && uv_read_start(stream(), &Connection::on_alloc, &Connection::on_read) == 0) reading_ = true;
}

void Connection::on_shutdown(uv_shutdown_t* req, int status) {
  auto* self = static_cast<Connection*>(req->data);
  delete req;
  if (status < 0 && status != UV_ECANCELED) self->close();
}

// ---------------------------------------------------------------------------------------------------
// Timers and closing

void Connection::arm_timer(TimerKind kind, uint64_t delay_ms) {
  timer_kind_ = kind;
  host_.wheel().schedule_in(timer_, delay_ms);
}

void Connection::on_timer(void* opaque) {
  auto* self = static_cast<Connection*>(opaque);
  TimerKind kind = self->timer_kind_;
  self->timer_kind_ = TimerKind::kNone;
  if (kind == TimerKind::kRequest && self->request_started_ && !self->busy_) {
    // Slowloris: a request that does not arrive in time gets 408, then the connection closes.
    self->reject(Errc::kRequestTimeout, "The request did not arrive in time");
    return;
  }
  self->close();  // idle keep-alive, a silent new connection, or the end of lingering
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  host_.wheel().cancel(timer_);
  flush_node.unlink();
  if (ResponseProducer* producer = producer_) {
    producer_ = nullptr;
    producer->on_connection_lost();
  }
  host_.on_connection_closed(*this);
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_), &Connection::on_close);
}

void Connection::on_close(uv_handle_t* handle) { delete static_cast<Connection*>(handle->data); }

}  // namespace chatstream::http
