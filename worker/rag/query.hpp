#pragma once
// What a question asks for, as weighted terms: its own terms, and the terms of the conversation
// before it (so "and the second one?" can be understood), which always count for less. The search
// query, the reranker and the extractive composer all weigh passages with this one analysis.

#include <string>
#include <string_view>
#include <vector>

namespace chatstream::rag {

struct WeightedTerm {
  std::string stem;
  double weight;
};

struct Query {
  // The question's distinct terms (question_terms()), weight 1.
  std::vector<WeightedTerm> question;
  // Distinct terms of the earlier messages that are not question terms, newest message first, at most
  // kMaxContextTerms; weight 1 for the newest message, decaying by kContextDecay per older message.
  std::vector<WeightedTerm> context;
  bool follow_up = false;
  // How much a perfect context match counts next to a perfect question match (scores are computed
  // for each part, normalised, then added as question + context_factor * context).
  double context_factor = 0;
};

inline constexpr size_t kMaxContextTerms = 12;
inline constexpr double kContextDecay = 0.6;
inline constexpr double kContextFactor = 0.25;          // a new question: context barely counts
inline constexpr double kFollowUpContextFactor = 0.75;  // a follow-up: it needs the context

// True when `question` reads as a follow-up that only makes sense with the conversation before it:
// no significant term at all ("why?", "and then?"), or at most three significant terms together with
// a word that points back or continues ("it", "this", "they", "the second one", "what about …",
// "and …", "also …").
bool is_follow_up(std::string_view question);

// `context_messages` are the earlier messages of the session, oldest first (user messages, and
// assistant answers if the caller wants them to count).
Query analyze_query(std::string_view question, const std::vector<std::string>& context_messages);

}  // namespace chatstream::rag
