#pragma once
// A short excerpt of a passage for a citation.

#include <cstddef>
#include <string>
#include <vector>

#include "rag/passage.hpp"

namespace chatstream::rag {

inline constexpr size_t kDefaultSnippetChars = 240;

// The window of `passage.content` that holds the most distinct `terms` (stems, as terms() returns
// them; then the most matches; then the tightest; then the earliest), widened to start at its sentence
// when that fits, then to the right, then to the left by whole sentences (by words only when it would
// otherwise fill under half of `max_chars`). Whitespace is collapsed to single spaces; "…" marks a cut at
// either end. The result is at most `max_chars` characters (code points, the "…" included), is cut only
// between words (a single word longer than the whole budget is cut between characters), and is valid UTF-8
// (an ill-formed byte in the content becomes U+FFFD). Without any matching term, the start of the
// content.
std::string make_snippet(const Passage& passage, const std::vector<std::string>& terms, size_t max_chars);

}  // namespace chatstream::rag
