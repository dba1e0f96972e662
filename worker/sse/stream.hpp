#pragma once
// One SSE response on a connection: framing with ids, heartbeats, token coalescing and the output
// bounds that push back on the source.
//
// Output policy (docs/protocol.md, "Coalescing and slow clients"):
// - token text is buffered and framed at the connection's flush pass, so all tokens of one loop turn
//   become one event; while unsent bytes exceed high_water (or inside a --flush-ms window) the text
//   keeps merging;
// - other events are framed at once, after the token text that precedes them;
// - unsent bytes + merged text above hard_cap pause the source (observer.on_pressure(true)); below
//   high_water it resumes; a client that has not drained back under high_water within
//   slow_consumer_grace_ms of crossing hard_cap is a slow consumer (observer.on_slow_consumer()).
// Heartbeats are scheduled from the stream's start (absolute deadlines in the worker's timer wheel).

#include <cstdint>
#include <string>
#include <string_view>

#include "core/timer_wheel.hpp"
#include "http/connection.hpp"
#include "sse/event_log.hpp"
#include "sse/token_buffer.hpp"

namespace chatstream::sse {

// How events are written: chatstream's own protocol (docs/protocol.md) or OpenAI's chunk format.
enum class Framing { kChatstream, kOpenAI };

// The end of a stream, for either framing.
struct StreamEnd {
  std::string_view type;         // done, error or cancelled
  std::string_view fields_json;  // chatstream framing: the event's fields
  std::string_view code;         // error code
  std::string_view message;      // error message
  std::string_view usage_json;   // OpenAI framing: the usage object, when the client asked for it
};

struct StreamSettings {
  uint64_t heartbeat_ms = 15000;
  uint64_t flush_ms = 0;
  uint64_t retry_ms = 3000;
  size_t high_water = 16 * 1024;
  size_t hard_cap = 256 * 1024;
  uint64_t slow_consumer_grace_ms = 5000;
};

class StreamObserver {
 public:
  virtual void on_pressure(bool over_cap) = 0;
  virtual void on_slow_consumer() = 0;
  // The client went away; the stream is already detached from its connection.
  virtual void on_client_gone() = 0;

 protected:
  ~StreamObserver() = default;
};

class Stream final : public http::ResponseProducer {
 public:
  // With a `log` (a resumable run, chatstream framing), every event framed is also recorded there,
  // and after the client is gone the stream goes on framing into the log alone (each token at once:
  // there is no connection to coalesce for) until close().
  Stream(http::Connection& connection, TimerWheel& wheel, const StreamSettings& settings,
         StreamObserver& observer, Framing framing = Framing::kChatstream, EventLog* log = nullptr);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  // The stream is attached to the connection from construction (it hears a client that leaves).
  // open() writes the response head, the retry field and the meta event (fields after "type"), and
  // starts the heartbeat. `run_id` must outlive the stream. With the OpenAI framing the meta event is the
  // first (role) chunk and `extra_headers` may add response headers.
  void open(std::string_view run_id, std::string_view meta_fields, std::string_view extra_headers = {});
  // Frames an event now (merged token text first).
  void send(std::string_view type, std::string_view fields_json);
  void send_token(std::string_view text);
  // Frames the token text merged so far now, instead of at the next flush pass.
  void flush_tokens() {
    if (live()) frame_tokens(true);
  }
  // Token text received and not framed yet.
  size_t pending_token_bytes() const { return tokens_.size(); }
  // Deltas received and not framed yet (a delta split by a held-back character counts as pending).
  uint64_t pending_tokens() const { return tokens_.tokens(); }
  // Frames the final event and ends the response. The stream is inert afterwards. With
  // `drop_connection` (a slow consumer) the connection is closed right after one last write attempt
  // instead of waiting for a client that does not read.
  void close(const StreamEnd& end, bool drop_connection = false);
  // Ends without writing anything more (the connection is being torn down by someone else).
  void abandon();

  bool attached() const { return connection_ != nullptr; }
  // Events still go somewhere: to the client, or to the log of a resumable run.
  bool live() const { return connection_ != nullptr || (log_ != nullptr && !closed_); }
  uint64_t events_sent() const { return seq_; }

  // http::ResponseProducer
  void on_flush() override;
  void on_output_drained() override;
  void on_connection_lost() override;

 private:
  static void on_heartbeat(void* self);
  static void on_flush_window(void* self);
  static void on_grace_expired(void* self);
  void frame_tokens(bool final);
  void write(std::string_view bytes);
  void record(std::string_view type, std::string_view fields_json);
  void check_pressure();
  void stop_timers();
  size_t unsent() const;

  http::Connection* connection_;
  TimerWheel& wheel_;
  const StreamSettings& settings_;
  StreamObserver& observer_;
  std::string_view run_id_;
  Framing framing_;
  std::string openai_id_;  // "chatcmpl-<run_id>"
  int64_t created_ = 0;
  TokenBuffer tokens_;
  Timer heartbeat_;
  Timer flush_window_;
  Timer grace_;
  EventLog* log_;
  uint64_t seq_ = 0;
  bool closed_ = false;
  bool over_cap_ = false;
  bool flush_due_ = true;  // with --flush-ms: the window since the last token event has passed
};

}  // namespace chatstream::sse
