#include "connection.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/http_text.hpp"
#include "json_text.hpp"
#include "server.hpp"

namespace chatstream::fakellm {
namespace {

// Requests parsed per pass over buffered input, so a pipelining client cannot starve the loop.
constexpr int kMaxRequestsPerPass = 16;
// Bytes kept for the next requests while one is answered; beyond it reading pauses.
constexpr size_t kMaxBufferedInput = Connection::kMaxHeaderBytes + Connection::kMaxBody + 4096;
// A string that held a burst (a huge chunk) gives its memory back once empty.
constexpr size_t kKeepCapacity = 64 * 1024;

Connection* connection_of(llhttp_t* parser) {
  return static_cast<Connection*>(parser->data);
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    default:
      return "Unknown";
  }
}

void release_if_large(std::string& bytes) {
  if (bytes.empty() && bytes.capacity() > kKeepCapacity) std::string().swap(bytes);
}

}  // namespace

Connection::Connection(Server& server) : server_(server), paused_timer_(&Connection::on_paused_timer, this) {
  llhttp_init(&parser_, HTTP_REQUEST, &parser_settings());
  parser_.data = this;
}

Connection::~Connection() = default;

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

void Connection::accept(uv_stream_t* listener) {
  uv_tcp_init(server_.loop(), &tcp_);
  tcp_.data = this;
  if (uv_accept(listener, stream()) != 0) {
    close(false);
    return;
  }
  uv_tcp_nodelay(&tcp_, 1);  // a token goes out when it is made, not when Nagle allows
  if (uint32_t size = server_.options().send_buffer; size > 0) {
    int value = static_cast<int>(size);
    uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(&tcp_), &value);
  }
  if (uv_read_start(stream(), &Connection::on_alloc, &Connection::on_read) != 0) {
    close(false);
    return;
  }
  reading_ = true;
}

// ---------------------------------------------------------------------------------------------------
// Reading and parsing

void Connection::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buffer) {
  auto* self = static_cast<Connection*>(handle->data);
  std::string& shared = self->server_.read_buffer();
  *buffer = uv_buf_init(shared.data(), static_cast<unsigned>(shared.size()));
}

void Connection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buffer) {
  auto* self = static_cast<Connection*>(stream->data);
  if (nread < 0) {
    self->close(true);  // EOF or reset: the client is gone
    return;
  }
  if (nread == 0 || self->closing_) return;
  self->feed(buffer->base, static_cast<size_t>(nread));
}

void Connection::feed(const char* data, size_t length) {
  if (busy_ || !input_.empty() || close_after_output_) {
    // A response is in progress: keep the bytes for later, bounded. Reading goes on below the bound,
    // so a client that closes mid-stream is still noticed.
    if (close_after_output_) return;
    input_.append(data, length);
    if (input_.size() > kMaxBufferedInput && reading_) {
      uv_read_stop(stream());
      reading_ = false;
    }
    if (!busy_) {
      resume_parsing_ = true;
      request_flush();
    }
    return;
  }
  size_t consumed = parse(data, length);
  if (consumed < length && !closing_ && !close_after_output_)
    input_.append(data + consumed, length - consumed);
}

void Connection::process_buffered_input() {
  resume_parsing_ = false;
  if (input_.empty() || closing_ || close_after_output_) return;
  size_t consumed = parse(input_.data(), input_.size());
  input_.erase(0, consumed);
  release_if_large(input_);
  if (!reading_ && !closing_ && input_.size() <= kMaxBufferedInput) {
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
    llhttp_errno_t error = llhttp_execute(&parser_, data + offset, length - offset);
    if (error == HPE_OK) return length;
    if (error == HPE_PAUSED) {
      // on_message_complete paused the parser right after the request.
      offset = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      llhttp_resume(&parser_);
      ++requests;
      dispatch();
      continue;
    }
    if (parse_error_status_ == 413) {
      reject(413, "The request body is too large.");
    } else if (parse_error_status_ == 431) {
      reject(431, "The request line and headers are too large.");
    } else {
      reject(400, std::string("Malformed HTTP request: ") + llhttp_get_error_reason(&parser_));
    }
    return length;
  }
  return offset;
}

int Connection::on_message_begin(llhttp_t* parser) {
  Connection* self = connection_of(parser);
  self->request_ = Request{};
  self->headers_.reset();
  self->parse_error_status_ = 0;
  self->expect_continue_ = false;
  return 0;
}

int Connection::refuse_large_head() {
  parse_error_status_ = 431;
  return -1;
}

int Connection::on_url(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = connection_of(parser);
  if (!self->headers_.count(length)) return self->refuse_large_head();
  self->request_.path.append(at, length);
  return 0;
}

int Connection::on_header_field(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = connection_of(parser);
  return self->headers_.on_name(std::string_view(at, length)) ? 0 : self->refuse_large_head();
}

int Connection::on_header_value(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = connection_of(parser);
  return self->headers_.on_value(std::string_view(at, length)) ? 0 : self->refuse_large_head();
}

int Connection::on_header_value_complete(llhttp_t* parser) {
  Connection* self = connection_of(parser);
  Request& request = self->request_;
  self->headers_.complete([&](std::string_view name, std::string_view value) {
    if (bench::equals_ignore_case(name, "authorization")) {
      request.authorization = std::string(value);
    } else if (bench::equals_ignore_case(name, "expect")) {
      self->expect_continue_ = bench::equals_ignore_case(value, "100-continue");
    } else if (bench::equals_ignore_case(name, "x-fake-fault")) {
      request.fake_fault = value;
    } else if (bench::equals_ignore_case(name, "x-fake-key")) {
      request.fake_key = value;
    } else if (bench::equals_ignore_case(name, "x-fake-fail-times")) {
      request.fake_fail_times = value;
    } else if (bench::equals_ignore_case(name, "x-fake-fault-after")) {
      request.fake_fault_after = value;
    } else if (bench::equals_ignore_case(name, "x-fake-tokens")) {
      request.fake_tokens = value;
    } else if (bench::equals_ignore_case(name, "x-fake-rate")) {
      request.fake_rate = value;
    }
  });
  return 0;
}

int Connection::on_headers_complete(llhttp_t* parser) {
  Connection* self = connection_of(parser);
  Request& request = self->request_;
  request.method = llhttp_method_name(static_cast<llhttp_method_t>(parser->method));
  if (size_t query = request.path.find('?'); query != std::string::npos) request.path.resize(query);
  self->request_http10_ = parser->http_major == 1 && parser->http_minor == 0;
  if (parser->content_length > kMaxBody && (parser->flags & F_CONTENT_LENGTH) != 0) {
    self->parse_error_status_ = 413;
    return -1;
  }
  if (self->expect_continue_ && !self->request_http10_) {
    // curl sends Expect: 100-continue with larger bodies and waits for this before sending them.
    self->pending_ += "HTTP/1.1 100 Continue\r\n\r\n";
    self->request_flush();
  }
  return 0;
}

int Connection::on_body(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = connection_of(parser);
  std::string& body = self->request_.body;
  if (body.size() + length > kMaxBody) {
    self->parse_error_status_ = 413;
    return -1;
  }
  body.append(at, length);
  return 0;
}

int Connection::on_message_complete(llhttp_t* parser) {
  Connection* self = connection_of(parser);
  self->request_keep_alive_ = llhttp_should_keep_alive(parser) != 0;
  return HPE_PAUSED;  // parse() dispatches the request, outside of llhttp
}

void Connection::dispatch() {
  busy_ = true;
  keep_alive_ = request_keep_alive_ && !server_.stopping();
  producer_.reset();  // the previous answer's producer, ended: never destroyed inside its own callback
  server_.dispatch(*this, request_);
}

void Connection::reject(int status, std::string_view message) {
  busy_ = true;
  keep_alive_ = false;  // the parser's state is unknown after an error: this connection is done
  server_.reject(*this, status, message);
}

// ---------------------------------------------------------------------------------------------------
// Responses

void Connection::append_head(int status, std::string_view content_type, std::string_view extra_headers,
                             std::optional<size_t> content_length) {
  char line[64];
  int n = std::snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
  pending_.append(line, static_cast<size_t>(n));
  pending_ += "Content-Type: ";
  pending_ += content_type;
  pending_ += "\r\n";
  if (content_length) {
    pending_ += "Content-Length: ";
    append_uint(pending_, *content_length);
    pending_ += "\r\n";
  } else if (chunked_) {
    pending_ += "Transfer-Encoding: chunked\r\n";
  }
  pending_ += keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  pending_ += extra_headers;
  pending_ += "\r\n";
}

void Connection::respond(int status, std::string_view content_type, std::string_view body,
                         std::string_view extra_headers) {
  if (closing_) return;
  chunked_ = false;
  append_head(status, content_type, extra_headers, body.size());
  pending_ += body;
  finish_response();
}

void Connection::begin_stream(std::string_view extra_headers) {
  if (closing_) return;
  chunked_ = !request_http10_;
  if (request_http10_) keep_alive_ = false;  // the body ends when the connection does
  std::string headers = "Cache-Control: no-cache\r\n";
  headers += extra_headers;
  append_head(200, "text/event-stream; charset=utf-8", headers, std::nullopt);
  after_queue_change();
}

void Connection::write_body(std::string_view bytes) {
  if (closing_ || bytes.empty()) return;
  if (chunked_) {
    char size_line[24];
    int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", bytes.size());
    pending_.append(size_line, static_cast<size_t>(n));
    pending_ += bytes;
    pending_ += "\r\n";
  } else {
    pending_ += bytes;
  }
  after_queue_change();
}

void Connection::end_stream() {
  if (closing_) return;
  if (chunked_) pending_ += "0\r\n\r\n";
  finish_response();
}

void Connection::finish_response() {
  busy_ = false;
  if (!keep_alive_) {
    close_after_output_ = true;
  } else if (!input_.empty()) {
    resume_parsing_ = true;
  }
  after_queue_change();
}

void Connection::close_after_output() {
  if (closing_) return;
  close_after_output_ = true;
  request_flush();
}

// ---------------------------------------------------------------------------------------------------
// Writing

void Connection::request_flush() {
  if (!closing_) server_.schedule_flush(*this);
}

void Connection::flush() {
  if (closing_) return;
  if (resume_parsing_ && !busy_) process_buffered_input();
  if (closing_) return;
  write_out();
}

void Connection::write_out() {
  if (closing_ || write_in_flight_) return;
  if (pending_.empty()) {
    release_if_large(pending_);
    if (close_after_output_) close(false);
    return;
  }
  uv_buf_t buffer = uv_buf_init(pending_.data(), static_cast<unsigned>(pending_.size()));
  int written = uv_try_write(stream(), &buffer, 1);
  if (written > 0) bytes_submitted_ += static_cast<uint64_t>(written);
  if (written == static_cast<int>(pending_.size())) {
    pending_.clear();
    after_queue_change();
    if (close_after_output_) {
      close(false);
    } else if (producer_) {
      producer_->on_output_drained();
    }
    return;
  }
  if (written < 0 && written != UV_EAGAIN) {
    close(true);  // EPIPE, ECONNRESET: the client is gone
    return;
  }
  // The kernel took part (or nothing): the rest goes through one uv_write while new bytes gather
  // in pending_.
  size_t offset = written > 0 ? static_cast<size_t>(written) : 0;
  std::swap(pending_, writing_);
  pending_.clear();
  buffer = uv_buf_init(writing_.data() + offset, static_cast<unsigned>(writing_.size() - offset));
  bytes_submitted_ += buffer.len;
  write_request_.data = this;
  if (int rc = uv_write(&write_request_, stream(), &buffer, 1, &Connection::on_write); rc != 0) {
    writing_.clear();
    close(true);
    return;
  }
  write_in_flight_ = true;
  after_queue_change();
  if (producer_ && queued() <= kHighWater) producer_->on_output_drained();
}

void Connection::on_write(uv_write_t* request, int status) {
  auto* self = static_cast<Connection*>(request->data);
  self->write_in_flight_ = false;
  self->writing_.clear();
  release_if_large(self->writing_);
  if (status == UV_ECANCELED || self->closing_) return;  // closing; the close callback follows
  if (status < 0) {
    self->close(true);
    return;
  }
  self->after_queue_change();
  if (self->producer_ && self->queued() <= kHighWater) self->producer_->on_output_drained();
}

void Connection::after_queue_change() {
  if (closing_) return;
  request_flush();
  // The paused-reader detector: one count per stretch above the mark without progress.
  if (queued() > kPausedMark) {
    if (!paused_timer_.scheduled() && !paused_counted_) {
      bytes_taken_ = bytes_accepted();
      server_.timers().schedule(paused_timer_, TimerHeap::now_us() + kPausedAfterUs);
    }
  } else {
    server_.timers().cancel(paused_timer_);
    paused_counted_ = false;
  }
}

void Connection::on_paused_timer(void* self_pointer) {
  auto* self = static_cast<Connection*>(self_pointer);
  if (self->queued() <= kPausedMark) return;
  uint64_t accepted = self->bytes_accepted();
  if (accepted != self->bytes_taken_) {
    // The client is reading, only slower than we produce: look again later.
    self->bytes_taken_ = accepted;
    self->server_.timers().schedule(self->paused_timer_, TimerHeap::now_us() + kPausedAfterUs);
    return;
  }
  ++self->server_.stats().paused_detected;
  self->paused_counted_ = true;
}

// ---------------------------------------------------------------------------------------------------
// Closing

void Connection::close(bool by_client) {
  if (closing_) return;
  closing_ = true;
  if (by_client && (busy_ || queued() > 0)) ++server_.stats().client_closed_early;
  server_.timers().cancel(paused_timer_);
  if (producer_) producer_->on_connection_closed();
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &Connection::on_close);
}

void Connection::on_close(uv_handle_t* handle) {
  auto* self = static_cast<Connection*>(handle->data);
  self->server_.forget(*self);
  delete self;
}

}  // namespace chatstream::fakellm
