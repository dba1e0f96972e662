#include "chat/run_writer.hpp"

#include "chat/writers.hpp"
#include "json/writer.hpp"

namespace chatstream::chat {

std::unique_ptr<RunWriter> make_run_writer(RunMode mode, http::Connection& connection, TimerWheel& wheel,
                                           const sse::StreamSettings& stream_settings,
                                           sse::StreamObserver& observer, WriterSettings settings) {
  switch (mode) {
    case RunMode::kStream:
      return make_event_stream_writer(connection, wheel, stream_settings, observer, settings.run_id);
    case RunMode::kOpenAIStream:
      return make_openai_stream_writer(connection, wheel, stream_settings, observer, settings);
    case RunMode::kJson:
      return make_json_answer_writer(connection, observer);
    case RunMode::kOpenAIJson:
      return make_openai_json_writer(connection, observer);
  }
  return nullptr;
}

std::string usage_for_client(const RunOutcome& outcome) {
  if (!outcome.model_usage.empty()) return std::string(outcome.model_usage);
  std::string usage;
  json::Object(usage)
      .field("prompt_tokens", 0)
      .field("completion_tokens", outcome.tokens)
      .field("total_tokens", outcome.tokens)
      .close();
  return usage;
}

}  // namespace chatstream::chat
