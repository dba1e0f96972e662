#pragma once
// The answer of the embedded `extractive` provider, composed from the reranked passages: no network,
// no model, nothing invented. Pure: the provider streams `text` word by word and sends `citations`.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rag/passage.hpp"

namespace chatstream::rag {

struct Citation {
  int index;  // the n of the "[n]" markers in the text, from 1
  std::string title;
  std::string source;
  std::string snippet;  // make_snippet() of the passage around the first sentence cited from it
  int64_t chunk_id = 0;
  std::string heading;
};

struct ExtractiveAnswer {
  std::string text;
  std::vector<Citation> citations;  // in the order of their index
  bool found = false;
};

inline constexpr std::string_view kNothingFound =
    "I could not find anything about that in the knowledge base.";
// Only the best passages are read for sentences.
inline constexpr size_t kExtractivePassages = 5;

// Picks at most `max_sentences` sentences of the best kExtractivePassages of `ranked` (best first) that
// answer `question` (the context messages, oldest first, help with follow-ups; rag/query.hpp) and joins
// them into an answer, one paragraph per passage used: the passage holding the best sentence first, then
// the others by the score of their best sentence (ties: passage rank), sentences in document order
// inside each. Each sentence is followed by " [n]", n numbering the passages actually used in order of
// first use (so the citations are exactly the passages the text cites, numbered from 1; a sentence
// ending in ':' and the code lines it announces share one marker). A lead-in naming the source opens the
// text when its first sentence starts by pointing back ("It", "This", "However", …). Whitespace is
// collapsed inside sentences, the source's own "[7]" footnote markers are removed, the text is valid
// UTF-8. "See Section …" pointers are never chosen.
//
// Code blocks (fenced in the passages, ingest/document.hpp) are quoted whole, fences and line breaks
// kept, each on its own paragraph: after the sentence announcing them (ending in ':', "for example",
// "such as this", or running into the code), whose marker comes before the block, together with a
// short comment right after the block that points back at it ("This is a bad idea!"). For a how-to
// question ("How do I …?") the best code block of the passages (the question's terms in it, its
// announcement and heading; its first word the question's verb; an example over a synopsis) is quoted
// with its announcement (or "From “title”: [n]") and at most two more sentences; its passage opens the
// answer. A how-to question without a matching block gets the usual sentences.
//
// When no sentence (nor, for a how-to question, code block) is relevant enough, found is false,
// citations empty, and text is kNothingFound.
ExtractiveAnswer compose_answer(std::string_view question, const std::vector<std::string>& context_messages,
                                const std::vector<Passage>& ranked, size_t max_sentences = 5);

}  // namespace chatstream::rag
