#include "sse_parser.hpp"

namespace chatstream::bench {

namespace {
// Hands the worker parser's events on with their type classified.
class Classifier final : public llm::UpstreamSseParser::Sink {
 public:
  explicit Classifier(SseParser::Sink& sink) : sink_(sink) {}
  bool on_event(const llm::SseEvent& event) override {
    return sink_.on_event(SseEvent{classify_event_type(event.type), event.has_id, event.id, event.data});
  }
  void on_comment() override { sink_.on_comment(); }

 private:
  SseParser::Sink& sink_;
};
}  // namespace

EventType classify_event_type(std::string_view name) {
  if (name == "token") return EventType::kToken;
  if (name == "meta") return EventType::kMeta;
  if (name == "generation_start") return EventType::kGenerationStart;
  if (name == "done") return EventType::kDone;
  if (name == "error") return EventType::kError;
  if (name == "cancelled") return EventType::kCancelled;
  return EventType::kOther;
}

bool SseParser::feed(std::string_view input, Sink& sink) {
  Classifier classifier(sink);
  return parser_.feed(input, classifier);
}

}  // namespace chatstream::bench
