#pragma once
// The embedded default provider: no network, no model weights. It answers from the passages that
// retrieval and reranking kept (RunContext::passages): the sentences most relevant to the question
// and the conversation, joined into a readable answer with citation markers [n] (n = the passage's
// place in the `citations` event), streamed word by word at a steady pace. When nothing relevant was
// found it says so plainly instead of inventing an answer.

#include "core/timer_wheel.hpp"
#include "llm/paced_generation.hpp"
#include "llm/provider.hpp"

namespace chatstream::llm {

class ExtractiveProvider final : public Provider {
 public:
  ExtractiveProvider(TimerWheel& wheel, Pace pace) : wheel_(wheel), pace_(pace) {}
  std::string_view name() const override { return "extractive"; }
  std::unique_ptr<Generation> start(const RunContext& context, EventSink& sink) override;

 private:
  TimerWheel& wheel_;
  Pace pace_;
};

}  // namespace chatstream::llm
