#include "rag/extractive.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "json/utf8.hpp"
#include "rag/reranker.hpp"
#include "rag/text.hpp"
#include "testing_corpus.hpp"

namespace chatstream::rag {
namespace {

using namespace testing;

// The pipeline as the run uses it: rerank the whole corpus, keep the best, compose.
ExtractiveAnswer ask(std::string_view question, const std::vector<std::string>& context = {}) {
  std::vector<Passage> all = corpus();
  std::vector<Passage> kept;
  for (const Ranked& r : rerank(question, context, all, 5, kMinRerankScore)) kept.push_back(all[r.index]);
  return compose_answer(question, context, kept);
}

// The markers in the text, in order.
std::vector<int> markers(const std::string& text) {
  std::vector<int> out;
  for (size_t at = text.find('['); at != std::string::npos; at = text.find('[', at + 1)) {
    size_t close = text.find(']', at);
    if (close == std::string::npos) break;
    std::string inside = text.substr(at + 1, close - at - 1);
    if (!inside.empty() && inside.find_first_not_of("0123456789") == std::string::npos)
      out.push_back(std::stoi(inside));
  }
  return out;
}

// Citations numbered 1..n, each used, markers numbered in order of first use.
void expect_consistent(const ExtractiveAnswer& answer) {
  SCOPED_TRACE(answer.text);
  EXPECT_TRUE(json::is_valid_utf8(answer.text));
  // Whitespace is collapsed in the prose; code blocks keep their layout.
  for (const Block& block : split_blocks(answer.text)) {
    if (!block.code) {
      EXPECT_EQ(block.text.find("  "), std::string_view::npos) << block.text;
    }
  }
  std::vector<int> m = markers(answer.text);
  ASSERT_FALSE(m.empty());
  int highest = 0;
  for (int n : m) {
    EXPECT_LE(n, highest + 1) << "a marker may only introduce the next number";
    highest = std::max(highest, n);
  }
  ASSERT_EQ(static_cast<size_t>(highest), answer.citations.size());
  for (size_t i = 0; i < answer.citations.size(); ++i) {
    EXPECT_EQ(answer.citations[i].index, static_cast<int>(i + 1));
    EXPECT_FALSE(answer.citations[i].snippet.empty());
  }
}

TEST(Extractive, AnswersFromThePassageThatSaysIt) {
  ExtractiveAnswer answer = ask("What is MVCC?");
  ASSERT_TRUE(answer.found);
  expect_consistent(answer);
  EXPECT_TRUE(
      answer.text.starts_with("Internally, data consistency is maintained by using a multiversion model "
                              "(Multiversion Concurrency Control, MVCC). [1]"))
      << answer.text;
  EXPECT_EQ(answer.citations[0].title, "13.1. Introduction");
  EXPECT_EQ(answer.citations[0].source, "manual/" + std::to_string(kMvcc) + ".html");
  EXPECT_EQ(answer.citations[0].chunk_id, 100 + static_cast<int64_t>(kMvcc));
  // The snippet shows the sentence cited.
  EXPECT_NE(answer.citations[0].snippet.find("Internally, data consistency is maintained"), std::string::npos)
      << answer.citations[0].snippet;
}

TEST(Extractive, AnswersAHowToWithTheAnnouncedCommand) {
  ExtractiveAnswer answer = ask("How do I create a partial index?");
  ASSERT_TRUE(answer.found);
  expect_consistent(answer);
  EXPECT_EQ(answer.citations[0].title, "11.8. Partial Indexes");
  // The sentence announcing the command brings the command's code block, whole (line breaks and
  // indentation kept), the marker after the announcement; the pointer to another section is not quoted.
  EXPECT_NE(answer.text.find("use a command such as this: [1]\n\n```\nCREATE INDEX orders_unbilled_index ON "
                             "orders (order_nr)\n    WHERE billed is not true;\n```"),
            std::string::npos)
      << answer.text;
  EXPECT_EQ(answer.text.find("See Section"), std::string::npos) << answer.text;
}

TEST(Extractive, AnExampleAnnouncedByForExampleComesWithIt) {
  Passage p{1, "11.8. Partial Indexes", "s", "",
            "You might be tempted to create a large set of non-overlapping partial indexes, for example.\n\n"
            "```\nCREATE INDEX mytable_cat_1 ON mytable (data) WHERE category = 1;\n```",
            0};
  ExtractiveAnswer answer = compose_answer("Should I create many non-overlapping partial indexes?", {}, {p});
  ASSERT_TRUE(answer.found);
  EXPECT_EQ(answer.text,
            "You might be tempted to create a large set of non-overlapping partial indexes, for example. [1]\n\n"
            "```\nCREATE INDEX mytable_cat_1 ON mytable (data) WHERE category = 1;\n```");
  // A sentence running into its example (no final period) brings it too, and the comment that follows
  // the example, when it points back at it, comes with it.
  p.content = "You might be tempted to create a large set of non-overlapping partial indexes, for example\n\n"
              "```\nCREATE INDEX mytable_cat_1 ON mytable (data) WHERE category = 1;\n```\n\nThis is a bad idea! "
              "Almost certainly, you'll be better off with a single non-partial index.";
  answer = compose_answer("Should I create many non-overlapping partial indexes?", {}, {p});
  ASSERT_TRUE(answer.found);
  EXPECT_TRUE(answer.text.starts_with(
      "You might be tempted to create a large set of non-overlapping partial indexes, for example [1]\n\n"
      "```\nCREATE INDEX mytable_cat_1 ON mytable (data) WHERE category = 1;\n```\n\nThis is a bad idea! [1]"))
      << answer.text;
}

TEST(Extractive, AHowToQuestionGetsTheStatementThatDoesIt) {
  // No sentence announces the code: the how-to answer still quotes it, introduced by its source, and
  // prefers the example that starts with the question's verb over the synopsis.
  Passage synopsis{1, "ALTER TABLE", "a", "ALTER TABLE \xE2\x80\xBA Synopsis",
                   "```\nALTER TABLE [ IF EXISTS ] name\n    ADD [ COLUMN ] column_name data_type\n```", 0};
  Passage example{2, "ALTER TABLE", "b", "ALTER TABLE \xE2\x80\xBA Examples",
                  "To add a column of type varchar to a table:\n\n"
                  "```\nALTER TABLE distributors ADD COLUMN address varchar(30);\n```\n\n"
                  "That will cause all existing rows in the table to be filled with null values for the new column.",
                  0};
  ExtractiveAnswer answer = compose_answer("How do I add a column to an existing table?", {}, {synopsis, example});
  ASSERT_TRUE(answer.found);
  expect_consistent(answer);
  EXPECT_NE(answer.text.find("```\nALTER TABLE distributors ADD COLUMN address varchar(30);\n```"),
            std::string::npos)
      << answer.text;
  EXPECT_EQ(answer.text.find("IF EXISTS"), std::string::npos) << answer.text;
}

TEST(Extractive, SaysPlainlyWhenNothingIsRelevant) {
  for (const char* question :
       {"What is the capital of France?", "How do I bake a chocolate cake?", "hello", ""}) {
    ExtractiveAnswer answer = ask(question);
    EXPECT_FALSE(answer.found) << question;
    EXPECT_EQ(answer.text, kNothingFound);
    EXPECT_NE(answer.text.find("could not find"), std::string::npos);
    EXPECT_TRUE(answer.citations.empty());
  }
  // Passages that share one word with the question do not make an answer.
  std::vector<Passage> all = corpus();
  ExtractiveAnswer answer = compose_answer("What is the capital of the database?", {}, all);
  EXPECT_FALSE(answer.found) << answer.text;
  EXPECT_FALSE(compose_answer("What is MVCC?", {}, {}).found);
}

TEST(Extractive, UnderstandsAFollowUpThroughTheConversation) {
  ExtractiveAnswer answer = ask("And how do I drop it?", {"How do I create an index?"});
  ASSERT_TRUE(answer.found);
  expect_consistent(answer);
  EXPECT_EQ(answer.citations[0].title, "DROP INDEX");
  EXPECT_NE(answer.text.find("DROP INDEX drops an existing index from the database system."),
            std::string::npos);
  EXPECT_EQ(answer.text.find("DROP TABLE"), std::string::npos) << answer.text;

  ExtractiveAnswer tables = ask("And how do I drop it?", {"How do I create a table?"});
  ASSERT_TRUE(tables.found);
  EXPECT_EQ(tables.citations[0].title, "DROP TABLE");
}

TEST(Extractive, CitesOnlyPassagesItUsesNumberedFromOne) {
  // The first-ranked passage says nothing relevant: the first citation is the second passage.
  std::vector<Passage> all = corpus();
  std::vector<Passage> ranked = {all[kCreateTable], all[kVacuum], all[kMemory]};
  ExtractiveAnswer answer = compose_answer("What does VACUUM do?", {}, ranked);
  ASSERT_TRUE(answer.found);
  expect_consistent(answer);
  ASSERT_EQ(answer.citations.size(), 1u);
  EXPECT_EQ(answer.citations[0].title, "25.1. Routine Vacuuming");
  EXPECT_EQ(markers(answer.text), (std::vector<int>{1, 1}));
}

TEST(Extractive, NumbersSeveralSourcesInOrderOfFirstUse) {
  std::vector<Passage> all = corpus();
  std::vector<Passage> ranked = {all[kCreateTable], all[kDropTable], all[kPgDump]};
  ExtractiveAnswer answer = compose_answer("What do CREATE TABLE and DROP TABLE do?", {}, ranked);
  ASSERT_TRUE(answer.found);
  expect_consistent(answer);
  EXPECT_EQ(answer.citations.size(), 2u);
  std::set<std::string> titles;
  for (const Citation& c : answer.citations) titles.insert(c.title);
  EXPECT_EQ(titles, (std::set<std::string>{"CREATE TABLE", "DROP TABLE"}));
  EXPECT_NE(answer.text.find("\n\n"), std::string::npos) << "one paragraph per source";
}

TEST(Extractive, AvoidsNearDuplicatesAndRespectsTheSentenceLimit) {
  Passage a{1, "A", "a", "", "Autovacuum launches workers that vacuum tables automatically.", 0};
  Passage b{2, "B", "b", "", "Autovacuum launches workers which vacuum tables automatically.", 0};
  ExtractiveAnswer answer = compose_answer("What does autovacuum do with workers?", {}, {a, b});
  ASSERT_TRUE(answer.found);
  EXPECT_EQ(answer.citations.size(), 1u) << answer.text;

  const char* subjects[] = {"The checkpointer",    "A manual checkpoint", "Each checkpoint",
                            "The last checkpoint", "A spread checkpoint", "An immediate checkpoint"};
  const char* tails[] = {"before recycling segments", "when asked to",
                         "to make recovery shorter",  "at shutdown",
                         "over several minutes",      "at once"};
  std::string many;
  for (int i = 0; i < 6; ++i) many += std::string(subjects[i]) + " flushes dirty buffers " + tails[i] + ". ";
  Passage c{3, "C", "c", "", many, 0};
  EXPECT_EQ(markers(compose_answer("checkpoint flushes buffers", {}, {c}, 2).text).size(), 2u);
  EXPECT_FALSE(compose_answer("checkpoint flushes buffers", {}, {c}, 0).found);
}

TEST(Extractive, KeepsTheTextClean) {
  ExtractiveAnswer answer = ask("What does VACUUM do?");
  ASSERT_TRUE(answer.found);
  expect_consistent(answer);
  // The manual's own footnote marker "[7]" is gone; whitespace is normalised.
  EXPECT_EQ(answer.text.find("[7]"), std::string::npos) << answer.text;
  EXPECT_EQ(answer.text.find('\t'), std::string::npos);

  Passage messy{1,
                "T",
                "s",
                "",
                "The   planner\tuses  statistics gathered by ANALYZE \xFF to choose plans [3].\n\nIt is run "
                "by autovacuum.",
                0};
  ExtractiveAnswer cleaned = compose_answer("How does the planner use statistics?", {}, {messy});
  ASSERT_TRUE(cleaned.found);
  EXPECT_EQ(cleaned.text,
            "The planner uses statistics gathered by ANALYZE \xEF\xBF\xBD to choose plans. [1]");
}

TEST(Extractive, OpensWithTheSourceWhenTheFirstSentencePointsBack) {
  Passage p{1,
            "pg_stat_activity",
            "s",
            "Columns",
            "It shows one row per server process, with the current query of each backend process.",
            0};
  ExtractiveAnswer answer =
      compose_answer("Which view shows the current query of each backend process?", {}, {p});
  ASSERT_TRUE(answer.found);
  EXPECT_TRUE(answer.text.starts_with("From \xE2\x80\x9Cpg_stat_activity\xE2\x80\x9D: It shows"))
      << answer.text;
}

TEST(Extractive, NeverPicksFragmentsOrBareCode) {
  Passage p{1,
            "T",
            "s",
            "",
            "SELECT * FROM accounts WHERE balance > 0\nwhere the balance is the amount held in the accounts\n"
            "ERROR:  balance of accounts must not be negative\n"
            "The balance of accounts is checked by a constraint.",
            0};
  ExtractiveAnswer answer = compose_answer("How is the balance of accounts checked?", {}, {p});
  ASSERT_TRUE(answer.found);
  EXPECT_EQ(answer.text, "The balance of accounts is checked by a constraint. [1]");
}

}  // namespace
}  // namespace chatstream::rag
