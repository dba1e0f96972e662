#include "scripted_pattern.hpp"

#include <charconv>

namespace chatstream::bench {

bool ScriptedPattern::feed(std::string_view text) {
  if (!matches_) return false;
  // The expected word is rebuilt (a few characters) when a piece of text starts; no per-stream copy.
  char word[16];
  word[0] = 't';
  char* digits_end = std::to_chars(word + 1, word + sizeof word - 1, next_word_).ptr;
  *digits_end = ' ';
  auto word_size = static_cast<size_t>(digits_end + 1 - word);

  for (char c : text) {
    if (c != word[matched_chars_]) {
      matches_ = false;
      return false;
    }
    if (++matched_chars_ == word_size) {
      matched_chars_ = 0;
      ++next_word_;
      digits_end = std::to_chars(word + 1, word + sizeof word - 1, next_word_).ptr;
      *digits_end = ' ';
      word_size = static_cast<size_t>(digits_end + 1 - word);
    }
  }
  return true;
}

}  // namespace chatstream::bench
