#include "llm/extractive_provider.hpp"

#include <memory>

#include "json/writer.hpp"
#include "rag/extractive.hpp"

namespace chatstream::llm {


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
  // The sources of this answer are the passages it cites, numbered as its [n] markers: they replace
  // the list the pipeline announced after reranking (none at all when nothing relevant was found).
  Stages prelude;
  if (!passages.empty()) {
    std::string list = "[";
    for (const rag::Citation& citation : answer.citations) {
      if (list.size() > 1) list += ",";
      json::Object(list)
          .field("index", citation.index)
          .field("title", citation.title)
          .field("source", citation.source)
          .field("snippet", citation.snippet)
          .close();
    }
    list += "]";
    prelude.emplace_back("citations", "\"citations\":" + list);
  }
  // The words are owned by the generation's token source.
  auto words = std::make_shared<std::vector<std::string>>(split_words(answer.text));
  int64_t count = static_cast<int64_t>(words->size());
  return start_paced_generation(
      wheel_, sink, context, "extractive", count,
      [words](int64_t i, std::string&) -> std::string_view { return (*words)[static_cast<size_t>(i)]; }, pace_,
      std::move(prelude));
}

}  // namespace chatstream::llm
