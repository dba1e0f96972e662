#include "rag/query.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace chatstream::rag {
namespace {

TEST(RagQuery, RecognisesFollowUps) {
  EXPECT_TRUE(is_follow_up("and the second one?"));
  EXPECT_TRUE(is_follow_up("What about it"));
  EXPECT_TRUE(is_follow_up("How about GIN?"));
  EXPECT_TRUE(is_follow_up("How do I drop it?"));
  EXPECT_TRUE(is_follow_up("why?"));
  EXPECT_TRUE(is_follow_up("tell me more"));
  EXPECT_TRUE(is_follow_up("But is that safe?"));
}

TEST(RagQuery, NewQuestionsAndPolitenessAreNotFollowUps) {
  EXPECT_FALSE(is_follow_up("What is MVCC?"));
  EXPECT_FALSE(is_follow_up("How do I create an index on a table with many columns?"));
  // Many terms of its own: a new question even with a pointing word.
  EXPECT_FALSE(is_follow_up("Does this setting change the memory used by hash joins and sorts?"));
  EXPECT_FALSE(is_follow_up("thanks"));
  EXPECT_FALSE(is_follow_up("hello"));
  EXPECT_FALSE(is_follow_up(""));
}

TEST(RagQuery, ContextTermsDecayWithAgeAndSkipQuestionTerms) {
  Query q = analyze_query("and how do I drop it?", {"Tell me about vacuum", "How do I create an index?"});
  EXPECT_TRUE(q.follow_up);
  EXPECT_EQ(q.context_factor, kFollowUpContextFactor);
  ASSERT_EQ(q.question.size(), 1u);
  EXPECT_EQ(q.question[0].stem, "drop");
  ASSERT_EQ(q.context.size(), 3u);
  EXPECT_EQ(q.context[0].stem, "creat");  // the newest message first, full weight
  EXPECT_EQ(q.context[0].weight, 1.0);
  EXPECT_EQ(q.context[1].stem, "index");
  EXPECT_EQ(q.context[2].stem, "vacuum");
  EXPECT_DOUBLE_EQ(q.context[2].weight, kContextDecay);
}

TEST(RagQuery, NewQuestionsLeanLessOnContext) {
  Query q = analyze_query("What is MVCC?", {"How do I create an index?"});
  EXPECT_FALSE(q.follow_up);
  EXPECT_EQ(q.context_factor, kContextFactor);
  EXPECT_LT(kContextFactor, kFollowUpContextFactor);
}

TEST(RagQuery, ContextIsCapped) {
  std::string long_message;
  for (int i = 0; i < 40; ++i) long_message += "word" + std::to_string(i) + " ";
  Query q = analyze_query("drop it", {long_message, long_message});
  EXPECT_EQ(q.context.size(), kMaxContextTerms);
}

}  // namespace
}  // namespace chatstream::rag
