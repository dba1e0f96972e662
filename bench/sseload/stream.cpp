#include "stream.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string>

#include "common/clock.hpp"
#include "requests.hpp"

namespace chatstream::bench {
namespace {

// A token counts as on time up to this long after its slot in the expected rate.
constexpr double kOnTimeSlackSeconds = 0.100;
// --max-token-event-rate allows two events beyond rate x span: the first token may go out at once
// rather than on a flush tick, and the text merged before `done` is flushed with it, off the tick.
constexpr double kRateSlackEvents = 2;

uint64_t fnv1a(std::string_view text) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

struct PendingWrite {
  uv_write_t request;
  Stream* stream;
};

}  // namespace

void Stream::start() {
  reset_for_request();
  ++context_.totals.awaiting_first_event;
  connect();
}

void Stream::resume() {
  assert(cut_ && state_ == State::kIdle && events_ > 0);
  http_.reset();
  sse_.reset();
  // The pattern, the seq count and the run id carry on from the first part.
  resumed_ = awaiting_replay_ = true;
  last_token_us_ = 0;  // no token gap across the cut
  connection_reusable_ = false;
  ++context_.totals.resumes_sent;
  build_resume_request(context_.options, run_id_, events_ - 1, resume_request_);
  connect();
}

void Stream::connect() {
  state_ = State::kConnecting;
  started_ms_ = uv_now(context_.loop);
  last_activity_ms_ = started_ms_;

  // uv_pipe_init and uv_tcp_init (AF_UNSPEC) cannot fail: they only fill in the handle. The socket is
  // created by connect (or open_tcp), whose errors close the handle through fail().
  if (!context_.options.unix_path.empty()) {
    uv_pipe_init(context_.loop, &socket_.pipe, 0);
    socket_.pipe.data = this;
    connect_request_.data = this;
    uv_pipe_connect(&connect_request_, &socket_.pipe, context_.options.unix_path.c_str(), on_connect);
    return;
  }
  uv_tcp_init(context_.loop, &socket_.tcp);
  socket_.tcp.data = this;
  if (int rc = open_tcp(); rc != 0) fail("connect", rc);
}

// With --sources K > 1 the socket is created here, bound to 127.0.0.k with IP_BIND_ADDRESS_NO_PORT
// (the port is then chosen at connect time per destination, so each source address has its own
// ~28k ephemeral ports) and handed to libuv.
int Stream::open_tcp() {
  const auto* server = reinterpret_cast<const sockaddr*>(&context_.server_address);
  connect_request_.data = this;
  if (context_.options.sources > 1) {
    if (server->sa_family != AF_INET) return UV_EAFNOSUPPORT;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int on = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
    sockaddr_in source{};
    source.sin_family = AF_INET;
    uint32_t host_part = 1 + context_.next_source++ % context_.options.sources;
    source.sin_addr.s_addr = htonl((127u << 24) | host_part);
    if (bind(fd, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) {
      int error = -errno;
      ::close(fd);
      return error;
    }
    if (int rc = uv_tcp_open(&socket_.tcp, fd); rc != 0) {
      ::close(fd);
      return rc;
    }
  }
  return uv_tcp_connect(&connect_request_, &socket_.tcp, server, on_connect);
}

void Stream::reset_for_request() {
  http_.reset();
  sse_.reset();
  pattern_.reset();
  request_sent_us_ = first_token_us_ = last_token_us_ = 0;
  run_id_hash_ = 0;
  events_ = token_events_ = tokens_ = 0;
  outcome_ = Outcome::kPending;
  order_error_ = false;
  connection_reusable_ = false;
  run_id_.clear();
  cut_ready_ = cut_ = resumed_ = awaiting_replay_ = false;
}

void Stream::on_connect(uv_connect_t* request, int status) {
  auto* self = static_cast<Stream*>(request->data);
  if (status == UV_ECANCELED) return;  // the handle is closing; its close callback follows
  if (status < 0) {
    self->fail("connect", status);
    return;
  }
  if (self->context_.options.unix_path.empty()) uv_tcp_nodelay(&self->socket_.tcp, 1);
  if (int rc = uv_read_start(self->handle(), on_alloc, on_read); rc != 0) {
    self->fail("read", rc);
    return;
  }
  self->send_request();
}

void Stream::send_request() {
  state_ = State::kAwaitingHead;
  last_activity_ms_ = uv_now(context_.loop);
  request_sent_us_ = now_micros();
  const std::string& request = resumed_ ? resume_request_ : context_.request;
  uv_buf_t buffer = uv_buf_init(const_cast<char*>(request.data()), static_cast<unsigned>(request.size()));
  int written = uv_try_write(handle(), &buffer, 1);
  if (written == static_cast<int>(request.size())) return;
  if (written < 0 && written != UV_EAGAIN) {
    fail("write", written);
    return;
  }
  // Rare: the socket took part of the request. The rest is written from the request bytes (shared,
  // or the slot's resume request, untouched until the slot's next resume), so only the libuv request
  // is allocated.
  size_t offset = written > 0 ? static_cast<size_t>(written) : 0;
  buffer =
      uv_buf_init(const_cast<char*>(request.data()) + offset, static_cast<unsigned>(request.size() - offset));
  auto* pending = new PendingWrite{{}, this};
  pending->request.data = pending;
  if (int rc = uv_write(&pending->request, handle(), &buffer, 1, on_write); rc != 0) {
    delete pending;
    fail("write", rc);
  }
}

void Stream::on_write(uv_write_t* request, int status) {
  auto* pending = static_cast<PendingWrite*>(request->data);
  Stream* self = pending->stream;
  delete pending;
  // ECANCELED: the handle is closing (libuv cancels writes before the close callback runs).
  if (status < 0 && status != UV_ECANCELED) self->fail("write", status);
}

void Stream::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buffer) {
  auto* self = static_cast<Stream*>(handle->data);
  std::vector<char>& shared = self->context_.read_buffer;
  *buffer = uv_buf_init(shared.data(), static_cast<unsigned>(shared.size()));
}

void Stream::on_read(uv_stream_t* handle, ssize_t nread, const uv_buf_t* buffer) {
  auto* self = static_cast<Stream*>(handle->data);
  if (self->state_ == State::kClosing) return;
  if (nread > 0) {
    self->on_bytes(std::string_view(buffer->base, static_cast<size_t>(nread)));
    return;
  }
  if (nread == 0) return;  // EAGAIN: nothing read
  if (nread == UV_EOF) {
    if (self->http_.on_eof() == HttpResponseParser::Status::kBodyComplete) {
      // A close-delimited (HTTP/1.0) body ended: a stream without a terminal event ended early.
      if (self->outcome_ == Outcome::kPending) self->settle(Outcome::kFailed, "closed_early");
      self->close();
      return;
    }
    self->fail("closed_early");
    return;
  }
  self->fail("read", static_cast<int>(nread));
}

void Stream::on_bytes(std::string_view bytes) {
  context_.totals.bytes += bytes.size();
  last_activity_ms_ = uv_now(context_.loop);
  context_.now_us = now_micros();
  switch (http_.feed(bytes, *this)) {
    case HttpResponseParser::Status::kNeedMore:
    case HttpResponseParser::Status::kStopped:
      break;
    case HttpResponseParser::Status::kBodyComplete:
      on_body_complete();
      break;
    case HttpResponseParser::Status::kMalformed:
      fail(http_.head_complete() ? "bad_chunking" : "bad_response_head");
      break;
  }
}

void Stream::on_body_complete() {
  if (outcome_ == Outcome::kPending) settle(Outcome::kFailed, "closed_early");
  // Keep-alive: the next stream goes out on this connection instead of a new one.
  if (context_.options.keep_alive && connection_reusable_ && state_ != State::kClosing &&
      context_.owner.claim_stream()) {
    reset_for_request();
    ++context_.totals.awaiting_first_event;
    started_ms_ = uv_now(context_.loop);  // --timeout counts from here: there is no connect
    send_request();
    return;
  }
  close();
}

bool Stream::on_response_head(const ResponseHead& head) {
  if (head.status != 200) {
    fail("http_" + std::to_string(head.status));
    return false;
  }
  if (!head.event_stream) {
    fail("content_type");
    return false;
  }
  ++(resumed_ ? context_.totals.resumes_established : context_.totals.streams_established);
  connection_reusable_ = head.keep_alive;
  state_ = State::kStreaming;
  return true;
}

bool Stream::on_body(std::string_view bytes) {
  return sse_.feed(bytes, *this) && state_ != State::kClosing;
}

void Stream::on_comment() {
  ++context_.totals.heartbeats;
}

bool Stream::on_event(const SseEvent& event) {
  Totals& totals = context_.totals;
  ++totals.events;
  bool id_ok = check_id(event);
  if (!id_ok && resumed_) ++totals.resume_id_errors;
  if (awaiting_replay_) {
    awaiting_replay_ = false;
    if (!id_ok) ++totals.resume_seq_mismatches;
    totals.resume_first_event_us.record(context_.now_us - request_sent_us_);
  }
  if (events_++ == 0) {
    totals.first_event_us.record(context_.now_us - request_sent_us_);
    --totals.awaiting_first_event;
    context_.owner.on_first_event(*this);
  }
  if (outcome_ != Outcome::kPending) return true;  // after the terminal event: counted, not judged

  switch (event.type) {
    case EventType::kMeta: {
      std::string_view run_id;
      if (!parse_field(event.data, "run_id", run_id)) {
        ++totals.data_errors;
      } else if (run_id_hash_ != 0 && fnv1a(run_id) != run_id_hash_) {
        ++totals.id_errors;
      }
      break;
    }
    case EventType::kToken:
      on_token(event.data);
      break;
    case EventType::kDone:
      on_done(event.data);
      break;
    case EventType::kError: {
      std::string_view code;
      if (!parse_field(event.data, "code", code)) code = "unknown";
      settle(Outcome::kFailed, "error:" + std::string(code));
      state_ = State::kEnded;
      break;
    }
    case EventType::kCancelled:
      settle(Outcome::kFailed, "cancelled");
      state_ = State::kEnded;
      break;
    case EventType::kGenerationStart:
    case EventType::kOther:
      break;
  }
  return state_ != State::kClosing;
}

// ids are "<run_id>:<seq>", seq 0 on the first event and +1 on each next one (across a cut: a
// resume must go on with the seq after the last one read); the run id is kept as a hash so a stream
// holds 8 bytes instead of a copy of it, and as text only when it will be resumed.
bool Stream::check_id(const SseEvent& event) {
  size_t colon = event.id.rfind(':');
  if (!event.has_id || colon == std::string_view::npos || colon == 0) {
    ++context_.totals.id_errors;
    return false;
  }
  uint64_t run_hash = fnv1a(event.id.substr(0, colon));
  if (events_ == 0) {
    run_id_hash_ = run_hash;
    if (context_.options.cut_after_tokens > 0) run_id_.assign(event.id.substr(0, colon));
  }
  uint64_t seq = 0;
  const char* digits = event.id.data() + colon + 1;
  const char* end = event.id.data() + event.id.size();
  auto [parsed_end, error] = std::from_chars(digits, end, seq);
  if (error != std::errc{} || parsed_end != end || digits == end || seq != events_ ||
      run_hash != run_id_hash_) {
    ++context_.totals.id_errors;
    return false;
  }
  return true;
}

void Stream::on_token(std::string_view data) {
  Totals& totals = context_.totals;
  const Options& options = context_.options;
  uint64_t now = context_.now_us;
  ++totals.token_events;
  if (token_events_++ == 0) {
    first_token_us_ = now;
    totals.first_token_us.record(now - request_sent_us_);
  } else if (last_token_us_ != 0) {
    totals.gap_us.record(now - last_token_us_);
  }
  last_token_us_ = now;

  std::string_view content;
  if (!parse_field(data, "content", content)) ++totals.data_errors;
  uint32_t tokens_before = tokens_;
  // While the text follows the scripted pattern a merged event counts all its words; after it
  // leaves the pattern (a real provider, or an order error) each event counts as one token.
  if (pattern_.matches() && pattern_.feed(content)) {
    tokens_ = pattern_.words();
  } else {
    if (options.check_order) order_error_ = true;
    ++tokens_;
  }
  totals.tokens += tokens_ - tokens_before;

  // Replayed tokens are late by design: only a stream's first part is judged on time.
  if (options.expect_rate > 0 && !resumed_ && tokens_ > tokens_before) {
    // Token i is on time if now <= first_token + i/R + slack, i.e. i >= (now - first - slack) * R.
    double late_s = static_cast<double>(now - first_token_us_) / 1e6 - kOnTimeSlackSeconds;
    double first_on_time = late_s <= 0 ? 0 : std::ceil(late_s * options.expect_rate);
    auto from =
        std::max<uint64_t>(tokens_before, static_cast<uint64_t>(std::min<double>(first_on_time, tokens_)));
    totals.tokens_on_time += tokens_ - from;
    totals.tokens_timed += tokens_ - tokens_before;
  }
  if (!cut_ready_ && options.cut_after_tokens > 0 && tokens_ >= options.cut_after_tokens) {
    cut_ready_ = true;
    context_.owner.on_cut_ready(*this);
  }
}

void Stream::on_done(std::string_view data) {
  Totals& totals = context_.totals;
  const Options& options = context_.options;
  if (options.check_order) {
    // No lost token: the words received must be exactly the provider's token count.
    uint64_t provider_tokens = 0;
    if (!parse_field(data, "tokens", provider_tokens)) {
      ++totals.data_errors;
    } else if (!pattern_.matches() || !pattern_.at_word_boundary() || pattern_.words() != provider_tokens) {
      order_error_ = true;
    }
  }
  if (options.max_token_event_rate > 0 && token_events_ >= 2) {
    double span_s = static_cast<double>(last_token_us_ - first_token_us_) / 1e6;
    ++totals.rate_checked;
    if (token_events_ <= options.max_token_event_rate * span_s + kRateSlackEvents) ++totals.rate_held;
    if (span_s > 0)
      totals.rate_max_observed = std::max(totals.rate_max_observed, (token_events_ - 1) / span_s);
  }
  settle(Outcome::kCompleted);
  state_ = State::kEnded;
}

bool Stream::parse_json(std::string_view data, simdjson::ondemand::document& document) {
  std::vector<char>& scratch = context_.json_scratch;
  if (scratch.size() < data.size() + simdjson::SIMDJSON_PADDING) {
    scratch.resize(data.size() + simdjson::SIMDJSON_PADDING);
  }
  std::memcpy(scratch.data(), data.data(), data.size());
  return !context_.json.iterate(scratch.data(), data.size(), scratch.size()).get(document);
}

bool Stream::parse_field(std::string_view data, std::string_view field, std::string_view& out) {
  simdjson::ondemand::document document;
  // The unescaped string lives in the parser's buffer until the next iterate().
  return parse_json(data, document) && !document[field].get_string().get(out);
}

bool Stream::parse_field(std::string_view data, std::string_view field, uint64_t& out) {
  simdjson::ondemand::document document;
  return parse_json(data, document) && !document[field].get_uint64().get(out);
}

void Stream::settle(Outcome outcome, std::string_view reason) {
  if (outcome_ != Outcome::kPending) return;
  outcome_ = outcome;
  Totals& totals = context_.totals;
  switch (outcome) {
    case Outcome::kCompleted:
      ++totals.streams_completed;
      if (resumed_) ++totals.resumes_completed;
      break;
    case Outcome::kFailed:
      ++totals.streams_failed;
      ++totals.failures_by_reason[std::string(reason)];
      break;
    case Outcome::kHeld:
      ++totals.streams_held;
      break;
    case Outcome::kCut:  // counted in streams_cut
    case Outcome::kPending:
      break;
  }
  if (order_error_) ++totals.order_errors;
}

void Stream::fail(std::string_view reason, int uv_error) {
  if (uv_error != 0) {
    settle(Outcome::kFailed, std::string(reason) + ":" + uv_err_name(uv_error));
  } else {
    settle(Outcome::kFailed, reason);
  }
  close();
}

bool Stream::cut() {
  if (state_ != State::kStreaming || outcome_ != Outcome::kPending || events_ == 0) return false;
  cut_ = true;
  ++context_.totals.streams_cut;
  if (!context_.options.resume) settle(Outcome::kCut);
  close();
  return true;
}

void Stream::stop(bool hold_mode) {
  if (state_ == State::kClosing) return;
  if (state_ == State::kIdle) {
    if (cut_ && outcome_ == Outcome::kPending) settle(Outcome::kFailed, "stopped");  // never resumed
    return;
  }
  if (hold_mode && events_ > 0) {
    settle(Outcome::kHeld);
  } else {
    settle(Outcome::kFailed, "stopped");
  }
  close();
}

void Stream::check_deadlines(uint64_t now_ms) {
  if (state_ == State::kIdle || state_ == State::kClosing) return;
  const Options& options = context_.options;
  if (options.timeout_s > 0 && static_cast<double>(now_ms - started_ms_) > options.timeout_s * 1000) {
    fail("timeout");
  } else if (options.idle_timeout_s > 0 &&
             static_cast<double>(now_ms - last_activity_ms_) > options.idle_timeout_s * 1000) {
    fail("idle_timeout");
  }
}

// The one close path. Settled or not, every way out of a stream ends here.
void Stream::close() {
  if (state_ == State::kClosing || state_ == State::kIdle) return;
  if (events_ == 0) --context_.totals.awaiting_first_event;
  state_ = State::kClosing;
  uv_close(reinterpret_cast<uv_handle_t*>(&socket_), on_close);
}

void Stream::on_close(uv_handle_t* handle) {
  auto* self = static_cast<Stream*>(handle->data);
  self->state_ = State::kIdle;
  self->socket_ = {};
  self->context_.owner.on_stream_closed(*self);
}

}  // namespace chatstream::bench
