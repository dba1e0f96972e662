#pragma once
// The text given to PostgreSQL's websearch_to_tsquery(config, text) to find candidate chunks.

#include <string>
#include <string_view>
#include <vector>

namespace chatstream::rag {

// At most this many words go into one search query.
inline constexpr size_t kMaxSearchWords = 24;
// Longer words are dropped (PostgreSQL ignores words over 2 KiB anyway; none of this size is a word).
inline constexpr size_t kMaxSearchWordBytes = 64;

// The significant words of `question` (lowercased, no stopwords or question fillers, one per stem —
// the surface form, not our stem, because PostgreSQL stems with the session's own configuration)
// joined with " or ": retrieval wants recall, reranking restores precision. When the question is a
// follow-up (is_follow_up()), the words of the previous user message are added after its own — and
// of the one before that too, if the previous message was itself a follow-up (up to three back).
// `earlier_user_messages` are oldest first.
//
// The result holds only letters, digits, spaces and the operator "or", so websearch_to_tsquery can
// never misread it (no quotes, no "-" negation, no stray "or"/"and" words). It is empty when there is
// nothing to search for; the caller then skips retrieval.
std::string search_query(std::string_view question, const std::vector<std::string>& earlier_user_messages);

}  // namespace chatstream::rag
