#include "auth/sign_in.hpp"

#include <gtest/gtest.h>

namespace chatstream::auth {
namespace {

TEST(SignIn, ProtectedPaths) {
  for (const char* path : {"/chat", "/chat/stream", "/chat/cancel", "/sessions", "/sessions/x/messages",
                           "/api/alice/chat/stream", "/v1/chat/completions", "/v1/models"}) {
    EXPECT_TRUE(SignIn::is_protected(path)) << path;
  }
  for (const char* path : {"/healthz", "/metrics", "/", "/index.html", "/v1"}) {
    EXPECT_FALSE(SignIn::is_protected(path)) << path;
  }
}

TEST(SignIn, BearerToken) {
  EXPECT_EQ(bearer_token("Bearer abc.def.ghi"), "abc.def.ghi");
  EXPECT_EQ(bearer_token("bearer   abc "), "abc");
  EXPECT_EQ(bearer_token("Basic dXNlcjpwYXNz"), "");
  EXPECT_EQ(bearer_token("Bearer"), "");
  EXPECT_EQ(bearer_token("Bearerabc"), "");
}

TEST(SignIn, OffMeansTheAnonymousUser) {
  SignIn off(false, nullptr);
  http::Request request;
  request.path = "/chat/stream";
  ASSERT_TRUE(off.identify(request, 0).ok());
  EXPECT_EQ(request.user_id, kAnonymousUser);
}

TEST(SignIn, OnWithoutAValidTokenIsUnauthorized) {
  JwtSettings settings;
  settings.hs256_secret = std::string(32, 's');
  auto verifier = JwtVerifier::create(settings);
  ASSERT_TRUE(verifier.ok());
  SignIn on(true, std::move(*verifier));
  http::Request request;
  Status missing = on.identify(request, 0);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::kUnauthorized);
  request.authorization = "Basic abc";
  EXPECT_FALSE(on.identify(request, 0).ok());
  request.authorization = "Bearer x.y.z";
  EXPECT_FALSE(on.identify(request, 0).ok());
  EXPECT_TRUE(request.user_id.empty());
  SignIn broken(true, nullptr);  // keys that failed to load: closed, not open
  EXPECT_FALSE(broken.identify(request, 0).ok());
}

TEST(SignIn, UserPrefix) {
  http::Request request;
  request.user_id = "alice";
  request.path = "/api/alice/chat/stream";
  ASSERT_TRUE(SignIn::strip_user_prefix(request).ok());
  EXPECT_EQ(request.path, "/chat/stream");

  request.path = "/api/bob/sessions";
  Status other = SignIn::strip_user_prefix(request);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, Errc::kForbidden);

  request.user_id = "zoë|1";
  request.path = "/api/zo%C3%AB%7C1/sessions/x/messages";
  ASSERT_TRUE(SignIn::strip_user_prefix(request).ok());
  EXPECT_EQ(request.path, "/sessions/x/messages");

  for (const char* path : {"/api/alice", "/api//chat", "/api/%zz/chat"}) {
    request.path = path;
    Status bad = SignIn::strip_user_prefix(request);
    ASSERT_FALSE(bad.ok()) << path;
    EXPECT_EQ(bad.error().code, Errc::kNotFound) << path;
  }
  request.path = "/chat/stream";
  EXPECT_TRUE(SignIn::strip_user_prefix(request).ok());
  EXPECT_EQ(request.path, "/chat/stream");
}

}  // namespace
}  // namespace chatstream::auth
