#include "llm/scripted_provider.hpp"

#include <charconv>

namespace chatstream::llm {

ScriptedProvider::ScriptedProvider(TimerWheel& wheel, ScriptedSettings settings)
    : wheel_(wheel), settings_(std::move(settings)), words_(split_words(settings_.text)) {}

std::unique_ptr<Generation> ScriptedProvider::start(const RunContext& context, EventSink& sink) {
  if (!words_.empty()) {
    // The words live in the provider, which outlives every generation of the worker.
    return start_paced_generation(
        wheel_, sink, context, "scripted", static_cast<int64_t>(words_.size()),
        [this](int64_t i, std::string&) -> std::string_view { return words_[static_cast<size_t>(i)]; },
        settings_.pace);
  }
  return start_paced_generation(wheel_, sink, context, "scripted", settings_.tokens,
                                [](int64_t i, std::string& scratch) -> std::string_view {
                                  char text[24];
                                  text[0] = 't';
                                  auto [end, ec] = std::to_chars(text + 1, text + sizeof text - 1, i);
                                  (void)ec;
                                  *end++ = ' ';
                                  scratch.assign(text, end);
                                  return scratch;
                                },
                                settings_.pace);
}

}  // namespace chatstream::llm
