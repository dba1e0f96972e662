// OpenAI's streaming format (chat.completion.chunk … [DONE]) on an sse::Stream, so OpenAI SDK clients
// work unchanged. Stages have no OpenAI equivalent and are not sent.
#include "chat/writers.hpp"

namespace chatstream::chat {

namespace {

class OpenAIStreamWriter final : public SseRunWriter {
 public:
  OpenAIStreamWriter(http::Connection& connection, TimerWheel& wheel, const sse::StreamSettings& settings,
                     sse::StreamObserver& observer, WriterSettings options)
      : SseRunWriter(connection, wheel, settings, observer, sse::Framing::kOpenAI), options_(options) {}

  void open(const RunOpening& opening) override {
    std::string headers = "X-Chatstream-Session-Id: ";
    headers += opening.session_id;
    headers += "\r\n";
    stream_.open(opening.run_id, {}, headers);
  }


  void end(const RunOutcome& outcome) override {
    if (!stream_.attached()) return;
    if (outcome.status == RunStatus::kDisconnected) {
      stream_.abandon();
      return;
    }
    bool failed = outcome.status != RunStatus::kComplete && outcome.status != RunStatus::kCancelled;
    std::string usage = options_.include_usage ? usage_for_client(outcome) : std::string();
    sse::StreamEnd end{failed ? "error" : "done", {}, failed ? error_code(outcome.error) : std::string_view(),
                       failed ? outcome.message : std::string_view(), usage};
    stream_.close(end, failed && outcome.error == Errc::kSlowConsumer);
  }

 private:
  WriterSettings options_;
};

}  // namespace

std::unique_ptr<RunWriter> make_openai_stream_writer(http::Connection& connection, TimerWheel& wheel,
                                                     const sse::StreamSettings& settings,
                                                     sse::StreamObserver& observer, WriterSettings options) {
  return std::make_unique<OpenAIStreamWriter>(connection, wheel, settings, observer, options);
}

}  // namespace chatstream::chat
