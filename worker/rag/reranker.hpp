#pragma once
// Reranking of retrieved candidates in C++: BM25F over the candidate set with a term-proximity bonus
// (why these choices: reranker.cpp).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "rag/passage.hpp"

namespace chatstream::rag {

struct Ranked {
  size_t index;  // into the candidates
  double score;
};

// Scores are comparable across questions: about 1.0 for a passage of average length that contains
// every question term once, 0 for one that contains none, up to about 2.5 (term-frequency saturation
// plus the proximity bonus plus the context part). A passage scoring under this value matches under
// roughly a quarter of what the question asks for.
inline constexpr double kMinRerankScore = 0.25;

// Ranks `candidates` for `question` (the context messages, oldest first, count for less: see
// rag/query.hpp). Returns at most `keep` entries, best first, none scoring under `min_score`. Ties are
// broken by higher db_rank, then lower index, so the order is deterministic.
std::vector<Ranked> rerank(std::string_view question, const std::vector<std::string>& context_messages,
                           const std::vector<Passage>& candidates, size_t keep, double min_score);

}  // namespace chatstream::rag
