#include "chat/conversations.hpp"

#include <gtest/gtest.h>

namespace chatstream::chat {
namespace {

TEST(PageCursor, AcceptsTheListsOwnForms) {
  auto plain = parse_page_cursor("2024-05-01T12:34:56.123456Z");
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->updated_at, "2024-05-01T12:34:56.123456Z");
  EXPECT_EQ(plain->id, "00000000-0000-0000-0000-000000000000") << "a bare timestamp is strictly older";
  auto full = parse_page_cursor("2024-05-01T12:34:56.123456Z,6f1c2b7e-0000-4000-8000-000000000001");
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->id, "6f1c2b7e-0000-4000-8000-000000000001");
}

TEST(PageCursor, RefusesAnythingElse) {
  for (const char* text : {"", "yesterday", "2024-05-01", "2024-05-01T12:34:56Z", "2024-05-01T12:34:56.123456Z,",
                           "2024-05-01T12:34:56.123456Z,not-a-uuid", "2024-05-01T12:34:56.123456Z'; DROP TABLE x"}) {
    EXPECT_FALSE(parse_page_cursor(text).has_value()) << text;
  }
}

}  // namespace
}  // namespace chatstream::chat
