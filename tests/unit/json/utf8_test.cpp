#include "json/utf8.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace chatstream::json {
namespace {

using namespace std::string_literals;

// One character of each encoded length.
const std::string k2Byte = "\xC3\xA9";          // é U+00E9
const std::string k3Byte = "\xE2\x82\xAC";      // € U+20AC
const std::string k4Byte = "\xF0\x9F\x98\x80";  // 😀 U+1F600

TEST(Utf8SequenceLength, CountsBytesOfWellFormedCharacters) {
  EXPECT_EQ(utf8_sequence_length("a"), 1u);
  EXPECT_EQ(utf8_sequence_length(k2Byte), 2u);
  EXPECT_EQ(utf8_sequence_length(k3Byte), 3u);
  EXPECT_EQ(utf8_sequence_length(k4Byte), 4u);
  EXPECT_EQ(utf8_sequence_length("\xF4\x8F\xBF\xBF"), 4u);  // U+10FFFF, the last code point
  EXPECT_EQ(utf8_sequence_length("\xEF\xBF\xBF"), 3u);      // U+FFFF
}

TEST(Utf8SequenceLength, IsZeroForIllFormedOrTruncatedSequences) {
  EXPECT_EQ(utf8_sequence_length(""), 0u);
  EXPECT_EQ(utf8_sequence_length("\x80"), 0u);              // lone continuation
  EXPECT_EQ(utf8_sequence_length("\xC0\xAF"), 0u);          // overlong '/'
  EXPECT_EQ(utf8_sequence_length("\xC1\xBF"), 0u);          // overlong
  EXPECT_EQ(utf8_sequence_length("\xE0\x80\xAF"), 0u);      // overlong 3-byte
  EXPECT_EQ(utf8_sequence_length("\xF0\x80\x80\xAF"), 0u);  // overlong 4-byte
  EXPECT_EQ(utf8_sequence_length("\xED\xA0\x80"), 0u);      // U+D800, a surrogate
  EXPECT_EQ(utf8_sequence_length("\xF4\x90\x80\x80"), 0u);  // U+110000
  EXPECT_EQ(utf8_sequence_length("\xF5\x80\x80\x80"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xFF"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xC3"), 0u);  // truncated
  EXPECT_EQ(utf8_sequence_length("\xE2\x82"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xC3\x41"), 0u);  // continuation missing
  EXPECT_EQ(utf8_sequence_length("\xE2\x82\x41"), 0u);
}

TEST(IsValidUtf8, AcceptsWellFormedText) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ASCII text that is longer than eight bytes"));
  EXPECT_TRUE(is_valid_utf8("caf" + k2Byte + " costs 5" + k3Byte + " " + k4Byte));
  EXPECT_TRUE(is_valid_utf8(k4Byte + k4Byte + k3Byte + k2Byte));
  EXPECT_TRUE(is_valid_utf8("nul \0 inside"s));
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));  // U+D7FF, just below the surrogates
  EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));  // U+E000, just above them
}

TEST(IsValidUtf8, RejectsIllFormedText) {
  EXPECT_FALSE(is_valid_utf8("\x80"));
  EXPECT_FALSE(is_valid_utf8("ab\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC1\x81"));
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xE0\x9F\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xF0\x8F\xBF\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xF8\x88\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xFE"));
  EXPECT_FALSE(is_valid_utf8("text then \xE2\x82"));  // truncated at the end
  EXPECT_FALSE(is_valid_utf8("\xC3 a"));
}

// The ASCII fast path reads eight bytes at a time: a bad byte must be found wherever it sits relative
// to those words, including in the tail shorter than a word.
TEST(IsValidUtf8, FindsABadByteAtEveryOffsetOfALongAsciiRun) {
  for (size_t length : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 63u, 64u, 100u}) {
    for (size_t offset = 0; offset < length; ++offset) {
      std::string text(length, 'x');
      text[offset] = '\xFF';
      EXPECT_FALSE(is_valid_utf8(text)) << "length " << length << " bad byte at " << offset;
      text[offset] = '\x80';
      EXPECT_FALSE(is_valid_utf8(text)) << "length " << length << " continuation at " << offset;
    }
  }
}

TEST(IsValidUtf8, AcceptsAMultiByteCharacterAtEveryOffsetOfALongAsciiRun) {
  for (const std::string& character : {k2Byte, k3Byte, k4Byte}) {
    for (size_t offset = 0; offset <= 40; ++offset) {
      std::string text = std::string(offset, 'x') + character + std::string(40 - offset, 'y');
      EXPECT_TRUE(is_valid_utf8(text)) << "offset " << offset;
      // The same character cut short is invalid wherever it sits.
      std::string cut = std::string(offset, 'x') + character.substr(0, character.size() - 1) + "y";
      EXPECT_FALSE(is_valid_utf8(cut)) << "offset " << offset;
    }
  }
}

TEST(IsValidUtf8, FindsABadByteAfterValidMultiByteCharacters) {
  std::string text = k4Byte + std::string(20, 'a') + k2Byte + std::string(13, 'b');
  ASSERT_TRUE(is_valid_utf8(text));
  EXPECT_FALSE(is_valid_utf8(text + "\xC0"));
  EXPECT_FALSE(is_valid_utf8(text + std::string(9, 'c') + "\xED\xA0\x80" + std::string(9, 'd')));
}

TEST(CompleteUtf8Prefix, ReturnsTheWholeOfCompleteText) {
  EXPECT_EQ(complete_utf8_prefix(""), 0u);
  EXPECT_EQ(complete_utf8_prefix("hello"), 5u);
  for (const std::string& character : {k2Byte, k3Byte, k4Byte}) {
    EXPECT_EQ(complete_utf8_prefix(character), character.size());
    EXPECT_EQ(complete_utf8_prefix("ab" + character), character.size() + 2);
    EXPECT_EQ(complete_utf8_prefix(character + "z"), character.size() + 1);
  }
}

TEST(CompleteUtf8Prefix, HoldsBackACharacterCutAfterAnyOfItsBytes) {
  for (const std::string& character : {k2Byte, k3Byte, k4Byte}) {
    for (size_t kept = 1; kept < character.size(); ++kept) {
      std::string text = "abc" + character.substr(0, kept);
      EXPECT_EQ(complete_utf8_prefix(text), 3u) << character.size() << "-byte char cut after " << kept;
      // With nothing before it.
      EXPECT_EQ(complete_utf8_prefix(character.substr(0, kept)), 0u);
      // After another multi-byte character.
      EXPECT_EQ(complete_utf8_prefix(k2Byte + character.substr(0, kept)), 2u);
    }
  }
}

TEST(CompleteUtf8Prefix, HoldsBackCutsOfTheSpecialLeadBytes) {
  EXPECT_EQ(complete_utf8_prefix("a\xE0"), 1u);  // E0 needs A0..BF next
  EXPECT_EQ(complete_utf8_prefix("a\xE0\xA0"), 1u);
  EXPECT_EQ(complete_utf8_prefix("a\xED"), 1u);  // ED needs 80..9F next
  EXPECT_EQ(complete_utf8_prefix("a\xED\x9F"), 1u);
  EXPECT_EQ(complete_utf8_prefix("a\xF0"), 1u);  // F0 needs 90..BF next
  EXPECT_EQ(complete_utf8_prefix("a\xF0\x90\x80"), 1u);
  EXPECT_EQ(complete_utf8_prefix("a\xF4\x8F"), 1u);  // F4 needs 80..8F next
}

TEST(CompleteUtf8Prefix, DoesNotHoldBackBytesThatCanNeverBecomeValid) {
  EXPECT_EQ(complete_utf8_prefix("a\x80"), 2u);  // lone continuation
  EXPECT_EQ(complete_utf8_prefix("a\x80\x80\x80"), 4u);
  EXPECT_EQ(complete_utf8_prefix("a\xC0"), 2u);  // C0/C1 only start overlongs
  EXPECT_EQ(complete_utf8_prefix("a\xC1"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a\xE0\x80"), 3u);  // overlong
  EXPECT_EQ(complete_utf8_prefix("a\xED\xA0"), 3u);  // surrogate
  EXPECT_EQ(complete_utf8_prefix("a\xF0\x80"), 3u);  // overlong
  EXPECT_EQ(complete_utf8_prefix("a\xF4\x90"), 3u);  // above U+10FFFF
  EXPECT_EQ(complete_utf8_prefix("a\xF5"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a\xFF"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a\xE2\x41"), 3u);  // lead followed by ASCII
}

}  // namespace
}  // namespace chatstream::json
