#include "flags.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace chatstream::bench {

bool FlagParser::fail(std::string_view flag, const char* why) const {
  std::fprintf(stderr, "%s: %.*s: %s\n%s", tool_, static_cast<int>(flag.size()), flag.data(), why, usage_);
  return false;
}

bool FlagParser::number(std::string_view flag, const char* text, double min, double& out, double max) const {
  char* end = nullptr;
  double value = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(value) || value < min || value > max) {
    return fail(flag, "expects a number in range");
  }
  out = value;
  return true;
}

}  // namespace chatstream::bench
