#include "llm/scripted_provider.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "json/writer.hpp"

namespace chatstream::llm {

namespace {
// Tokens emitted in one timer callback at most (rate 0, or catching up after a pause).
constexpr int64_t kMaxTokensPerTick = 64;
}  // namespace

class ScriptedGeneration final : public Generation {
 public:
  ScriptedGeneration(ScriptedProvider& provider, EventSink& sink)
      : provider_(provider), sink_(sink), timer_(&ScriptedGeneration::on_timer, this) {
    total_ = provider.words_.empty() ? provider.settings_.tokens : static_cast<int64_t>(provider.words_.size());
    start_ms_ = provider.wheel_.now_ms() + provider.settings_.first_token_delay_ms;
    // The first callback (generation_start) comes from the loop, never from inside start().
    provider.wheel_.schedule(timer_, provider.wheel_.now_ms());
  }
  ~ScriptedGeneration() override { cancel(); }

  void pause() override {
    paused_ = true;
    provider_.wheel_.cancel(timer_);
  }
  void resume() override {
    if (!paused_ || finished_) return;
    paused_ = false;
    provider_.wheel_.schedule(timer_, next_deadline());
  }
  void cancel() override {
    finished_ = true;
    provider_.wheel_.cancel(timer_);
  }

 private:
  uint64_t next_deadline() const {
    double rate = provider_.settings_.rate;
    if (rate <= 0) return std::max(start_ms_, provider_.wheel_.now_ms());
    return start_ms_ + static_cast<uint64_t>(std::llround(static_cast<double>(next_) * 1000.0 / rate));
  }

  static void on_timer(void* opaque) { static_cast<ScriptedGeneration*>(opaque)->tick(); }

  void tick() {
    if (finished_) return;
    if (!started_) {
      started_ = true;
      std::string fields;
      fields += "\"provider\":\"scripted\"";
      sink_.on_stage("generation_start", fields);
      if (finished_ || paused_) return;
    }
    uint64_t now = provider_.wheel_.now_ms();
    int64_t emitted = 0;
    while (next_ < total_ && next_deadline() <= now && emitted < kMaxTokensPerTick) {
      if (provider_.settings_.fail_after >= 0 && next_ >= provider_.settings_.fail_after) {
        finished_ = true;
        sink_.on_error("upstream", "The language model failed while answering. Please try again.");
        return;
      }
      emit(next_++);
      ++emitted;
      if (finished_ || paused_) return;  // cancelled or paused from inside the sink
    }
    if (next_ >= total_) {
      finished_ = true;
      sink_.on_complete();
      return;
    }
    provider_.wheel_.schedule(timer_, next_deadline());
  }

  void emit(int64_t index) {
    if (!provider_.words_.empty()) {
      sink_.on_token(provider_.words_[static_cast<size_t>(index)]);
      return;
    }
    char text[24];
    text[0] = 't';
    auto [end, ec] = std::to_chars(text + 1, text + sizeof text - 1, index);
    (void)ec;
    *end++ = ' ';
    sink_.on_token(std::string_view(text, static_cast<size_t>(end - text)));
  }

  ScriptedProvider& provider_;
  EventSink& sink_;
  Timer timer_;
  uint64_t start_ms_;
  int64_t total_;
  int64_t next_ = 0;
  bool started_ = false;
  bool paused_ = false;
  bool finished_ = false;
};

ScriptedProvider::ScriptedProvider(TimerWheel& wheel, ScriptedSettings settings)
    : wheel_(wheel), settings_(std::move(settings)), words_(split_words(settings_.text)) {}

std::unique_ptr<Generation> ScriptedProvider::start(const RunContext&, EventSink& sink) {
  return std::make_unique<ScriptedGeneration>(*this, sink);
}

std::vector<std::string> ScriptedProvider::split_words(const std::string& text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\n' && text[i] != '\t') ++i;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t')) ++i;
    words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

}  // namespace chatstream::llm
