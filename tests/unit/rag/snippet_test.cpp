#include "rag/snippet.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "json/utf8.hpp"
#include "rag/text.hpp"

namespace chatstream::rag {
namespace {

const std::string kEllipsis = "\xE2\x80\xA6";

size_t code_points(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    size_t length;
    decode_utf8(s.substr(i), length);
    i += length;
    ++n;
  }
  return n;
}

Passage passage(std::string content) {
  return Passage{1, "T", "s", "", std::move(content), 0};
}

TEST(RagSnippet, ShortContentIsReturnedWholeWithWhitespaceCollapsed) {
  EXPECT_EQ(make_snippet(passage("  VACUUM  reclaims\n\nstorage. \t"), {"vacuum"}, 100),
            "VACUUM reclaims storage.");
  EXPECT_EQ(make_snippet(passage(""), {"vacuum"}, 100), "");
  EXPECT_EQ(make_snippet(passage("text"), {"text"}, 0), "");
}

TEST(RagSnippet, CentresOnTheWindowWithTheMostDistinctTerms) {
  std::string content =
      "The first sentence talks about tables and nothing else of interest here. "
      "The second sentence is about memory in general terms only. "
      "Later, work_mem sets the memory used by a sort before it spills to disk. "
      "The last sentence is about something else entirely, like logging.";
  std::string snippet = make_snippet(passage(content), terms("sort memory disk"), 90);
  EXPECT_NE(snippet.find("work_mem sets the memory used by a sort"), std::string::npos) << snippet;
  EXPECT_TRUE(snippet.starts_with(kEllipsis)) << snippet;
  EXPECT_LE(code_points(snippet), 90u);
}

TEST(RagSnippet, StartsAtTheSentenceWhenItFits) {
  std::string content = std::string(200, 'x') +
                        " filler words. Checkpoints are written by the checkpointer "
                        "process. " +
                        std::string(300, 'y');
  std::string snippet = make_snippet(passage(content), terms("checkpointer"), 80);
  EXPECT_TRUE(snippet.starts_with(kEllipsis + "Checkpoints are written")) << snippet;
  EXPECT_TRUE(snippet.ends_with(kEllipsis)) << snippet;
}

TEST(RagSnippet, WithoutAMatchTakesTheBeginning) {
  std::string content = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu.";
  std::string snippet = make_snippet(passage(content), terms("omega"), 30);
  EXPECT_TRUE(snippet.starts_with("Alpha beta")) << snippet;
  EXPECT_TRUE(snippet.ends_with(kEllipsis)) << snippet;
  EXPECT_LE(code_points(snippet), 30u);
}

TEST(RagSnippet, CutsOnlyBetweenWords) {
  std::string content = "one two three four five six seven eight nine ten eleven twelve thirteen";
  for (size_t max = 5; max < content.size(); ++max) {
    std::string snippet = make_snippet(passage(content), terms("seven"), max);
    SCOPED_TRACE(snippet);
    EXPECT_LE(code_points(snippet), max);
    // Every word of the snippet is a whole word of the content.
    std::string inner = snippet;
    if (inner.starts_with(kEllipsis)) inner.erase(0, kEllipsis.size());
    if (inner.ends_with(kEllipsis)) inner.erase(inner.size() - kEllipsis.size());
    EXPECT_NE((" " + content + " ").find(" " + inner + " "), std::string::npos);
  }
}

TEST(RagSnippet, NeverCutsAMultiByteCharacter) {
  // Words of 2-, 3- and 4-byte characters around the match, every budget from 1 to past the end.
  std::string content =
      "d\xC3\xA9j\xC3\xA0 \xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC \xF0\x9F\x98\x80\xF0\x9F\x98\x80 caf\xC3\xA9 "
      "index \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9 fin";
  for (size_t max = 1; max < 80; ++max) {
    std::string snippet = make_snippet(passage(content), terms("index"), max);
    SCOPED_TRACE(max);
    EXPECT_TRUE(json::is_valid_utf8(snippet)) << snippet;
    EXPECT_LE(code_points(snippet), max);
    if (max >= 10) {
      EXPECT_NE(snippet.find("index"), std::string::npos) << snippet;
    }
  }
}

TEST(RagSnippet, ALongWordIsCutBetweenCharacters) {
  std::string word;
  for (int i = 0; i < 100; ++i) word += "\xC3\xA9";
  for (size_t max = 1; max < 20; ++max) {
    std::string snippet = make_snippet(passage(word), {}, max);
    EXPECT_TRUE(json::is_valid_utf8(snippet));
    EXPECT_LE(code_points(snippet), max);
    EXPECT_TRUE(snippet.ends_with(kEllipsis));
  }
}

TEST(RagSnippet, IllFormedBytesBecomeReplacementCharacters) {
  std::string snippet = make_snippet(passage("bad \xFF\xC3 bytes \xE2\x82 here"), {"byte"}, 100);
  EXPECT_TRUE(json::is_valid_utf8(snippet));
  EXPECT_EQ(snippet, "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes \xEF\xBF\xBD\xEF\xBF\xBD here");
}

}  // namespace
}  // namespace chatstream::rag
