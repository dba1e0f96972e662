#include "http/router.hpp"

#include <gtest/gtest.h>

#include <string>

namespace chatstream::http {
namespace {

using Kind = RouteMatch::Kind;

// A handler that cannot be called here (no Connection); routes are told apart by their address.
Handler noop() {
  return [](Connection&, Request&, const RouteParams&) {};
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    router_.add("POST", "/chat/stream", noop());
    router_.add("POST", "/chat", noop());
    router_.add("POST", "/chat/cancel", noop());
    router_.add("GET", "/healthz", noop());
    router_.add("GET", "/metrics", noop());
    router_.add("GET", "/runs/{id}", noop());
    router_.add("DELETE", "/runs/{id}", noop());
    router_.add("GET", "/sessions/{session}/runs/{run}", noop());
    router_.add("GET", "/", noop());
  }
  Router router_;
};

TEST_F(RouterTest, FindsAnExactMatch) {
  RouteMatch match = router_.match("POST", "/chat/stream");
  EXPECT_EQ(match.kind, Kind::kFound);
  EXPECT_NE(match.handler, nullptr);
  EXPECT_TRUE(match.params.values.empty());
  EXPECT_EQ(router_.match("GET", "/healthz").kind, Kind::kFound);
  EXPECT_EQ(router_.match("GET", "/").kind, Kind::kFound);
}

TEST_F(RouterTest, GivesEachRouteItsOwnHandler) {
  const Handler* chat = router_.match("POST", "/chat").handler;
  const Handler* stream = router_.match("POST", "/chat/stream").handler;
  const Handler* cancel = router_.match("POST", "/chat/cancel").handler;
  ASSERT_NE(chat, nullptr);
  EXPECT_NE(chat, stream);
  EXPECT_NE(chat, cancel);
  EXPECT_NE(stream, cancel);
  EXPECT_EQ(router_.match("POST", "/chat").handler, chat);
}

TEST_F(RouterTest, MethodIsCaseSensitive) {
  EXPECT_EQ(router_.match("post", "/chat").kind, Kind::kMethodNotAllowed);
}

TEST_F(RouterTest, CapturesAParameterSegment) {
  RouteMatch match = router_.match("GET", "/runs/abc-123");
  ASSERT_EQ(match.kind, Kind::kFound);
  ASSERT_EQ(match.params.values.size(), 1u);
  EXPECT_EQ(match.params.values[0].first, "id");
  EXPECT_EQ(match.params.values[0].second, "abc-123");
  EXPECT_EQ(match.params.get("id"), "abc-123");
  EXPECT_EQ(match.params.get("other"), "");
}

TEST_F(RouterTest, CapturesSeveralParametersInOrder) {
  RouteMatch match = router_.match("GET", "/sessions/s1/runs/r2");
  ASSERT_EQ(match.kind, Kind::kFound);
  ASSERT_EQ(match.params.values.size(), 2u);
  EXPECT_EQ(match.params.values[0], (std::pair<std::string, std::string>("session", "s1")));
  EXPECT_EQ(match.params.values[1], (std::pair<std::string, std::string>("run", "r2")));
}

TEST_F(RouterTest, ParameterDoesNotMatchAnEmptySegment) {
  EXPECT_EQ(router_.match("GET", "/runs/").kind, Kind::kNotFound);
  EXPECT_EQ(router_.match("GET", "/sessions//runs/r").kind, Kind::kNotFound);
}

TEST_F(RouterTest, ParameterMatchesOneSegmentOnly) {
  EXPECT_EQ(router_.match("GET", "/runs/a/b").kind, Kind::kNotFound);
  EXPECT_EQ(router_.match("GET", "/runs").kind, Kind::kNotFound);
}

TEST_F(RouterTest, UnknownPathIsNotFound) {
  RouteMatch match = router_.match("GET", "/nope");
  EXPECT_EQ(match.kind, Kind::kNotFound);
  EXPECT_EQ(match.handler, nullptr);
  EXPECT_EQ(match.allow, "");
  EXPECT_EQ(router_.match("POST", "/chat/streams").kind, Kind::kNotFound);
  EXPECT_EQ(router_.match("POST", "/cha").kind, Kind::kNotFound);
  EXPECT_EQ(router_.match("POST", "/chat/stream/more").kind, Kind::kNotFound);
}

TEST_F(RouterTest, KnownPathWithAnotherMethodIsMethodNotAllowed) {
  RouteMatch match = router_.match("GET", "/chat/stream");
  EXPECT_EQ(match.kind, Kind::kMethodNotAllowed);
  EXPECT_EQ(match.handler, nullptr);
  EXPECT_EQ(match.allow, "POST");

  EXPECT_EQ(router_.match("POST", "/healthz").allow, "GET");
}

TEST_F(RouterTest, AllowListsEveryMethodInRegistrationOrder) {
  RouteMatch match = router_.match("PUT", "/runs/42");
  EXPECT_EQ(match.kind, Kind::kMethodNotAllowed);
  EXPECT_EQ(match.allow, "GET, DELETE");
}

TEST(Router, AllowListHasNoDuplicates) {
  Router router;
  router.add("GET", "/a/{x}", noop());
  router.add("POST", "/a/b", noop());
  router.add("GET", "/a/b", noop());
  router.add("POST", "/a/{y}", noop());
  RouteMatch match = router.match("PATCH", "/a/b");
  EXPECT_EQ(match.kind, Kind::kMethodNotAllowed);
  EXPECT_EQ(match.allow, "GET, POST");
}

// A method whose name is part of another one (LOCK in UNLOCK) is still listed.
TEST(Router, AllowListKeepsAMethodWhoseNameIsInsideAnother) {
  Router router;
  router.add("UNLOCK", "/file", noop());
  router.add("LOCK", "/file", noop());
  EXPECT_EQ(router.match("GET", "/file").allow, "UNLOCK, LOCK");
}

TEST(Router, FirstRegisteredRouteWinsWhenSeveralMatch) {
  Router router;
  router.add("GET", "/runs/latest", noop());
  router.add("GET", "/runs/{id}", noop());
  const Handler* latest = router.match("GET", "/runs/latest").handler;
  const Handler* by_id = router.match("GET", "/runs/7").handler;
  ASSERT_NE(latest, nullptr);
  ASSERT_NE(by_id, nullptr);
  EXPECT_NE(latest, by_id);
  EXPECT_TRUE(router.match("GET", "/runs/latest").params.values.empty());
}

TEST_F(RouterTest, TrailingSlashIsADifferentPath) {
  EXPECT_EQ(router_.match("POST", "/chat/").kind, Kind::kNotFound);
  EXPECT_EQ(router_.match("GET", "/healthz/").kind, Kind::kNotFound);
}

TEST_F(RouterTest, EmptySegmentsDoNotCollapse) {
  EXPECT_EQ(router_.match("POST", "//chat").kind, Kind::kNotFound);
  EXPECT_EQ(router_.match("POST", "/chat//stream").kind, Kind::kNotFound);
}

TEST_F(RouterTest, PathWithoutLeadingSlashIsNotFound) {
  EXPECT_EQ(router_.match("GET", "healthz").kind, Kind::kNotFound);
  EXPECT_EQ(router_.match("GET", "").kind, Kind::kNotFound);
}

TEST(Router, EmptyRouterFindsNothing) {
  Router router;
  EXPECT_EQ(router.match("GET", "/").kind, Kind::kNotFound);
}

}  // namespace
}  // namespace chatstream::http
