#pragma once
// Token text waiting to be framed. Deltas are appended in order and taken out as one merged piece
// (coalescing never drops or reorders text). A multi-byte UTF-8 character that a provider split across
// two deltas is held back until its last byte arrives, so every token event carries whole characters.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chatstream::sse {

class TokenBuffer {
 public:
  void add(std::string_view text);
  bool empty() const { return text_.empty(); }
  size_t size() const { return text_.size(); }
  uint64_t tokens() const { return tokens_; }

  // The text that can be framed now: all of it when `final`, else all but an incomplete trailing
  // character. Call take() with the length actually framed.
  std::string_view ready(bool final) const;
  // Removes the first `length` bytes and returns how many deltas that piece completes (a delta whose
  // last bytes are held back is counted with the piece that carries them).
  uint64_t take(size_t length);

 private:
  std::string text_;
  uint64_t tokens_ = 0;
  // End offsets (in text_) of the last deltas. Held-back bytes are at most 3, so at most the last
  // 3 deltas can end inside them: remembering 4 ends is enough to count exactly.
  static constexpr size_t kRecent = 4;
  size_t recent_ends_[kRecent] = {};
  size_t recent_count_ = 0;
};

}  // namespace chatstream::sse
