// The header lines of one HTTP message (request or response) as llhttp reports them: a name or a
// value may arrive in several pieces (a read can end anywhere), so the pieces are joined here and each
// complete header is handed on once; the whole head (start line and headers) is bounded.
//
// Names longer than kMaxNameBytes are kept cut (the bench tools compare names with short known
// ones, so a cut name matches nothing); values are kept whole, within the head bound.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace chatstream::bench {

class HeaderReader {
 public:
  static constexpr size_t kMaxNameBytes = 32;

  explicit HeaderReader(size_t max_head_bytes) : max_head_bytes_(max_head_bytes) {}

  // At the start of each message.
  void reset() {
    name_.clear();
    value_.clear();
    head_bytes_ = 0;
  }
  // Bytes of the start line (URL, status text): counted against the bound. False once over it.
  bool count(size_t length) {
    head_bytes_ += length;
    return head_bytes_ <= max_head_bytes_;
  }
  bool on_name(std::string_view piece) {
    if (!count(piece.size())) return false;
    name_.append(piece.substr(0, kMaxNameBytes - std::min(kMaxNameBytes, name_.size())));
    return true;
  }
  bool on_value(std::string_view piece) {
    if (!count(piece.size())) return false;
    value_.append(piece);
    return true;
  }
  // At llhttp's on_header_value_complete: calls use(name, value) with the complete header, then
  // forgets it.
  template <typename Use>
  void complete(Use&& use) {
    use(std::string_view(name_), std::string_view(value_));
    name_.clear();
    value_.clear();
  }

 private:
  std::string name_;
  std::string value_;
  size_t head_bytes_ = 0;
  size_t max_head_bytes_;
};

}  // namespace chatstream::bench
