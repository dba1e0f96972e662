#include "core/uuid.hpp"

#include <gtest/gtest.h>

#include <string>
#include <unordered_set>

namespace chatstream {
namespace {

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

TEST(Uuid, RandomIdsAreVersion4Variant1) {
  for (int i = 0; i < 200; ++i) {
    Uuid id = Uuid::random();
    EXPECT_EQ(id.bytes[6] >> 4, 0x4) << id.to_string();
    EXPECT_EQ(id.bytes[8] >> 6, 0x2) << id.to_string();  // 10xx xxxx: RFC 4122 variant
    std::string text = id.to_string();
    EXPECT_EQ(text[14], '4') << text;
    EXPECT_NE(std::string("89ab").find(text[19]), std::string::npos) << text;
  }
}

TEST(Uuid, RandomIdsDiffer) {
  std::unordered_set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(Uuid::random().to_string());
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Uuid, ToStringIsLowercaseCanonicalForm) {
  Uuid id;
  for (size_t i = 0; i < 16; ++i) id.bytes[i] = static_cast<uint8_t>(0x10 * i + (15 - i));
  EXPECT_EQ(id.to_string(), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

  std::string text = Uuid::random().to_string();
  ASSERT_EQ(text.size(), 36u);
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      EXPECT_EQ(text[i], '-') << text;
    } else {
      EXPECT_TRUE(is_lower_hex(text[i])) << text;
    }
  }
}

TEST(Uuid, ParseAndToStringRoundTrip) {
  for (int i = 0; i < 100; ++i) {
    Uuid id = Uuid::random();
    std::optional<Uuid> parsed = Uuid::parse(id.to_string());
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, id);
  }
  const std::string text = "6f1c2a3b-9d4e-4f10-8a2b-0123456789ab";
  ASSERT_TRUE(Uuid::parse(text).has_value());
  EXPECT_EQ(Uuid::parse(text)->to_string(), text);
}

TEST(Uuid, ParseReadsTheBytesInOrder) {
  std::optional<Uuid> id = Uuid::parse("00112233-4455-6677-8899-aabbccddeeff");
  ASSERT_TRUE(id.has_value());
  for (size_t i = 0; i < 16; ++i) EXPECT_EQ(static_cast<size_t>(id->bytes[i]), 0x11 * i) << "byte " << i;
}

TEST(Uuid, ParseAcceptsEitherCase) {
  std::optional<Uuid> upper = Uuid::parse("6F1C2A3B-9D4E-4F10-8A2B-0123456789AB");
  std::optional<Uuid> lower = Uuid::parse("6f1c2a3b-9d4e-4f10-8a2b-0123456789ab");
  ASSERT_TRUE(upper.has_value());
  ASSERT_TRUE(lower.has_value());
  EXPECT_EQ(*upper, *lower);
  EXPECT_EQ(upper->to_string(), "6f1c2a3b-9d4e-4f10-8a2b-0123456789ab");
}

TEST(Uuid, ParseRejectsWrongLength) {
  EXPECT_FALSE(Uuid::parse(""));
  EXPECT_FALSE(Uuid::parse("6f1c2a3b-9d4e-4f10-8a2b-0123456789a"));    // 35
  EXPECT_FALSE(Uuid::parse("6f1c2a3b-9d4e-4f10-8a2b-0123456789abc"));  // 37
  EXPECT_FALSE(Uuid::parse("{6f1c2a3b-9d4e-4f10-8a2b-0123456789ab}"));
  EXPECT_FALSE(Uuid::parse(" 6f1c2a3b-9d4e-4f10-8a2b-0123456789ab"));
}

TEST(Uuid, ParseRejectsMissingOrMisplacedDashes) {
  EXPECT_FALSE(Uuid::parse("6f1c2a3b9d4e4f108a2b0123456789ab"));      // 32 hex digits, no dashes
  EXPECT_FALSE(Uuid::parse("6f1c2a3b09d4e-4f10-8a2b-0123456789ab"));  // 36 bytes, one dash missing
  EXPECT_FALSE(Uuid::parse("6f1c2a3-b9d4e-4f10-8a2b-0123456789ab"));  // dash moved
  EXPECT_FALSE(Uuid::parse("6f1c2a3b_9d4e_4f10_8a2b_0123456789ab"));
  EXPECT_FALSE(Uuid::parse("6f1c2a3b-9d4e-4f10-8a2b-01234567-9ab"));  // dash in a hex position
}

TEST(Uuid, ParseRejectsNonHexDigits) {
  EXPECT_FALSE(Uuid::parse("6f1c2a3g-9d4e-4f10-8a2b-0123456789ab"));
  EXPECT_FALSE(Uuid::parse("6f1c2a3b-9d4e-4f10-8a2b-0123456789aG"));
  EXPECT_FALSE(Uuid::parse("6f1c2a3b-9d4e-4f10-8a2b-01234567 9ab"));
  EXPECT_FALSE(Uuid::parse("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"));
  EXPECT_FALSE(Uuid::parse("+f1c2a3b-9d4e-4f10-8a2b-0123456789ab"));
}

TEST(Uuid, HashDiffersForDifferentIds) {
  UuidHash hash;
  Uuid a = *Uuid::parse("00000000-0000-4000-8000-000000000001");
  Uuid b = *Uuid::parse("00000000-0000-4000-8000-000000000002");
  EXPECT_EQ(hash(a), hash(*Uuid::parse(a.to_string())));
  EXPECT_NE(hash(a), hash(b));
}

}  // namespace
}  // namespace chatstream
