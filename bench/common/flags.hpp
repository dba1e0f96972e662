// Command-line flags of the bench tools (sseload, fake-llm): one way to refuse a bad flag — "<tool>:
// <flag>: <why>" and the usage text on stderr — and to read numbers bounded to a range.
#pragma once

#include <charconv>
#include <limits>
#include <string_view>
#include <system_error>

namespace chatstream::bench {

class FlagParser {
 public:
  FlagParser(const char* tool, const char* usage) : tool_(tool), usage_(usage) {}

  // Prints the complaint and the usage; always false, so a parser can `return fail(...)`.
  bool fail(std::string_view flag, const char* why) const;

  // A finite decimal number in [min, max], the whole text.
  bool number(std::string_view flag, const char* text, double min, double& out,
              double max = std::numeric_limits<double>::max()) const;

  // A decimal integer in [min, max], the whole text.
  template <typename Integer>
  bool integer(std::string_view flag, std::string_view text, Integer min, Integer max, Integer& out) const {
    Integer value{};
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size() || value < min || value > max) {
      return fail(flag, "expects an integer in range");
    }
    out = value;
    return true;
  }

 private:
  const char* tool_;
  const char* usage_;
};

}  // namespace chatstream::bench
