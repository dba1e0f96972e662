#include "rag/search_query.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace chatstream::rag {
namespace {

// What websearch_to_tsquery could read as syntax: quotes, a leading '-', and stray operator words.
void expect_plain(const std::string& query) {
  SCOPED_TRACE(query);
  for (char c : query) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ' ' || static_cast<unsigned char>(c) >= 0x80;
    EXPECT_TRUE(ok) << "unexpected character '" << c << "'";
  }
  if (query.empty()) return;
  EXPECT_FALSE(query.starts_with("or "));
  EXPECT_FALSE(query.ends_with(" or"));
  EXPECT_EQ(query.find("or or"), std::string::npos);
  EXPECT_EQ(query.find("  "), std::string::npos);
}

TEST(RagSearchQuery, JoinsTheSignificantWordsWithOr) {
  EXPECT_EQ(search_query("How do I create an index?", {}), "create or index");
  EXPECT_EQ(search_query("What is MVCC?", {}), "mvcc");
  // One word per stem, the first surface form (PostgreSQL stems it with the session's configuration).
  EXPECT_EQ(search_query("Indexes: index, indexing, INDEXED", {}), "indexes");
}

TEST(RagSearchQuery, IsEmptyWhenThereIsNothingToSearch) {
  EXPECT_EQ(search_query("", {}), "");
  EXPECT_EQ(search_query("What is it that they do?", {}), "");
  EXPECT_EQ(search_query("?!? ... --", {}), "");
  EXPECT_EQ(search_query("thanks!", {"How do I create an index?"}), "");
}

TEST(RagSearchQuery, StripsEverythingWebsearchWouldReadAsSyntax) {
  std::string q = search_query("\"shared buffers\" -wal OR checkpoint AND \"fsync\" or -(x) 'quoted'", {});
  EXPECT_EQ(q, "shared or buffers or wal or checkpoint or fsync or quoted");
  expect_plain(q);
  expect_plain(search_query("-- DROP TABLE students; /* \"\" */ <script> & | ! : *", {}));
}

TEST(RagSearchQuery, KeepsUtf8WordsAndDropsOverlongOnes) {
  std::string longword(kMaxSearchWordBytes + 1, 'x');
  EXPECT_EQ(search_query("caf\xC3\xA9 encoding " + longword, {}), "caf\xC3\xA9 or encoding");
}

TEST(RagSearchQuery, CapsTheNumberOfWords) {
  std::string question;
  for (int i = 0; i < 50; ++i) question += "term" + std::to_string(i) + " ";
  std::string q = search_query(question, {});
  size_t words = 1;
  for (size_t at = q.find(" or "); at != std::string::npos; at = q.find(" or ", at + 1)) ++words;
  EXPECT_EQ(words, kMaxSearchWords);
}

TEST(RagSearchQuery, AFollowUpPullsInThePreviousQuestion) {
  std::vector<std::string> earlier = {"What is MVCC?", "How do I create an index?"};
  EXPECT_EQ(search_query("and the second one?", earlier), "second or create or index");
  EXPECT_EQ(search_query("what about it", earlier), "create or index");
  EXPECT_EQ(search_query("How do I drop it?", earlier), "drop or create or index");
}

TEST(RagSearchQuery, ANewQuestionIgnoresThePreviousOnes) {
  std::vector<std::string> earlier = {"How do I create an index?"};
  EXPECT_EQ(search_query("What does VACUUM do?", earlier), "vacuum");
}

TEST(RagSearchQuery, ChainedFollowUpsReachBackToTheTopic) {
  std::vector<std::string> earlier = {"How do I create an index?", "and how do I drop it?"};
  EXPECT_EQ(search_query("why?", earlier), "drop or create or index");
}

}  // namespace
}  // namespace chatstream::rag
