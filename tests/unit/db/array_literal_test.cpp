// PostgreSQL array literals for batched statements: any text arrives as itself.
#include "db/array_literal.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace chatstream::db {
namespace {

TEST(ArrayLiteral, QuotesAndEscapesEveryTextElement) {
  EXPECT_EQ(text_array({}), "{}");
  EXPECT_EQ(text_array({""}), R"({""})");
  EXPECT_EQ(text_array({"a", "b c"}), R"({"a","b c"})");
  // Quotes and backslashes escaped; braces, commas, NULL and newlines kept as text inside quotes.
  EXPECT_EQ(text_array({R"(say "hi")", R"(C:\dir)", "{x,y}", "NULL", "line\nnext", "日本語 🚀"}),
            "{\"say \\\"hi\\\"\",\"C:\\\\dir\",\"{x,y}\",\"NULL\",\"line\nnext\",\"日本語 🚀\"}");
}

TEST(ArrayLiteral, NumbersAsTheyAre) {
  EXPECT_EQ(number_array(std::vector<uint64_t>{}), "{}");
  EXPECT_EQ(number_array(std::vector<uint64_t>{0, 7, 18446744073709551615ULL}), "{0,7,18446744073709551615}");
  EXPECT_EQ(number_array(std::vector<int64_t>{-1, 42}), "{-1,42}");
}

}  // namespace
}  // namespace chatstream::db
