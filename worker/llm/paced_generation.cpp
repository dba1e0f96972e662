#include "llm/paced_generation.hpp"

#include <algorithm>
#include <cmath>

#include "json/writer.hpp"

namespace chatstream::llm {

namespace {
// Tokens emitted in one timer callback at most (rate 0, or catching up after a pause).
constexpr int64_t kMaxTokensPerTick = 64;

class PacedGeneration final : public Generation {
 public:
  PacedGeneration(TimerWheel& wheel, EventSink& sink, std::string_view provider_name, size_t context_messages,
                  int64_t count, TokenSource tokens, Pace pace, Stages prelude)
      : wheel_(wheel), sink_(sink), prelude_(std::move(prelude)), provider_name_(provider_name),
        context_messages_(context_messages), tokens_(std::move(tokens)),
        pace_(pace), timer_(&PacedGeneration::on_timer, this), total_(count) {
    start_ms_ = wheel_.now_ms() + pace_.first_token_delay_ms;
    // The first callback (generation_start) comes from the loop, never from inside start().
    wheel_.schedule(timer_, wheel_.now_ms());
  }
  ~PacedGeneration() override { cancel(); }

  void pause() override {
    paused_ = true;
    wheel_.cancel(timer_);
  }
  void resume() override {
    if (!paused_ || finished_) return;
    paused_ = false;
    wheel_.schedule(timer_, next_deadline());
  }
  void cancel() override {
    finished_ = true;
    wheel_.cancel(timer_);
  }

 private:
  uint64_t next_deadline() const {
    if (pace_.rate <= 0) return std::max(start_ms_, wheel_.now_ms());
    return start_ms_ + static_cast<uint64_t>(std::llround(static_cast<double>(next_) * 1000.0 / pace_.rate));
  }

  static void on_timer(void* opaque) { static_cast<PacedGeneration*>(opaque)->tick(); }

  void tick() {
    if (finished_) return;
    if (!started_) {
      started_ = true;
      for (const auto& [type, fields] : prelude_) {
        sink_.on_stage(type, fields);
        if (finished_ || paused_) return;
      }
      // Built here, not kept: a held stream's generation stays small.
      std::string fields = "\"provider\":";
      json::append_string(fields, provider_name_);
      fields += ",\"context_messages\":";
      fields += std::to_string(context_messages_);
      sink_.on_stage("generation_start", fields);
      if (finished_ || paused_) return;
    }
    uint64_t now = wheel_.now_ms();
    int64_t emitted = 0;
    std::string scratch;
    while (next_ < total_ && next_deadline() <= now && emitted < kMaxTokensPerTick) {
      if (pace_.fail_after >= 0 && next_ >= pace_.fail_after) {
        finished_ = true;
        sink_.on_error(Errc::kUpstream, "The language model failed while answering. Please try again.");
        return;
      }
      sink_.on_token(tokens_(next_++, scratch));
      ++emitted;
      if (finished_ || paused_) return;  // cancelled or paused from inside the sink
    }
    if (next_ >= total_) {
      finished_ = true;
      sink_.on_complete();
      return;
    }
    wheel_.schedule(timer_, next_deadline());
  }

  TimerWheel& wheel_;
  EventSink& sink_;
  Stages prelude_;
  std::string_view provider_name_;
  size_t context_messages_;
  TokenSource tokens_;
  Pace pace_;
  Timer timer_;
  uint64_t start_ms_;
  int64_t total_;
  int64_t next_ = 0;
  bool started_ = false;
  bool paused_ = false;
  bool finished_ = false;
};
}  // namespace

std::unique_ptr<Generation> start_paced_generation(TimerWheel& wheel, EventSink& sink, const RunContext& context,
                                                   std::string_view provider_name, int64_t count, TokenSource tokens,
                                                   Pace pace, Stages prelude) {
  size_t context_messages = context.history ? context.history->size() : 0;
  return std::make_unique<PacedGeneration>(wheel, sink, provider_name, context_messages, count, std::move(tokens),
                                           pace, std::move(prelude));
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    while (i < text.size() && is_space(text[i])) ++i;
    words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

}  // namespace chatstream::llm
