#pragma once
// A Generation that streams a known sequence of tokens at a steady pace: token i at
// start + i / rate (deadlines from the run's own start, so pacing never drifts), the first at once
// after an optional delay, rate 0 = as fast as the client takes them (bounded work per loop turn).
// Used by the scripted provider (tests, benchmarks) and the extractive provider (answers composed
// from the knowledge base), which only differ in where the tokens come from.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/timer_wheel.hpp"
#include "llm/provider.hpp"

namespace chatstream::llm {

struct Pace {
  double rate = 20;                   // tokens per second, 0 = as fast as possible
  uint64_t first_token_delay_ms = 0;
  int64_t fail_after = -1;            // end with error{upstream} after this many tokens, -1 = never
};

// Token i of the sequence (0 <= i < count), written into `scratch` or returned as a view of storage
// that outlives the generation.
using TokenSource = std::function<std::string_view(int64_t index, std::string& scratch)>;

// The generation_start event says which provider answers and how many earlier messages of the
// conversation it was given.
// `prelude` events (type, fields) are sent just before generation_start.
using Stages = std::vector<std::pair<std::string, std::string>>;
// `provider_name` must outlive the generation (a literal).
std::unique_ptr<Generation> start_paced_generation(TimerWheel& wheel, EventSink& sink, const RunContext& context,
                                                   std::string_view provider_name, int64_t count, TokenSource tokens,
                                                   Pace pace, Stages prelude = {});

// Splits text into tokens: each word with the whitespace that follows it.
std::vector<std::string> split_words(std::string_view text);

}  // namespace chatstream::llm
