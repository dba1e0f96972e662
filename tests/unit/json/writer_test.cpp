#include "json/writer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

namespace chatstream::json {
namespace {

using namespace std::string_literals;

std::string as_json(std::string_view text) {
  std::string out;
  append_string(out, text);
  return out;
}

template <typename T>
std::string number(T value) {
  std::string out;
  append_number(out, value);
  return out;
}

TEST(AppendString, QuotesPlainText) {
  EXPECT_EQ(as_json(""), R"("")");
  EXPECT_EQ(as_json("hello world"), R"("hello world")");
  EXPECT_EQ(as_json("/ and ' and \x7F stay"), "\"/ and ' and \x7F stay\"");
}

TEST(AppendString, AppendsWithoutTouchingWhatIsAlreadyThere) {
  std::string out = "prefix:";
  append_string(out, "x");
  EXPECT_EQ(out, "prefix:\"x\"");
}

TEST(AppendString, EscapesQuoteAndBackslash) {
  EXPECT_EQ(as_json(R"(say "hi")"), R"("say \"hi\"")");
  EXPECT_EQ(as_json(R"(C:\path\)"), R"("C:\\path\\")");
  EXPECT_EQ(as_json(R"("\")"), R"("\"\\\"")");
}

TEST(AppendString, EscapesControlCharactersWithShortForms) {
  EXPECT_EQ(as_json("a\nb"), R"("a\nb")");
  EXPECT_EQ(as_json("a\rb"), R"("a\rb")");
  EXPECT_EQ(as_json("a\tb"), R"("a\tb")");
  EXPECT_EQ(as_json("a\bb"), R"("a\bb")");
  EXPECT_EQ(as_json("a\fb"), R"("a\fb")");
  EXPECT_EQ(as_json("\n\r\t\b\f"), R"("\n\r\t\b\f")");
}

TEST(AppendString, EscapesOtherControlCharactersAsUnicode) {
  EXPECT_EQ(as_json("\0"s), R"("\u0000")");
  EXPECT_EQ(as_json("\x01"), R"("\u0001")");
  EXPECT_EQ(as_json("\x0B"), R"("\u000b")");
  EXPECT_EQ(as_json("\x1B[0m"), R"("\u001b[0m")");
  EXPECT_EQ(as_json("\x1F"), R"("\u001f")");
  EXPECT_EQ(as_json("a\0b"s), R"("a\u0000b")");
}

TEST(AppendString, EscapesEveryControlCharacter) {
  for (int c = 0; c < 0x20; ++c) {
    std::string out = as_json(std::string(1, static_cast<char>(c)));
    ASSERT_GE(out.size(), 4u) << "byte " << c;
    EXPECT_EQ(out[1], '\\') << "byte " << c;
    for (char byte : out) EXPECT_GE(static_cast<unsigned char>(byte), 0x20) << "byte " << c;
  }
}

TEST(AppendString, PassesWellFormedMultiByteCharactersThrough) {
  EXPECT_EQ(as_json("caf\xC3\xA9"), "\"caf\xC3\xA9\"");              // 2 bytes
  EXPECT_EQ(as_json("5\xE2\x82\xAC"), "\"5\xE2\x82\xAC\"");          // 3 bytes
  EXPECT_EQ(as_json("\xF0\x9F\x98\x80!"), "\"\xF0\x9F\x98\x80!\"");  // 4 bytes
  EXPECT_EQ(as_json("\xE4\xB8\xAD\xE6\x96\x87"), "\"\xE4\xB8\xAD\xE6\x96\x87\"");
  EXPECT_EQ(as_json("\xF4\x8F\xBF\xBF"), "\"\xF4\x8F\xBF\xBF\"");  // U+10FFFF
  EXPECT_EQ(as_json("\xC3\xA9\n\"\xE2\x82\xAC"), "\"\xC3\xA9\\n\\\"\xE2\x82\xAC\"");
}

TEST(AppendString, ReplacesALoneContinuationByte) {
  EXPECT_EQ(as_json("a\x80z"), R"("a\ufffdz")");
  EXPECT_EQ(as_json("\xBF"), R"("\ufffd")");
}

TEST(AppendString, ReplacesOverlongForms) {
  EXPECT_EQ(as_json("\xC0\xAF"), R"("\ufffd\ufffd")");
  EXPECT_EQ(as_json("\xC1\xBF"), R"("\ufffd\ufffd")");
  EXPECT_EQ(as_json("\xE0\x80\xAF"), R"("\ufffd\ufffd\ufffd")");
  EXPECT_EQ(as_json("\xF0\x80\x80\xAF"), R"("\ufffd\ufffd\ufffd\ufffd")");
}

TEST(AppendString, ReplacesEncodedSurrogates) {
  EXPECT_EQ(as_json("\xED\xA0\x80"), R"("\ufffd\ufffd\ufffd")");  // U+D800
  EXPECT_EQ(as_json("x\xED\xBF\xBFy"), R"("x\ufffd\ufffd\ufffdy")");
}

TEST(AppendString, ReplacesBytesThatNeverStartACharacter) {
  EXPECT_EQ(as_json("\xF5\x80\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");
  EXPECT_EQ(as_json("\xF4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // above U+10FFFF
  EXPECT_EQ(as_json("a\xFFz"), R"("a\ufffdz")");
  EXPECT_EQ(as_json("\xFE"), R"("\ufffd")");
}

TEST(AppendString, ReplacesATruncatedSequence) {
  EXPECT_EQ(as_json("end \xE2\x82"), R"("end \ufffd\ufffd")");
  EXPECT_EQ(as_json("end \xF0\x9F\x98"), R"("end \ufffd\ufffd\ufffd")");
  EXPECT_EQ(as_json("\xC3"), R"("\ufffd")");
  EXPECT_EQ(as_json("\xC3 next"), R"("\ufffd next")");
}

TEST(AppendString, KeepsValidTextAroundInvalidBytes) {
  EXPECT_EQ(as_json("\xC3\xA9\x80\xC3\xA9"), "\"\xC3\xA9\\ufffd\xC3\xA9\"");
}

TEST(AppendNumber, WritesIntegersExactly) {
  EXPECT_EQ(number(0), "0");
  EXPECT_EQ(number(-42), "-42");
  EXPECT_EQ(number(int64_t{-9223372036854775807 - 1}), "-9223372036854775808");
  EXPECT_EQ(number(std::numeric_limits<uint64_t>::max()), "18446744073709551615");
  EXPECT_EQ(number(std::numeric_limits<int>::min()), "-2147483648");
}

TEST(AppendNumber, WritesDoublesWithAtMostThreeDecimals) {
  EXPECT_EQ(number(1.5), "1.5");
  EXPECT_EQ(number(1.25), "1.25");
  EXPECT_EQ(number(0.125), "0.125");
  EXPECT_EQ(number(2.3456), "2.346");
  EXPECT_EQ(number(1234.5678), "1234.568");
  EXPECT_EQ(number(-7.25), "-7.25");
}

TEST(AppendNumber, TrimsTrailingZerosAndTheDecimalPoint) {
  EXPECT_EQ(number(2.0), "2");
  EXPECT_EQ(number(0.0), "0");
  EXPECT_EQ(number(100.0), "100");
  EXPECT_EQ(number(10.5), "10.5");
  EXPECT_EQ(number(1.0001), "1");  // rounds to 1.000
  EXPECT_EQ(number(0.0004), "0");
  EXPECT_EQ(number(0.0996), "0.1");
  EXPECT_EQ(number(9.9996), "10");
}

TEST(AppendNumber, WritesNonFiniteDoublesAsNull) {
  EXPECT_EQ(number(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(number(-std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(number(std::numeric_limits<double>::quiet_NaN()), "null");
}

// Non-printable bytes as \xNN, for failure messages.
std::string printable(std::string_view text) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F) {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    }
  }
  return out;
}

// Every finite double must come out as a JSON number that reads back as the same value, however large.
TEST(AppendNumber, WritesLargeDoublesAsNumbers) {
  for (double value : {1e20, 1e50, -1e100, 1e300, std::numeric_limits<double>::max()}) {
    std::string text = number(value);
    ASSERT_FALSE(text.empty()) << value;
    EXPECT_EQ(text.find_first_not_of("-0123456789.eE+"), std::string::npos)
        << value << " -> " << printable(text);
    char* end = nullptr;
    double parsed = std::strtod(text.c_str(), &end);
    EXPECT_EQ(end, text.c_str() + text.size()) << value << " -> " << printable(text);
    EXPECT_DOUBLE_EQ(parsed, value) << value << " -> " << printable(text);
  }
}

TEST(Object, BuildsAnEmptyObject) {
  std::string out;
  Object(out).close();
  EXPECT_EQ(out, "{}");
}

TEST(Object, WritesFieldsOfEveryTypeInOrder) {
  std::string out;
  Object o(out);
  o.field("s", "text")
      .field("view", std::string_view("v"))
      .field("i", 7)
      .field("i64", int64_t{-3})
      .field("u64", uint64_t{18})
      .field("d", 1.5)
      .field("yes", true)
      .field("no", false)
      .raw("list", "[1,2]");
  o.close();
  EXPECT_EQ(out,
            R"({"s":"text","view":"v","i":7,"i64":-3,"u64":18,"d":1.5,"yes":true,"no":false,"list":[1,2]})");
}

TEST(Object, EscapesKeysAndValues) {
  std::string out;
  Object o(out);
  o.field("quote\"key", "line\nbreak");
  o.close();
  EXPECT_EQ(out, R"({"quote\"key":"line\nbreak"})");
}

TEST(Object, NestsThroughRaw) {
  std::string inner;
  Object(inner).field("a", 1).close();
  std::string out;
  Object(out).raw("inner", inner).field("b", "x").close();
  EXPECT_EQ(out, R"({"inner":{"a":1},"b":"x"})");
}

TEST(Object, ConstCharValueIsAStringNotABool) {
  std::string out;
  const char* value = "yes";
  Object(out).field("k", value).close();
  EXPECT_EQ(out, R"({"k":"yes"})");
}

}  // namespace
}  // namespace chatstream::json
