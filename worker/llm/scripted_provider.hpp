#pragma once
// The scripted provider, for tests and benchmarks: streams `tokens` numbered tokens ("t0 ", "t1 ", …)
// or the words of a given text at a steady pace (llm/paced_generation.hpp), and can fail on purpose
// after N tokens.

#include <cstdint>
#include <string>
#include <vector>

#include "core/timer_wheel.hpp"
#include "llm/paced_generation.hpp"
#include "llm/provider.hpp"

namespace chatstream::llm {

struct ScriptedSettings {
  int64_t tokens = 50;
  std::string text;  // when non-empty, streamed word by word instead of numbered tokens
  Pace pace;
};

class ScriptedProvider final : public Provider {
 public:
  ScriptedProvider(TimerWheel& wheel, ScriptedSettings settings);
  std::string_view name() const override { return "scripted"; }
  std::unique_ptr<Generation> start(const RunContext& context, EventSink& sink) override;

 private:
  TimerWheel& wheel_;
  ScriptedSettings settings_;
  std::vector<std::string> words_;
};

}  // namespace chatstream::llm
