#include "rag/reranker.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testing_corpus.hpp"

namespace chatstream::rag {
namespace {

using testing::corpus;
using namespace testing;

size_t top(std::string_view question, const std::vector<std::string>& context = {}) {
  std::vector<Ranked> ranked = rerank(question, context, corpus(), 3, 0.0);
  return ranked.empty() ? SIZE_MAX : ranked[0].index;
}

TEST(Rerank, PicksThePassageThatAnswersAmongDistractors) {
  // CREATE TABLE shares "create", the storage parameters share "create" and "index" many times over (and
  // the title); only the description of CREATE INDEX also speaks of columns.
  EXPECT_EQ(top("How do I create an index on a column?"), kCreateIndex);
  EXPECT_EQ(top("What does VACUUM do?"), kVacuum);
  EXPECT_EQ(top("How much memory can a sort use before it writes to disk?"), kMemory);
  EXPECT_EQ(top("How do I back up a database?"), kPgDump);
  EXPECT_EQ(top("What is a partial index?"), kPartialIndex);
  EXPECT_EQ(top("How is data consistency maintained with concurrent access?"), kMvcc);
}

TEST(Rerank, TitleAndHeadingTermsCountMore) {
  // The same text under two titles: the one whose title names the question's subject wins.
  std::vector<Passage> passages = {
      {1, "Backups", "s", "", "Run the restore tool nightly and keep the files on another machine.", 0.9},
      {2, "Restores", "s", "", "Run the restore tool nightly and keep the files on another machine.", 0.1},
      {3, "Manual", "s", "Restores", "Run the restore tool nightly and keep the files on another machine.",
       0.1},
  };
  std::vector<Ranked> ranked = rerank("restores", {}, passages, 3, 0.0);
  ASSERT_EQ(ranked.size(), 3u);
  EXPECT_NE(ranked[0].index, 0u);
  EXPECT_NE(ranked[1].index, 0u);
  EXPECT_EQ(ranked[2].index, 0u);
  EXPECT_GT(ranked[1].score, ranked[2].score);
}

TEST(Rerank, ProximityBreaksTiesBetweenEqualMatches) {
  // Same words, same counts, same length: only the distance between "shared" and "buffers" differs.
  std::vector<Passage> passages = {
      {1, "A", "s", "",
       "shared memory is allocated at start and the size of the buffers is fixed by configuration", 0},
      {2, "B", "s", "",
       "memory is allocated at start and the size of the shared buffers is fixed by configuration", 0},
  };
  std::vector<Ranked> ranked = rerank("shared buffers size", {}, passages, 2, 0.0);
  ASSERT_EQ(ranked.size(), 2u);
  EXPECT_EQ(ranked[0].index, 1u);
  EXPECT_GT(ranked[0].score, ranked[1].score);
}

TEST(Rerank, ProximityNeverLiftsAPassageMissingATerm) {
  std::vector<Passage> passages = {
      {1, "A", "s", "", "checkpoint timeout and wal size work together closely here", 0},
      {2, "B", "s", "",
       "the checkpoint happens; much later and elsewhere one sets the timeout; wal is separate", 0},
      {3, "C", "s", "", "checkpoint timeout appear side by side in this sentence without anything else", 0},
  };
  std::vector<Ranked> ranked = rerank("checkpoint timeout wal", {}, passages, 3, 0.0);
  ASSERT_EQ(ranked.size(), 3u);
  EXPECT_EQ(ranked[0].index, 0u);
  EXPECT_EQ(ranked[1].index, 1u);  // all three terms, far apart, beats two adjacent ones
  EXPECT_EQ(ranked[2].index, 2u);
}

TEST(Rerank, ContextResolvesAFollowUpButNeverOutweighsTheQuestion) {
  // "drop it" after a question on indexes: DROP INDEX, not DROP TABLE.
  EXPECT_EQ(top("How do I drop it?", {"How do I create an index?"}), kDropIndex);
  EXPECT_EQ(top("How do I drop it?", {"How do I create a table?"}), kDropTable);
  // A new question after the index one is still answered about itself.
  EXPECT_EQ(top("What does VACUUM do?", {"How do I create an index on a column?"}), kVacuum);
}

TEST(Rerank, KeepsAtMostKeepAndDropsScoresUnderTheMinimum) {
  std::vector<Passage> passages = corpus();
  EXPECT_EQ(rerank("index", {}, passages, 2, 0.0).size(), 2u);
  EXPECT_TRUE(rerank("index", {}, passages, 0, 0.0).empty());
  EXPECT_TRUE(rerank("index", {}, {}, 5, 0.0).empty());
  std::vector<Ranked> all =
      rerank("How do I create an index on a column?", {}, passages, passages.size(), 0.0);
  ASSERT_EQ(all.size(), passages.size());
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GE(all[i - 1].score, all[i].score);
  std::vector<Ranked> strong =
      rerank("How do I create an index on a column?", {}, passages, passages.size(), kMinRerankScore);
  EXPECT_LT(strong.size(), all.size());
  for (const Ranked& r : strong) EXPECT_GE(r.score, kMinRerankScore);
  // Nothing matches: nothing passes a positive minimum.
  EXPECT_TRUE(rerank("chocolate cake recipe", {}, passages, 5, kMinRerankScore).empty());
}

TEST(Rerank, ScoresAreOnAStableScale) {
  // One passage holding every question term about once: about 1 (plus proximity).
  std::vector<Passage> passages = {
      {1, "", "s", "", "The autovacuum launcher starts workers for tables that need it.", 0},
      {2, "", "s", "", "Nothing related here at all, only filler words about weather.", 0},
  };
  std::vector<Ranked> ranked = rerank("autovacuum launcher", {}, passages, 2, 0.0);
  ASSERT_EQ(ranked.size(), 2u);
  EXPECT_GT(ranked[0].score, 0.9);
  EXPECT_LT(ranked[0].score, 1.6);
  EXPECT_EQ(ranked[1].score, 0.0);
}

TEST(Rerank, PrefersThePageAboutWhatIsAskedOverANearVariant) {
  // The same words in both; the variant's title names what the question does not ask about.
  std::string text = "This form adds a new column to the table, using the same syntax as CREATE TABLE.";
  std::vector<Passage> passages = {{1, "ALTER FOREIGN TABLE", "a", "", text, 0.1},
                                   {2, "ALTER TABLE", "b", "", text, 0.1}};
  std::vector<Ranked> ranked = rerank("How do I add a column to a table?", {}, passages, 2, 0.0);
  ASSERT_EQ(ranked.size(), 2u);
  EXPECT_EQ(ranked[0].index, 1u);
  // Unless the question names the variant.
  ranked = rerank("How do I add a column to a foreign table?", {}, passages, 2, 0.0);
  ASSERT_EQ(ranked.size(), 2u);
  EXPECT_EQ(ranked[0].index, 0u);
}

TEST(Rerank, RetrievalRankBreaksNearTies) {
  std::string text = "The server listens on port 5432 by default.";
  std::vector<Passage> passages = {{1, "A", "a", "", text, 1.0}, {2, "A", "b", "", text, 9.0}};
  std::vector<Ranked> ranked = rerank("Which port does the server listen on?", {}, passages, 2, 0.0);
  ASSERT_EQ(ranked.size(), 2u);
  EXPECT_EQ(ranked[0].index, 1u);
  EXPECT_GT(ranked[0].score, ranked[1].score);
}

TEST(Rerank, BreaksTiesByDatabaseRankThenIndex) {
  std::vector<Passage> passages = {
      {1, "T", "s", "", "identical text about vacuum", 0.1},
      {2, "T", "s", "", "identical text about vacuum", 0.9},
      {3, "T", "s", "", "identical text about vacuum", 0.1},
  };
  std::vector<Ranked> ranked = rerank("vacuum", {}, passages, 3, 0.0);
  ASSERT_EQ(ranked.size(), 3u);
  EXPECT_EQ(ranked[0].index, 1u);
  EXPECT_EQ(ranked[1].index, 0u);
  EXPECT_EQ(ranked[2].index, 2u);
  // And the same input always gives the same output.
  std::vector<Ranked> again = rerank("vacuum", {}, passages, 3, 0.0);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(again[i].index, ranked[i].index);
}

}  // namespace
}  // namespace chatstream::rag
