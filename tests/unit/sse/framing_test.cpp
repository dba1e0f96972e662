#include "sse/framing.hpp"

#include <gtest/gtest.h>

#include <string>

namespace chatstream::sse {
namespace {

constexpr std::string_view kRunId = "6f1c2a3b-0000-4000-8000-000000000001";

TEST(AppendRetry, WritesTheRetryFieldAndABlankLine) {
  std::string out;
  append_retry(out, 3000);
  EXPECT_EQ(out, "retry: 3000\n\n");
  append_retry(out, 0);
  EXPECT_EQ(out, "retry: 3000\n\nretry: 0\n\n");
}

TEST(AppendEvent, WritesIdEventAndOneDataLineWithTypeFirst) {
  std::string out;
  append_event(out, kRunId, 0, "meta", R"("run_id":"r","heartbeat_ms":15000)");
  EXPECT_EQ(out,
            "id: 6f1c2a3b-0000-4000-8000-000000000001:0\n"
            "event: meta\n"
            "data: {\"type\":\"meta\",\"run_id\":\"r\",\"heartbeat_ms\":15000}\n"
            "\n");
}

TEST(AppendEvent, WritesOnlyTheTypeWhenThereAreNoFields) {
  std::string out;
  append_event(out, "run", 7, "generation_start", "");
  EXPECT_EQ(out, "id: run:7\nevent: generation_start\ndata: {\"type\":\"generation_start\"}\n\n");
}

TEST(AppendEvent, WritesLargeSequenceNumbersInDecimal) {
  std::string out;
  append_event(out, "r", 18446744073709551615ull, "done", R"("status":"complete")");
  EXPECT_EQ(out,
            "id: r:18446744073709551615\nevent: done\ndata: {\"type\":\"done\",\"status\":\"complete\"}\n\n");
}

TEST(AppendEvent, AppendsAfterEarlierEvents) {
  std::string out;
  append_retry(out, 3000);
  append_event(out, "r", 0, "meta", "");
  append_event(out, "r", 1, "done", "");
  EXPECT_EQ(out,
            "retry: 3000\n\n"
            "id: r:0\nevent: meta\ndata: {\"type\":\"meta\"}\n\n"
            "id: r:1\nevent: done\ndata: {\"type\":\"done\"}\n\n");
}

TEST(AppendTokenEvent, WritesContentAsAnEscapedString) {
  std::string out;
  append_token_event(out, kRunId, 12, "Hello \"world\"");
  EXPECT_EQ(out,
            "id: 6f1c2a3b-0000-4000-8000-000000000001:12\n"
            "event: token\n"
            "data: {\"type\":\"token\",\"content\":\"Hello \\\"world\\\"\"}\n"
            "\n");
}

TEST(AppendTokenEvent, KeepsContentWithNewlinesOnOneDataLine) {
  std::string out;
  append_token_event(out, "r", 3, "line one\nline two\r\n\nend");
  EXPECT_EQ(out,
            "id: r:3\nevent: token\ndata: {\"type\":\"token\",\"content\":\"line one\\nline "
            "two\\r\\n\\nend\"}\n\n");
  // Exactly three lines and the blank line that ends the event.
  size_t newlines = 0;
  for (char c : out) newlines += c == '\n';
  EXPECT_EQ(newlines, 4u);
  EXPECT_EQ(out.find('\r'), std::string::npos);
}

TEST(AppendTokenEvent, PassesMultiByteTextThroughAndReplacesBrokenBytes) {
  std::string out;
  append_token_event(out, "r", 1, "caf\xC3\xA9 \xF0\x9F\x98\x80 \xC3");
  EXPECT_EQ(out,
            "id: r:1\nevent: token\ndata: {\"type\":\"token\",\"content\":\"caf\xC3\xA9 \xF0\x9F\x98\x80 "
            "\\ufffd\"}\n\n");
}

TEST(Heartbeat, IsACommentWithoutId) {
  EXPECT_EQ(kHeartbeat, ": ping\n\n");
  EXPECT_EQ(kContentType, "text/event-stream; charset=utf-8");
}

}  // namespace
}  // namespace chatstream::sse
