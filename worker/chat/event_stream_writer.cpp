// chatstream's own SSE protocol (docs/protocol.md) on an sse::Stream.
#include "chat/writers.hpp"
#include "json/writer.hpp"

namespace chatstream::chat {

namespace {

class EventStreamWriter final : public SseRunWriter {
 public:
  EventStreamWriter(http::Connection& connection, TimerWheel& wheel, const sse::StreamSettings& settings,
                    sse::StreamObserver& observer, std::string_view run_id)
      : SseRunWriter(connection, wheel, settings, observer, sse::Framing::kChatstream,
                     std::make_unique<sse::EventLog>(run_id)) {}

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
    if (!stream_.live()) return;
    std::string fields;
    std::string_view type = terminal_event(outcome, fields);
    sse::StreamEnd end{type, fields, {}, {}, {}};
    stream_.close(end, outcome.error == Errc::kSlowConsumer && type == "error");
  }
};

}  // namespace

std::unique_ptr<RunWriter> make_event_stream_writer(http::Connection& connection, TimerWheel& wheel,
                                                    const sse::StreamSettings& settings,
                                                    sse::StreamObserver& observer, std::string_view run_id) {
  return std::make_unique<EventStreamWriter>(connection, wheel, settings, observer, run_id);
}

std::string_view terminal_event(const RunOutcome& outcome, std::string& fields) {
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
      // Nobody hears it live (the client left and no resume came within the grace); a later replay does.
      type = "cancelled";
      object.field("reason", "disconnected").field("tokens", outcome.tokens);
      break;
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
  // Only the pairs: the framing writes {"type":…, …}.
  fields.erase(0, 1);
  return type;
}

}  // namespace chatstream::chat
