#include "llm/extractive_provider.hpp"

#include <memory>

#include "rag/extractive.hpp"

namespace chatstream::llm {

namespace {
// compose_answer numbers the passages it used in order of first use; the `citations` event lists all
// kept passages in rank order. Rewrite each "[n]" to the passage's place in that event.
void renumber_citations(rag::ExtractiveAnswer& answer, const std::vector<rag::Passage>& passages) {
  std::vector<int> place(answer.citations.size() + 1, 0);
  for (const rag::Citation& citation : answer.citations) {
    for (size_t i = 0; i < passages.size(); ++i) {
      if (passages[i].chunk_id == citation.chunk_id && citation.index > 0 &&
          static_cast<size_t>(citation.index) < place.size()) {
        place[static_cast<size_t>(citation.index)] = static_cast<int>(i + 1);
        break;
      }
    }
  }
  std::string text;
  text.reserve(answer.text.size());
  const std::string& in = answer.text;
  for (size_t i = 0; i < in.size();) {
    if (in[i] == '[') {
      size_t j = i + 1;
      while (j < in.size() && in[j] >= '0' && in[j] <= '9') ++j;
      if (j > i + 1 && j < in.size() && in[j] == ']') {
        size_t n = std::stoul(in.substr(i + 1, j - i - 1));
        if (n < place.size() && place[n] > 0) {
          text += "[" + std::to_string(place[n]) + "]";
          i = j + 1;
          continue;
        }
      }
    }
    text.push_back(in[i++]);
  }
  answer.text = std::move(text);
}
}  // namespace

std::unique_ptr<Generation> ExtractiveProvider::start(const RunContext& context, EventSink& sink) {
  std::vector<std::string> conversation;
  if (context.history) {
    for (const Turn& turn : *context.history) {
      if (turn.role == "user") conversation.push_back(turn.content);
    }
  }
  static const std::vector<rag::Passage> kNoPassages;
  const std::vector<rag::Passage>& passages = context.passages ? *context.passages : kNoPassages;
  rag::ExtractiveAnswer answer = rag::compose_answer(context.message, conversation, passages);
  renumber_citations(answer, passages);
  // The words are owned by the generation's token source.
  auto words = std::make_shared<std::vector<std::string>>(split_words(answer.text));
  int64_t count = static_cast<int64_t>(words->size());
  return start_paced_generation(
      wheel_, sink, context, "extractive", count,
      [words](int64_t i, std::string&) -> std::string_view { return (*words)[static_cast<size_t>(i)]; }, pace_);
}

}  // namespace chatstream::llm
