#include "sse/stream.hpp"

#include "obs/metrics.hpp"
#include "sse/framing.hpp"
#include "sse/openai_framing.hpp"

#include <ctime>

namespace chatstream::sse {

namespace {
// Events are formatted here, then copied once into the connection's output queue (chunk-framed).
std::string& scratch() {
  static std::string buffer;
  buffer.clear();
  return buffer;
}
}  // namespace

Stream::Stream(http::Connection& connection, TimerWheel& wheel, const StreamSettings& settings,
               StreamObserver& observer, Framing framing, EventLog* log)
    : connection_(&connection),
      wheel_(wheel),
      settings_(settings),
      observer_(observer),
      framing_(framing),
      heartbeat_(&Stream::on_heartbeat, this),
      flush_window_(&Stream::on_flush_window, this),
      grace_(&Stream::on_grace_expired, this),
      log_(framing == Framing::kChatstream ? log : nullptr) {
  // Attached from the start, so a client that leaves before the stream opens (a run waiting for its
  // conversation to be free) is noticed all the same.
  connection.attach(this);
}

Stream::~Stream() { abandon(); }

void Stream::open(std::string_view run_id, std::string_view meta_fields, std::string_view extra_headers) {
  run_id_ = run_id;
  if (log_) log_->append("meta", meta_fields);
  if (!connection_) {  // the client left before the stream opened
    ++seq_;
    return;
  }
  std::string headers(kStreamHeaders);
  headers += extra_headers;
  connection_->begin_stream(kContentType, headers);
  std::string& out = scratch();
  if (framing_ == Framing::kOpenAI) {
    openai_id_ = "chatcmpl-";
    openai_id_ += run_id;
    created_ = static_cast<int64_t>(time(nullptr));
    append_openai_role_chunk(out, {openai_id_, "chatstream", created_});
    ++seq_;
  } else {
    append_retry(out, settings_.retry_ms);
    append_event(out, run_id_, seq_++, "meta", meta_fields);
  }
  write(out);
  obs::add(obs::Counter::kEventsSent);
  wheel_.schedule_in(heartbeat_, settings_.heartbeat_ms);
}

void Stream::write(std::string_view bytes) {
  if (connection_) connection_->write_body(bytes);
}

void Stream::record(std::string_view type, std::string_view fields_json) {
  if (log_) log_->append(type, fields_json);
}

void Stream::send(std::string_view type, std::string_view fields_json) {
  if (!live()) return;
  frame_tokens(true);
  if (framing_ == Framing::kOpenAI) return;  // stages have no OpenAI equivalent
  record(type, fields_json);
  if (!connection_) {
    ++seq_;
    return;
  }
  std::string& out = scratch();
  append_event(out, run_id_, seq_++, type, fields_json);
  write(out);
  obs::add(obs::Counter::kEventsSent);
  check_pressure();
}

void Stream::send_token(std::string_view text) {
  if (!live() || text.empty()) return;
  tokens_.add(text);
  if (!connection_) {  // only the log listens: nothing to coalesce for
    frame_tokens(true);
    return;
  }
  if (settings_.flush_ms > 0 && !flush_due_ && !flush_window_.scheduled()) {
    wheel_.schedule_in(flush_window_, settings_.flush_ms);
  }
  connection_->request_flush();
  check_pressure();
}

void Stream::frame_tokens(bool final) {
  std::string_view text = tokens_.ready(final);
  if (text.empty()) return;
  if (log_) log_->append_token(text);
  if (!connection_) {
    ++seq_;
    tokens_.take(text.size());
    return;
  }
  std::string& out = scratch();
  if (framing_ == Framing::kOpenAI) {
    append_openai_content_chunk(out, {openai_id_, "chatstream", created_}, text);
    ++seq_;
  } else {
    append_token_event(out, run_id_, seq_++, text);
  }
  uint64_t tokens = tokens_.take(text.size());
  write(out);
  obs::add(obs::Counter::kEventsSent);
  obs::add(obs::Counter::kTokenEventsSent);
  obs::add(obs::Counter::kTokensSent, tokens);
  if (settings_.flush_ms > 0) {
    // The next token event may go out flush_ms from now at the earliest.
    flush_due_ = false;
    if (!tokens_.empty()) wheel_.schedule_in(flush_window_, settings_.flush_ms);
  }
}

void Stream::on_flush() {
  if (!connection_ || tokens_.empty()) return;
  if (!flush_due_ && settings_.flush_ms > 0) return;
  if (connection_->unsent_bytes() >= settings_.high_water) return;  // keep merging until it drains
  frame_tokens(false);
}

void Stream::on_flush_window(void* opaque) {
  auto* self = static_cast<Stream*>(opaque);
  self->flush_due_ = true;
  if (self->connection_ && !self->tokens_.empty()) self->connection_->request_flush();
}

void Stream::on_output_drained() {
  if (!connection_) return;
  check_pressure();
  if (!tokens_.empty() && connection_->unsent_bytes() < settings_.high_water) connection_->request_flush();
}

size_t Stream::unsent() const { return (connection_ ? connection_->unsent_bytes() : 0) + tokens_.size(); }

void Stream::check_pressure() {
  size_t total = unsent();
  if (total > settings_.hard_cap) {
    if (!over_cap_) {
      over_cap_ = true;
      observer_.on_pressure(true);
    }
    if (!grace_.scheduled()) wheel_.schedule_in(grace_, settings_.slow_consumer_grace_ms);
    return;
  }
  // The grace time runs from crossing the hard cap until the client has drained back under the
  // high-water mark (and the source resumed): a client that stops reading after a burst is dropped
  // even when the first writes brought the backlog just under the cap.
  if (over_cap_ && total < settings_.high_water) {
    over_cap_ = false;
    wheel_.cancel(grace_);
    observer_.on_pressure(false);
  }
}

void Stream::on_grace_expired(void* opaque) {
  auto* self = static_cast<Stream*>(opaque);
  if (self->connection_ && self->over_cap_) {
    obs::add(obs::Counter::kSlowConsumerCloses);
    self->observer_.on_slow_consumer();
  }
}

void Stream::on_heartbeat(void* opaque) {
  auto* self = static_cast<Stream*>(opaque);
  if (!self->connection_) return;
  // A client that is not reading does not need more bytes queued.
  if (!self->over_cap_) {
    self->write(kHeartbeat);
    obs::add(obs::Counter::kHeartbeatsSent);
  }
  self->wheel_.schedule(self->heartbeat_, self->heartbeat_.deadline_ms() + self->settings_.heartbeat_ms);
}

void Stream::close(const StreamEnd& end, bool drop_connection) {
  if (!live()) return;
  frame_tokens(true);
  if (log_ && framing_ == Framing::kChatstream) {
    log_->append(end.type, end.fields_json);
    closed_ = true;
    log_->end();
  }
  closed_ = true;
  if (!connection_) {
    ++seq_;
    stop_timers();
    return;
  }
  std::string& out = scratch();
  if (framing_ == Framing::kOpenAI) {
    if (end.type == "error") {
      append_openai_error(out, end.code, end.message);
    } else {
      append_openai_finish(out, {openai_id_, "chatstream", created_}, "stop", end.usage_json);
    }
    ++seq_;
  } else {
    append_event(out, run_id_, seq_++, end.type, end.fields_json);
  }
  write(out);
  obs::add(obs::Counter::kEventsSent);
  http::Connection* connection = connection_;
  stop_timers();
  connection_ = nullptr;
  connection->detach(this);
  connection->end_stream();
  if (drop_connection) {
    connection->flush();
    connection->close();
  }
}

void Stream::abandon() {
  stop_timers();
  if (connection_) {
    connection_->detach(this);
    connection_ = nullptr;
  }
}

void Stream::stop_timers() {
  wheel_.cancel(heartbeat_);
  wheel_.cancel(flush_window_);
  wheel_.cancel(grace_);
}

void Stream::on_connection_lost() {
  stop_timers();
  connection_ = nullptr;
  observer_.on_client_gone();
}

}  // namespace chatstream::sse
