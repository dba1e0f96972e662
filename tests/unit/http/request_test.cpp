#include "http/request.hpp"

#include <gtest/gtest.h>

namespace chatstream::http {
namespace {

TEST(IsJsonContentType, AcceptsApplicationJson) {
  EXPECT_TRUE(is_json_content_type("application/json"));
}

TEST(IsJsonContentType, IgnoresCase) {
  EXPECT_TRUE(is_json_content_type("Application/JSON"));
  EXPECT_TRUE(is_json_content_type("APPLICATION/JSON; CHARSET=UTF-8"));
}

TEST(IsJsonContentType, AcceptsParameters) {
  EXPECT_TRUE(is_json_content_type("application/json; charset=utf-8"));
  EXPECT_TRUE(is_json_content_type("application/json;charset=UTF-8"));
  EXPECT_TRUE(is_json_content_type("application/json;"));
}

TEST(IsJsonContentType, IgnoresWhitespaceAroundTheMediaType) {
  EXPECT_TRUE(is_json_content_type("  application/json"));
  EXPECT_TRUE(is_json_content_type("application/json  "));
  EXPECT_TRUE(is_json_content_type("\tapplication/json\t; charset=utf-8"));
  EXPECT_TRUE(is_json_content_type("application/json ;charset=utf-8"));
}

TEST(IsJsonContentType, RejectsOtherTypes) {
  EXPECT_FALSE(is_json_content_type(""));
  EXPECT_FALSE(is_json_content_type("text/plain"));
  EXPECT_FALSE(is_json_content_type("application/jsonx"));
  EXPECT_FALSE(is_json_content_type("application/json-seq"));
  EXPECT_FALSE(is_json_content_type("application/json+ld"));
  EXPECT_FALSE(is_json_content_type("application/ld+json"));
  EXPECT_FALSE(is_json_content_type("application/x-www-form-urlencoded"));
  EXPECT_FALSE(is_json_content_type("text/json"));
  EXPECT_FALSE(is_json_content_type("application/"));
  EXPECT_FALSE(is_json_content_type("application"));
  EXPECT_FALSE(is_json_content_type("; application/json"));
  EXPECT_FALSE(is_json_content_type("application /json"));
}

TEST(Request, ClearResetsEveryField) {
  Request request;
  request.method = "POST";
  request.path = "/chat";
  request.query = "a=1";
  request.content_type = "application/json";
  request.body = "{}";
  request.keep_alive = false;
  request.http_major = 1;
  request.http_minor = 0;
  request.clear();
  EXPECT_EQ(request.method, "");
  EXPECT_EQ(request.path, "");
  EXPECT_EQ(request.query, "");
  EXPECT_EQ(request.content_type, "");
  EXPECT_EQ(request.body, "");
  EXPECT_TRUE(request.keep_alive);
  EXPECT_EQ(request.http_major, 1);
  EXPECT_EQ(request.http_minor, 1);
}

TEST(Request, ClearGivesBackALargeBody) {
  Request request;
  request.body.assign(64 * 1024, 'x');
  request.clear();
  EXPECT_TRUE(request.body.empty());
  EXPECT_LE(request.body.capacity(), 1024u);
}

}  // namespace
}  // namespace chatstream::http
