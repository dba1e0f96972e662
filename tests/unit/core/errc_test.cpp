#include "core/errc.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "http/response.hpp"

namespace chatstream {
namespace {

TEST(Errc, EveryCodeHasItsOwnRow) {
  std::set<std::string> metric_labels;
  for (size_t i = 0; i < kErrcCount; ++i) {
    const ErrcRow& row = errc_row(static_cast<Errc>(i));
    EXPECT_EQ(static_cast<size_t>(row.errc), i);
    EXPECT_FALSE(row.code.empty());
    EXPECT_GE(row.http_status, 400);
    EXPECT_LT(row.http_status, 600);
    // Operators tell every row apart, even where clients see one code.
    EXPECT_TRUE(metric_labels.insert(std::string(row.metric)).second) << row.metric;
  }
}

TEST(Errc, StatusesAndCodesOfTheProtocol) {
  EXPECT_EQ(http_status(Errc::kBadRequest), 400);
  EXPECT_EQ(error_code(Errc::kBadRequest), "bad_request");
  EXPECT_EQ(http_status(Errc::kUnsupportedMediaType), 415);
  EXPECT_EQ(http_status(Errc::kHeadersTooLarge), 431);
  EXPECT_EQ(error_code(Errc::kRequestTimeout), "timeout");
  EXPECT_EQ(http_status(Errc::kRequestTimeout), 408);
  EXPECT_EQ(http_status(Errc::kTimeout), 504);
  EXPECT_EQ(http_status(Errc::kUpstream), 502);
  // A database that is down looks like any internal failure to a client, but says when to retry.
  EXPECT_EQ(error_code(Errc::kDatabaseUnavailable), "internal");
  EXPECT_EQ(http_status(Errc::kDatabaseUnavailable), 503);
  EXPECT_EQ(error_code(Errc::kConnectionLimit), "overloaded");
}

TEST(Errc, RetryableErrorsAreTheOnesThatMaySucceedLater) {
  EXPECT_FALSE(retryable(Errc::kBadRequest));
  EXPECT_FALSE(retryable(Errc::kNotFound));
  EXPECT_FALSE(retryable(Errc::kPayloadTooLarge));
  EXPECT_TRUE(retryable(Errc::kOverloaded));
  EXPECT_TRUE(retryable(Errc::kUpstream));
  EXPECT_TRUE(retryable(Errc::kShutdown));
}

TEST(Errc, EveryServiceUnavailableAnswerSaysWhenToRetry) {
  for (size_t i = 0; i < kErrcCount; ++i) {
    const ErrcRow& row = errc_row(static_cast<Errc>(i));
    if (row.http_status != 503 || row.errc == Errc::kSlowConsumer) continue;
    EXPECT_FALSE(row.retry_after.empty()) << row.metric;
    EXPECT_EQ(row.retry_after.substr(0, 13), "Retry-After: ");
  }
}

TEST(Errc, ErrorBodyTakesStatusAndCodeFromTheRow) {
  EXPECT_EQ(http::error_body(Errc::kNotFound, "No such session"),
            R"({"error":{"status":404,"code":"not_found","message":"No such session"}})");
  EXPECT_EQ(http::error_body(Errc::kDatabaseUnavailable, "down"),
            R"({"error":{"status":503,"code":"internal","message":"down"}})");
}

}  // namespace
}  // namespace chatstream
