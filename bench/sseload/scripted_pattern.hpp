// Checks, without storing it, that a stream's token text is the scripted provider's answer
// "t0 t1 t2 ... t{n-1} " (token i is `t<i>` followed by one space). The server may merge tokens
// into one event or (in principle) split one, so only the concatenation is compared: the matcher
// keeps the index of the next expected word and how many of its characters have matched.
#pragma once

#include <cstdint>
#include <string_view>

namespace chatstream::bench {

class ScriptedPattern {
 public:
  // Consumes more answer text. Returns false (and stays false) at the first character that
  // deviates from the pattern.
  bool feed(std::string_view text);
  // Words completed so far (a word counts once its trailing space has arrived).
  uint32_t words() const { return next_word_; }
  bool matches() const { return matches_; }
  // True when the text so far ends on a word boundary.
  bool at_word_boundary() const { return matched_chars_ == 0; }
  void reset() { *this = ScriptedPattern{}; }

 private:
  uint32_t next_word_ = 0;
  uint8_t matched_chars_ = 0;  // of the word "t<next_word_> "
  bool matches_ = true;
};

}  // namespace chatstream::bench
