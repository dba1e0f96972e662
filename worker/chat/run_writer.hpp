#pragma once
// What a run says happened, and the one small interface that turns it into bytes. The pipeline
// (chat/run.*) never knows the wire format: it reports the opening, the stages, the answer text and
// one outcome to a RunWriter, and the writer chosen by the route decides how that looks — chatstream's
// SSE protocol, OpenAI's chunk stream, one JSON answer (POST /chat) or one OpenAI chat.completion
// (h2o's and nginx's filter chain is the model: the producer never writes the format itself).
//
// Contract:
// - open() first, then any number of stage() and token(), then end() exactly once; or, instead of all
//   of it, refuse() once before open(): the request is answered with a JSON error and its status
//   (a conversation busy with another run answers 409 before any stream starts);
// - a writer reports the client's side back through the sse::StreamObserver it was made with
//   (pressure, slow consumer, client gone); after on_client_gone() it writes nothing more;
// - a writer never outlives its run (the run owns it) and never calls the observer from end().

#include <cstdint>
#include <memory>
#include <string_view>

#include "core/errc.hpp"
#include "core/timer_wheel.hpp"
#include "http/connection.hpp"
#include "sse/stream.hpp"

namespace chatstream::chat {

enum class RunStatus { kRunning, kComplete, kCancelled, kDisconnected, kTimeout, kError };

// How the answer is delivered: chatstream's SSE protocol, one JSON object (POST /chat), or OpenAI's
// chat.completion.chunk stream / chat.completion object (POST /v1/chat/completions).
enum class RunMode { kStream, kJson, kOpenAIStream, kOpenAIJson };

inline bool is_streaming(RunMode mode) { return mode == RunMode::kStream || mode == RunMode::kOpenAIStream; }

struct RunOpening {
  std::string_view run_id;      // outlives the writer
  std::string_view session_id;  // outlives the writer
  uint64_t heartbeat_ms = 0;
};

// The end of a run as the client is told it.
struct RunOutcome {
  RunStatus status = RunStatus::kComplete;
  Errc error = Errc::kInternal;  // for kTimeout and kError
  std::string_view message;      // for kTimeout and kError: safe to show
  int64_t message_id = 0;        // the stored assistant message, 0 without one
  uint64_t tokens = 0;
  double ttft_ms = 0;
  double duration_ms = 0;
  std::string_view answer;          // the whole answer text (kept for the JSON writers)
  std::string_view citations_json;  // "[…]"
  std::string_view model_usage;     // the model's own usage object, or empty
  std::string_view cancel_reason = "cancel_request";  // for kCancelled: cancel_request, interrupted
};

class RunWriter {
 public:
  virtual ~RunWriter() = default;
  virtual void open(const RunOpening& opening) = 0;
  virtual void stage(std::string_view type, std::string_view fields_json) = 0;
  virtual void token(std::string_view text) = 0;
  virtual void end(const RunOutcome& outcome) = 0;
  // `extra_fields`: "key":value pairs added to the error object (the running run's id of a 409).
  virtual void refuse(Errc error, std::string_view message, std::string_view extra_fields) = 0;
  // The client can still be written to.
  virtual bool attached() const = 0;
  // A resumable writer (chatstream's SSE protocol) keeps every event in a log that readers of
  // GET /chat/stream/{run_id} follow; the others have none.
  virtual sse::EventLog* event_log() { return nullptr; }
  // Frames the token text merged so far now (so the log holds every token before the run's end is
  // stored).
  virtual void flush_tokens() {}
  // Bytes of token text received but not framed yet (merged until the next flush pass): the log
  // holds everything before them.
  virtual size_t pending_token_bytes() const { return 0; }
  // The tokens those bytes belong to.
  virtual uint64_t pending_tokens() const { return 0; }
};

struct WriterSettings {
  bool include_usage = false;  // OpenAI stream: the client asked for the usage chunk
  std::string_view run_id;     // outlives the writer (the event log's ids)
};

// The terminal event of chatstream's SSE protocol for `outcome`: its type (done, error, cancelled)
// and its fields into `fields` ("key":value pairs). The stream and the stored copy of it
// (run_events) are framed from this one function.
std::string_view terminal_event(const RunOutcome& outcome, std::string& fields);

// The writer of `mode` on `connection`; `observer` hears the client's side.
std::unique_ptr<RunWriter> make_run_writer(RunMode mode, http::Connection& connection, TimerWheel& wheel,
                                           const sse::StreamSettings& stream_settings,
                                           sse::StreamObserver& observer, WriterSettings settings);

// "usage" as OpenAI clients expect it: the model's own when it reported one, else chatstream's count.
std::string usage_for_client(const RunOutcome& outcome);

}  // namespace chatstream::chat
