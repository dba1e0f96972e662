#include "auth/base64url.hpp"

#include <gtest/gtest.h>

namespace chatstream::auth {
namespace {

TEST(Base64Url, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    auto decoded = base64url_decode(base64url_encode(bytes));
    ASSERT_TRUE(decoded.has_value()) << i;
    EXPECT_EQ(*decoded, bytes);
    bytes.push_back(static_cast<char>(i * 37 + 250));
  }
}

TEST(Base64Url, UsesTheUrlAlphabetWithoutPadding) {
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_encode("{\"alg\":\"HS256\"}"), "eyJhbGciOiJIUzI1NiJ9");
}

TEST(Base64Url, RefusesWhatIsNotCanonical) {
  EXPECT_FALSE(base64url_decode("eyJ=").has_value()) << "padding";
  EXPECT_FALSE(base64url_decode("ab+/").has_value()) << "standard alphabet";
  EXPECT_FALSE(base64url_decode("a").has_value()) << "a lone character";
  EXPECT_FALSE(base64url_decode("ab c").has_value()) << "whitespace";
  EXPECT_FALSE(base64url_decode("-_9").has_value()) << "non-zero leftover bits";
  EXPECT_TRUE(base64url_decode("").has_value());
}

}  // namespace
}  // namespace chatstream::auth
