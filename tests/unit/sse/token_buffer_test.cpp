#include "sse/token_buffer.hpp"

#include <gtest/gtest.h>

#include <string>

namespace chatstream::sse {
namespace {

TEST(TokenBuffer, StartsEmpty) {
  TokenBuffer buffer;
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.tokens(), 0u);
  EXPECT_EQ(buffer.ready(false), "");
  EXPECT_EQ(buffer.ready(true), "");
}

TEST(TokenBuffer, MergesDeltasInOrder) {
  TokenBuffer buffer;
  buffer.add("Hello");
  buffer.add(", ");
  buffer.add("world");
  EXPECT_EQ(buffer.size(), 12u);
  EXPECT_EQ(buffer.tokens(), 3u);
  EXPECT_EQ(buffer.ready(false), "Hello, world");
}

TEST(TokenBuffer, TakeOfEverythingCountsEveryDeltaAndEmptiesTheBuffer) {
  TokenBuffer buffer;
  buffer.add("t0 ");
  buffer.add("t1 ");
  buffer.add("t2 ");
  EXPECT_EQ(buffer.take(buffer.ready(false).size()), 3u);
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.tokens(), 0u);
  buffer.add("t3 ");
  EXPECT_EQ(buffer.ready(false), "t3 ");
  EXPECT_EQ(buffer.take(3), 1u);
}

TEST(TokenBuffer, HoldsBackACharacterSplitAcrossTwoDeltas) {
  TokenBuffer buffer;
  buffer.add("caf\xC3");  // é = C3 A9, cut after its first byte
  EXPECT_EQ(buffer.ready(false), "caf");

  // The piece "caf" does not complete the delta: its last byte is still held back.
  EXPECT_EQ(buffer.take(3), 0u);
  EXPECT_EQ(buffer.size(), 1u);
  EXPECT_EQ(buffer.tokens(), 1u);
  EXPECT_EQ(buffer.ready(false), "");

  buffer.add("\xA9 ok");
  EXPECT_EQ(buffer.ready(false), "\xC3\xA9 ok");
  EXPECT_EQ(buffer.take(buffer.ready(false).size()), 2u);
  EXPECT_TRUE(buffer.empty());
}

TEST(TokenBuffer, HoldsBackUntilTheLastByteOfAFourByteCharacter) {
  TokenBuffer buffer;
  buffer.add("x\xF0");
  EXPECT_EQ(buffer.ready(false), "x");
  buffer.add("\x9F");
  EXPECT_EQ(buffer.ready(false), "x");
  buffer.add("\x98");
  EXPECT_EQ(buffer.ready(false), "x");
  buffer.add("\x80y");
  EXPECT_EQ(buffer.ready(false), "x\xF0\x9F\x98\x80y");
}

// The header: "a delta whose last bytes are held back is counted with the piece that carries them".
// When a character is spread over several deltas, every one of them ends in held-back bytes, so the
// piece before the character completes none of them and the piece carrying it completes all of them.
TEST(TokenBuffer, CountsEveryDeltaOfACharacterSplitAcrossSeveralDeltasWithThePieceThatCarriesIt) {
  TokenBuffer buffer;
  buffer.add("a\xF0");  // 😀 = F0 9F 98 80, one byte per delta (byte-level tokenizers do this)
  buffer.add("\x9F");
  buffer.add("\x98");
  ASSERT_EQ(buffer.ready(false), "a");
  EXPECT_EQ(buffer.take(1), 0u);
  EXPECT_EQ(buffer.tokens(), 3u);

  buffer.add("\x80");
  ASSERT_EQ(buffer.ready(false), "\xF0\x9F\x98\x80");
  EXPECT_EQ(buffer.take(4), 4u);
}

TEST(TokenBuffer, TakeOfPartOfTheTextCountsOnlyTheDeltasItCompletes) {
  TokenBuffer buffer;
  buffer.add("ab");
  buffer.add("cd");
  buffer.add("ef");
  EXPECT_EQ(buffer.take(3), 1u);  // "abc": "ab" is complete, "cd" is not
  EXPECT_EQ(buffer.tokens(), 2u);
  EXPECT_EQ(buffer.ready(false), "def");
  EXPECT_EQ(buffer.take(1), 1u);  // "d" completes "cd"
  EXPECT_EQ(buffer.take(2), 1u);
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.tokens(), 0u);
}

// Whatever the split, the counts of all pieces add up to the number of deltas.
TEST(TokenBuffer, CountsOfAllPiecesAddUpToTheDeltas) {
  const std::string text = "na\xC3\xAFve \xE2\x82\xAC \xF0\x9F\x98\x80 end";
  for (size_t step = 1; step <= 5; ++step) {
    TokenBuffer buffer;
    std::string framed;
    uint64_t counted = 0;
    uint64_t deltas = 0;
    for (size_t i = 0; i < text.size(); i += step) {
      buffer.add(std::string_view(text).substr(i, step));
      ++deltas;
      std::string_view piece = buffer.ready(false);
      framed.append(piece);
      counted += buffer.take(piece.size());
    }
    std::string_view rest = buffer.ready(true);
    framed.append(rest);
    counted += buffer.take(rest.size());
    EXPECT_EQ(framed, text) << "step " << step;
    EXPECT_EQ(counted, deltas) << "step " << step;
    EXPECT_TRUE(buffer.empty());
  }
}

TEST(TokenBuffer, FinalReleasesAnIncompleteCharacter) {
  TokenBuffer buffer;
  buffer.add("end \xE2\x82");
  EXPECT_EQ(buffer.ready(false), "end ");
  EXPECT_EQ(buffer.ready(true), "end \xE2\x82");
  EXPECT_EQ(buffer.take(buffer.ready(true).size()), 1u);
  EXPECT_TRUE(buffer.empty());
}

TEST(TokenBuffer, DoesNotHoldBackBytesThatCanNeverBecomeValid) {
  TokenBuffer buffer;
  buffer.add("bad \x80");
  EXPECT_EQ(buffer.ready(false), "bad \x80");
  buffer.add("\xC0");
  EXPECT_EQ(buffer.ready(false), "bad \x80\xC0");
}

}  // namespace
}  // namespace chatstream::sse
