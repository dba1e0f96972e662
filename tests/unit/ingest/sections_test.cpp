#include "ingest/sections.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "json/utf8.hpp"

namespace chatstream::ingest::detail {
namespace {

std::string paragraph(size_t bytes, const std::string& word = "word") {
  std::string p;
  while (p.size() + word.size() + 1 <= bytes) p += (p.empty() ? "" : " ") + word;
  return p;
}

// The words of a text, whatever separates them.
std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  for (char c : text) {
    if (c == ' ' || c == '\n') {
      if (!current.empty()) out.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) out.push_back(current);
  return out;
}

TEST(Chunk, OneChunkPerSmallSectionWithItsHeading) {
  std::vector<Chunk> chunks =
      chunk_sections({{"", {"Intro."}}, {"A", {"One.", "Two."}}, {"Empty", {}}, {"B", {"Three."}}});
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].heading, "");
  EXPECT_EQ(chunks[1].heading, "A");
  EXPECT_EQ(chunks[1].content, "One.\n\nTwo.");
  EXPECT_EQ(chunks[2].heading, "B");
}

TEST(Chunk, SplitsALongSectionIntoBalancedChunksBetweenParagraphs) {
  // 1,300 bytes in four paragraphs: two chunks of about half each, not 1,200 + 100.
  std::vector<std::string> paragraphs = {paragraph(320), paragraph(330), paragraph(310), paragraph(330)};
  std::vector<Chunk> chunks = chunk_sections({{"S", paragraphs}});
  ASSERT_EQ(chunks.size(), 2u);
  for (const Chunk& c : chunks) {
    EXPECT_EQ(c.heading, "S");
    EXPECT_LE(c.content.size(), kMaxChunkBytes);
    EXPECT_GE(c.content.size(), 500u);
  }
  EXPECT_EQ(chunks[0].content, paragraphs[0] + "\n\n" + paragraphs[1]);
  EXPECT_EQ(chunks[1].content, paragraphs[2] + "\n\n" + paragraphs[3]);
}

TEST(Chunk, CutsAnOversizedParagraphAtSentenceEndsNeverMidWord) {
  std::string text;
  for (int i = 0; text.size() < 5000; ++i)
    text += "Sentence number " + std::to_string(i) + " says something useful here. ";
  text.pop_back();
  std::vector<Chunk> chunks = chunk_sections({{"S", {text}}});
  ASSERT_GE(chunks.size(), 5u);
  std::string joined;
  for (const Chunk& c : chunks) {
    EXPECT_LE(c.content.size(), kMaxChunkBytes);
    EXPECT_TRUE(c.content.ends_with('.')) << c.content.substr(c.content.size() - 20);
    joined += (joined.empty() ? "" : " ") + c.content;
  }
  EXPECT_EQ(words(joined), words(text));
}

TEST(Chunk, CutsPreformattedTextBetweenLines) {
  std::string code;
  for (int i = 0; i < 80; ++i) code += "    SELECT column_" + std::to_string(i) + " FROM t;\n";
  code.pop_back();
  std::vector<Chunk> chunks = chunk_sections({{"S", {code}}});
  ASSERT_GE(chunks.size(), 2u);
  std::string joined;
  for (const Chunk& c : chunks) {
    EXPECT_LE(c.content.size(), kMaxChunkBytes);
    EXPECT_TRUE(c.content.ends_with(';'));
    EXPECT_TRUE(c.content.starts_with("SELECT") || c.content.starts_with("    SELECT"));
    joined += (joined.empty() ? "" : "\n") + c.content;
  }
  EXPECT_EQ(words(joined), words(code));
}

TEST(Chunk, KeepsACodeBlockWholeAndWithTheSentenceAnnouncingIt) {
  // A listing of 1,500 bytes, over the chunk size but under the code limit, after a long paragraph that
  // ends by announcing it: neither is cut, and they share a chunk.
  std::string code;
  for (int i = 0; code.size() < 1500; ++i) code += "INSERT INTO t VALUES (" + std::to_string(i) + ", 'x');\n";
  std::string fenced = fence_code(code);
  ASSERT_TRUE(is_fenced(fenced));
  std::string lead = paragraph(600) + " as follows:";
  std::vector<Chunk> chunks = chunk_sections({{"S", {paragraph(900), lead, fenced, "After."}}});
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[1].content, lead + "\n\n" + fenced);
  EXPECT_EQ(chunks[2].content, "After.");
}

TEST(Chunk, CutsAnOversizedCodeBlockBetweenStatementsEachFenced) {
  std::string code;
  for (int i = 0; i < 300; ++i) code += "SELECT column_" + std::to_string(i) + "\n  FROM t;\n";
  std::vector<Chunk> chunks = chunk_sections({{"S", {fence_code(code)}}});
  ASSERT_GE(chunks.size(), 4u);
  std::string joined;
  for (const Chunk& c : chunks) {
    EXPECT_LE(c.content.size(), kMaxChunkBytes + 8);  // the fences
    EXPECT_TRUE(is_fenced(c.content)) << c.content;
    EXPECT_TRUE(c.content.ends_with(";\n```")) << c.content;  // never mid-statement
    joined += c.content.substr(4, c.content.size() - 8) + "\n";
  }
  EXPECT_EQ(joined, code);
}

// Found by the ingest_html fuzz target: one line of a listing longer than the code limit made a chunk
// of the whole line (tests/fuzz/corpus/ingest_html/long_h1.html).
TEST(Chunk, CutsAnOversizedLineOfCode) {
  std::string line;
  for (int i = 0; i < 1500; ++i) line += "\xC3\xA9 x";
  std::vector<Chunk> chunks = chunk_sections({{"S", {fence_code("short;\n" + line + "\nend;")}}});
  ASSERT_GE(chunks.size(), 2u);
  for (const Chunk& c : chunks) {
    EXPECT_LE(c.content.size(), kMaxChunkBytes + 8);
    EXPECT_TRUE(is_fenced(c.content)) << c.content.substr(0, 80);
  }
}

TEST(Chunk, FencesAreLongerThanTheBackticksInside) {
  EXPECT_EQ(fence_code("\n  a\n\n"), "```\n  a\n```");
  EXPECT_EQ(fence_code("x ```` y"), "`````\nx ```` y\n`````");
  EXPECT_EQ(fence_code(" \n "), "");
  EXPECT_FALSE(is_fenced("```\nunclosed"));
  EXPECT_FALSE(is_fenced("text ```\na\n```"));
}

TEST(Chunk, CutsAGiantWordBetweenUtf8Characters) {
  std::string word;
  while (word.size() < 3000) word += "\xE2\x82\xAC\xC3\xA9x";  // €éx: 3 + 2 + 1 bytes
  std::vector<Chunk> chunks = chunk_sections({{"S", {word}}});
  ASSERT_GE(chunks.size(), 3u);
  std::string joined;
  for (const Chunk& c : chunks) {
    EXPECT_LE(c.content.size(), kMaxChunkBytes);
    EXPECT_TRUE(json::is_valid_utf8(c.content));
    joined += c.content;
  }
  EXPECT_EQ(joined, word);
}

TEST(Chunk, CleansText) {
  const char raw[] = "a\0b\r\nc\rd\x01\x7F\xFF\xC2\x9F\xC2\xA0";
  EXPECT_EQ(clean_text(std::string_view(raw, sizeof(raw) - 1)), "ab\nc\nd\x7F\xEF\xBF\xBD ");
  EXPECT_EQ(clean_text("11.2.\xC2\xA0Index\xE2\x80\xAFTypes\xE2\x80\x89x\xE2\x80\x8By"),
            "11.2. Index Types x\xE2\x80\x8By");
  EXPECT_EQ(collapse_whitespace("  a \t\n b  "), "a b");
  EXPECT_EQ(trim_lines("\n\n  x  \n\n\n\ny\t\n\n"), "  x\n\ny");
}

}  // namespace
}  // namespace chatstream::ingest::detail
