#pragma once
// The scripted provider, for tests and benchmarks: streams `tokens` numbered tokens ("t0 ", "t1 ", …)
// or the words of a given text, the first at once (after an optional delay) and token i at
// start + i / rate — deadlines from the run's own start, so pacing never drifts. Rate 0 streams as
// fast as the client takes it (bounded work per loop turn). It can fail on purpose after N tokens.

#include <cstdint>
#include <string>
#include <vector>

#include "core/timer_wheel.hpp"
#include "llm/provider.hpp"

namespace chatstream::llm {

struct ScriptedSettings {
  int64_t tokens = 50;
  double rate = 20;
  std::string text;  // when non-empty, streamed word by word instead of numbered tokens
  uint64_t first_token_delay_ms = 0;
  int64_t fail_after = -1;
};

class ScriptedProvider final : public Provider {
 public:
  ScriptedProvider(TimerWheel& wheel, ScriptedSettings settings);
  std::string_view name() const override { return "scripted"; }
  std::unique_ptr<Generation> start(const RunContext& context, EventSink& sink) override;

  // Splits text into tokens: each word with the whitespace that follows it.
  static std::vector<std::string> split_words(const std::string& text);

 private:
  friend class ScriptedGeneration;
  TimerWheel& wheel_;
  ScriptedSettings settings_;
  std::vector<std::string> words_;
};

}  // namespace chatstream::llm
