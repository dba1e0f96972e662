// The payloads that carry a run's events to followers on other workers: below PostgreSQL's NOTIFY
// limit, whole events where they fit, big events in pieces cut on UTF-8 boundaries — and the
// follower's parsing of them gives back the events byte for byte.
#include "chat/run_publisher.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sse/event_log.hpp"

namespace chatstream::chat {
namespace {

constexpr std::string_view kRun = "0b6f2a9e-8d1c-4f7a-9e2b-5c3d1a7f9e01";

// What a follower does with the payloads (chat/run_followers.cpp), reduced to reassembly.
std::string reassemble(const std::vector<std::string>& payloads, uint64_t first_seq) {
  std::string events, piece;
  uint64_t next = first_seq;
  for (const std::string& payload : payloads) {
    size_t newline = payload.find('\n');
    EXPECT_NE(newline, std::string::npos);
    EXPECT_EQ(payload.substr(0, 36), kRun);
    std::string head = payload.substr(37, newline - 37);
    uint64_t seq = std::stoull(head.substr(0, head.find(' ')));
    char kind = head.back();
    std::string body = payload.substr(newline + 1);
    if (kind == '=') {
      EXPECT_EQ(seq, next);
      sse::for_each_framed_event(body, [&](uint64_t s, std::string_view) { next = s + 1; });
      events += body;
    } else {
      piece += body;
      if (kind == '.') {
        EXPECT_EQ(seq, next);
        events += piece;
        piece.clear();
        ++next;
      }
    }
  }
  return events;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

TEST(RunPublisher, SmallEventsShareAPayload) {
  sse::EventLog log(kRun);
  for (int i = 0; i < 20; ++i) log.append_token("word ");
  std::string framed;
  log.frame(5, 20, framed);
  std::vector<std::string> payloads;
  RunPublisher::split_into_payloads(kRun, 5, framed, payloads);
  ASSERT_EQ(payloads.size(), 1u);
  EXPECT_EQ(payloads[0].substr(0, 41), std::string(kRun) + " 5 =\n");
  EXPECT_EQ(reassemble(payloads, 5), framed);
}

TEST(RunPublisher, ManyAndHugeEventsStayUnderTheNotifyLimitAndComeBackWhole) {
  sse::EventLog log(kRun);
  log.append("meta", "");
  std::string big;
  for (int i = 0; i < 3000; ++i) big += "日本語🚀é";  // multi-byte everywhere: cuts must not split them
  for (int i = 0; i < 300; ++i) log.append_token("token " + std::to_string(i) + " ");
  log.append_token(big);
  log.append("citations", R"("citations":[])");
  log.append_token(big.substr(0, 7799));
  log.append("done", R"("status":"complete")");
  std::string framed;
  log.frame(0, log.next_seq(), framed);
  std::vector<std::string> payloads;
  RunPublisher::split_into_payloads(kRun, 0, framed, payloads);
  EXPECT_GT(payloads.size(), 10u);
  for (const std::string& payload : payloads) {
    EXPECT_LT(payload.size(), 8000u);
    EXPECT_TRUE(valid_utf8(payload));
  }
  EXPECT_EQ(reassemble(payloads, 0), framed);
}

}  // namespace
}  // namespace chatstream::chat
