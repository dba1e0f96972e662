// chatstream's own SSE protocol (docs/protocol.md) on an sse::Stream.
#include "chat/writers.hpp"
#include "json/writer.hpp"

namespace chatstream::chat {

namespace {

class EventStreamWriter final : public SseRunWriter {
 public:
  EventStreamWriter(http::Connection& connection, TimerWheel& wheel, const sse::StreamSettings& settings,
                    sse::StreamObserver& observer)
      : SseRunWriter(connection, wheel, settings, observer, sse::Framing::kChatstream) {}

  void open(const RunOpening& opening) override {
    std::string meta;
    json::Object(meta)
        .field("run_id", opening.run_id)
        .field("session_id", opening.session_id)
        .field("heartbeat_ms", opening.heartbeat_ms);
    // Only the pairs: the stream writes {"type":"meta", …}.
    stream_.open(opening.run_id, std::string_view(meta).substr(1));
  }


  void end(const RunOutcome& outcome) override {
    if (!stream_.attached()) return;
    std::string fields;
    json::Object object(fields);
    std::string_view type;
    switch (outcome.status) {
      case RunStatus::kComplete:
        type = "done";
        object.field("status", "complete")
            .field("tokens", outcome.tokens)
            .field("ttft_ms", outcome.ttft_ms)
            .field("duration_ms", outcome.duration_ms);
        if (outcome.message_id > 0) object.field("message_id", outcome.message_id);
        if (!outcome.model_usage.empty()) object.raw("usage", outcome.model_usage);
        break;
      case RunStatus::kCancelled:
        type = "cancelled";
        object.field("reason", outcome.cancel_reason).field("tokens", outcome.tokens);
        break;
      case RunStatus::kDisconnected:
        stream_.abandon();
        return;
      case RunStatus::kRunning:
      case RunStatus::kTimeout:
      case RunStatus::kError:
        type = "error";
        object.field("code", error_code(outcome.error))
            .field("message", outcome.message)
            .field("retryable", retryable(outcome.error))
            .field("tokens", outcome.tokens);
        break;
    }
    sse::StreamEnd end{type, std::string_view(fields).substr(1), {}, {}, {}};
    stream_.close(end, outcome.error == Errc::kSlowConsumer && type == "error");
  }
};

}  // namespace

std::unique_ptr<RunWriter> make_event_stream_writer(http::Connection& connection, TimerWheel& wheel,
                                                    const sse::StreamSettings& settings,
                                                    sse::StreamObserver& observer) {
  return std::make_unique<EventStreamWriter>(connection, wheel, settings, observer);
}

}  // namespace chatstream::chat
