// One SSE stream of the load: a connection (TCP or Unix socket), one POST, the response parsed as
// it arrives, the figures added to the shared totals. A Stream object is a reusable slot: after
// its handle is closed the owner may start it again for the next stream.
//
// Life of a slot: idle -> connecting -> awaiting head -> streaming -> ended (terminal event seen,
// reading to the end of the body) -> closing -> idle. The stream's outcome (completed / failed /
// held / cut) is settled exactly once, at the first of: terminal event, error, timeout, stop.
//
// Cut and resume (--cut-after-tokens, --resume): the owner cuts a streaming stream (its connection
// is closed, its outcome left pending, its run id and last seq kept), then resumes it: the slot goes
// through connecting -> ... -> idle once more with `GET PATH/{run_id}` and `Last-Event-ID`, and the
// ids and the scripted text must carry on exactly where the first part stopped.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "http_response.hpp"
#include "scripted_pattern.hpp"
#include "sse_parser.hpp"
#include "stream_context.hpp"

namespace chatstream::bench {

class Stream final : HttpResponseParser::Sink, SseParser::Sink {
 public:
  explicit Stream(StreamContext& context) : context_(context) {}
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Opens a connection and sends the request. The owner has already counted the stream as started.
  void start();
  // Ends the stream if not yet settled, and closes it: counted as failed ("stopped"), or as held if
  // `hold_mode` and it got its first event.
  void stop(bool hold_mode);
  // Closes a streaming stream whose outcome is pending (returns false and does nothing otherwise).
  // Without --resume the stream is settled as cut; with it the outcome waits for the resumed part.
  bool cut();
  // Reopens a cut stream with a resume request after the last event it read.
  void resume();
  bool was_cut() const { return cut_; }
  bool reached_cut() const { return cut_ready_; }
  // Applies --timeout and --idle-timeout; `now_ms` is the loop time.
  void check_deadlines(uint64_t now_ms);
  bool idle() const { return state_ == State::kIdle; }
  bool awaiting_first_event() const { return state_ != State::kIdle && events_ == 0; }

 private:
  enum class State : uint8_t { kIdle, kConnecting, kAwaitingHead, kStreaming, kEnded, kClosing };
  enum class Outcome : uint8_t { kPending, kCompleted, kFailed, kHeld, kCut };

  static void on_connect(uv_connect_t* request, int status);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buffer);
  static void on_read(uv_stream_t* handle, ssize_t nread, const uv_buf_t* buffer);
  static void on_write(uv_write_t* request, int status);
  static void on_close(uv_handle_t* handle);

  void connect();
  int open_tcp();
  void send_request();
  void on_bytes(std::string_view bytes);
  void on_body_complete();
  void reset_for_request();

  // HttpResponseParser::Sink
  bool on_response_head(const ResponseHead& head) override;
  bool on_body(std::string_view bytes) override;
  // SseParser::Sink
  bool on_event(const SseEvent& event) override;
  void on_comment() override;

  bool check_id(const SseEvent& event);
  void on_token(std::string_view data);
  void on_done(std::string_view data);
  bool parse_json(std::string_view data, simdjson::ondemand::document& document);
  bool parse_field(std::string_view data, std::string_view field, std::string_view& out);
  bool parse_field(std::string_view data, std::string_view field, uint64_t& out);

  void settle(Outcome outcome, std::string_view reason = {});
  void fail(std::string_view reason, int uv_error = 0);
  void close();

  uv_stream_t* handle() { return reinterpret_cast<uv_stream_t*>(&socket_); }

  StreamContext& context_;
  union Socket {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } socket_{};
  uv_connect_t connect_request_{};
  HttpResponseParser http_;
  SseParser sse_;
  ScriptedPattern pattern_;

  uint64_t started_ms_ = 0;        // loop time of connect / request, for --timeout
  uint64_t last_activity_ms_ = 0;  // loop time of the last read, for --idle-timeout
  uint64_t request_sent_us_ = 0;
  uint64_t first_token_us_ = 0;
  uint64_t last_token_us_ = 0;
  uint64_t run_id_hash_ = 0;  // of the run id in the first event's id, to check the others
  std::string run_id_;        // --cut-after-tokens only: the run to resume
  std::string resume_request_;
  uint32_t events_ = 0;  // events of this response, = the seq the next id must carry
  uint32_t token_events_ = 0;
  uint32_t tokens_ = 0;  // pattern words, or token events once the text leaves the pattern
  State state_ = State::kIdle;
  Outcome outcome_ = Outcome::kPending;
  bool order_error_ = false;
  bool connection_reusable_ = false;  // the response allows another request on this connection
  bool cut_ready_ = false;            // received --cut-after-tokens tokens
  bool cut_ = false;                  // the owner closed it at the cut
  bool resumed_ = false;              // the resume request went out: this is the resumed part
  bool awaiting_replay_ = false;      // resumed, first replayed event not yet read
};

}  // namespace chatstream::bench
