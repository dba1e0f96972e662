#include "http/query_params.hpp"

#include <gtest/gtest.h>

namespace chatstream::http {
namespace {

TEST(QueryParams, FindsAndDecodes) {
  EXPECT_EQ(query_param("limit=5&before=2024-01-01T00%3A00%3A00.000000Z%2Cabc", "before"),
            "2024-01-01T00:00:00.000000Z,abc");
  EXPECT_EQ(query_param("limit=5", "limit"), "5");
  EXPECT_EQ(query_param("a=1+2", "a"), "1 2");
  EXPECT_EQ(query_param("flag", "flag"), "");
  EXPECT_FALSE(query_param("limit=5", "before").has_value());
  EXPECT_FALSE(query_param("", "x").has_value());
  bool bad = false;
  EXPECT_FALSE(query_param("x=%4", "x", &bad).has_value());
  EXPECT_TRUE(bad);
}

}  // namespace
}  // namespace chatstream::http
