#pragma once
// The four output formats of a run, one per file (chat/run_writer.hpp has the interface and the
// contract); make_run_writer() picks one by RunMode.

#include <memory>

#include "chat/run_writer.hpp"

namespace chatstream::chat {

// What the two SSE formats share: an sse::Stream on the connection (attached from construction, so a
// client that leaves before the stream opens is heard), stages and tokens passed through, and the
// refusal before open().
class SseRunWriter : public RunWriter {
 public:
  SseRunWriter(http::Connection& connection, TimerWheel& wheel, const sse::StreamSettings& settings,
               sse::StreamObserver& observer, sse::Framing framing, std::unique_ptr<sse::EventLog> log = nullptr)
      : connection_(connection), log_(std::move(log)), stream_(connection, wheel, settings, observer, framing, log_.get()) {}

  void stage(std::string_view type, std::string_view fields_json) override { stream_.send(type, fields_json); }
  void token(std::string_view text) override { stream_.send_token(text); }
  bool attached() const override { return stream_.attached(); }
  sse::EventLog* event_log() override { return log_.get(); }
  void flush_tokens() override { stream_.flush_tokens(); }
  size_t pending_token_bytes() const override { return stream_.pending_token_bytes(); }
  uint64_t pending_tokens() const override { return stream_.pending_tokens(); }

  void refuse(Errc error, std::string_view message, std::string_view extra_fields) override {
    if (!stream_.attached()) return;  // the client left
    // The stream lets go of the connection first: the connection may close (and be freed) before
    // this writer is, once the plain JSON error is written.
    stream_.abandon();
    connection_.respond_error(error, message, {}, extra_fields);
  }

 protected:
  http::Connection& connection_;
  std::unique_ptr<sse::EventLog> log_;  // before stream_, which records into it
  sse::Stream stream_;
};

// chatstream's SSE protocol (docs/protocol.md): meta, stages, token, done / error / cancelled.
// Every event is kept in the writer's EventLog (resumable: GET /chat/stream/{run_id}).
std::unique_ptr<RunWriter> make_event_stream_writer(http::Connection& connection, TimerWheel& wheel,
                                                    const sse::StreamSettings& settings,
                                                    sse::StreamObserver& observer, std::string_view run_id);
// OpenAI's chat.completion.chunk stream, ending with [DONE].
std::unique_ptr<RunWriter> make_openai_stream_writer(http::Connection& connection, TimerWheel& wheel,
                                                     const sse::StreamSettings& settings,
                                                     sse::StreamObserver& observer, WriterSettings options);
// POST /chat: one JSON object with the whole answer.
std::unique_ptr<RunWriter> make_json_answer_writer(http::Connection& connection, sse::StreamObserver& observer);
// POST /v1/chat/completions without stream: one chat.completion object.
std::unique_ptr<RunWriter> make_openai_json_writer(http::Connection& connection, sse::StreamObserver& observer);

}  // namespace chatstream::chat
