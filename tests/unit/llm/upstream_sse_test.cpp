#include "llm/upstream_sse.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace chatstream::llm {
namespace {

struct Recorder final : UpstreamSseParser::Sink {
  std::vector<std::string> events;  // "type|id|data", id "-" when absent
  int comments = 0;
  bool on_event(const SseEvent& event) override {
    events.push_back(std::string(event.type) + "|" + (event.has_id ? std::string(event.id) : "-") + "|" +
                     std::string(event.data));
    return true;
  }
  void on_comment() override { ++comments; }
};

TEST(UpstreamSseParser, JoinsDataLinesAndKeepsTypeAndIdOfTheirEvent) {
  UpstreamSseParser parser;
  Recorder recorder;
  ASSERT_TRUE(parser.feed("event: token\nid: 7\ndata: a\ndata:b\n\n: keep-alive\n\ndata: c\n\n", recorder));
  EXPECT_EQ(recorder.events, (std::vector<std::string>{"token|7|a\nb", "|-|c"}));
  EXPECT_EQ(recorder.comments, 1);
}

TEST(UpstreamSseParser, LinesAndCrlfPairsCutAcrossReads) {
  const std::string stream = "data: {\"x\":1}\r\n\r\nevent: done\rdata: [DONE]\r\r";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    UpstreamSseParser parser;
    Recorder recorder;
    ASSERT_TRUE(parser.feed(std::string_view(stream).substr(0, cut), recorder));
    ASSERT_TRUE(parser.feed(std::string_view(stream).substr(cut), recorder));
    EXPECT_EQ(recorder.events, (std::vector<std::string>{"|-|{\"x\":1}", "done|-|[DONE]"})) << "cut at " << cut;
  }
}

TEST(UpstreamSseParser, EventWithoutDataIsDroppedWithItsFields) {
  UpstreamSseParser parser;
  Recorder recorder;
  ASSERT_TRUE(parser.feed("event: meta\nid: 1\nretry: 5\n\ndata: x\n\n", recorder));
  EXPECT_EQ(recorder.events, (std::vector<std::string>{"|-|x"}));
}

TEST(UpstreamSseParser, BoundsTheEventAndStopsWhenAsked) {
  UpstreamSseParser bounded(16);
  Recorder recorder;
  EXPECT_TRUE(bounded.feed("data: 0123456789\n", recorder));
  EXPECT_FALSE(bounded.feed("data: 0123456789\n", recorder));  // 10 + 16 bytes: over
  EXPECT_TRUE(recorder.events.empty());

  UpstreamSseParser parser;
  int calls = 0;
  EXPECT_FALSE(parser.feed("data: a\n\ndata: b\n\n", [&](std::string_view) { return ++calls < 1; }));
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace chatstream::llm
