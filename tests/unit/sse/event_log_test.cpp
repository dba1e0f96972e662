// The event log of a resumable run: framing on read equals the framing sent, replica logs, readers.
#include "sse/event_log.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sse/framing.hpp"

namespace chatstream::sse {
namespace {

constexpr std::string_view kRun = "0b6f2a9e-8d1c-4f7a-9e2b-5c3d1a7f9e01";

struct CountingReader final : LogListener {
  int appended = 0, ended = 0, gone = 0;
  void on_log_appended() override { ++appended; }
  void on_log_ended() override { ++ended; }
  void on_log_gone() override { ++gone; }
};

struct CountingWatcher final : LogWatcher {
  std::vector<size_t> counts;
  void on_log_readers_changed(size_t readers) override { counts.push_back(readers); }
};

TEST(EventLog, FramesEveryEventExactlyAsTheStreamDid) {
  EventLog log(kRun);
  log.append("meta", R"("run_id":"x")");
  log.append_token("Hello, \"world\"\n");
  log.append("stage", R"("stage":"generating")");
  log.append_token("日本語 🚀");
  log.append("done", R"("status":"complete","tokens":2)");
  std::string expected;
  append_event(expected, kRun, 0, "meta", R"("run_id":"x")");
  append_token_event(expected, kRun, 1, "Hello, \"world\"\n");
  append_event(expected, kRun, 2, "stage", R"("stage":"generating")");
  append_token_event(expected, kRun, 3, "日本語 🚀");
  append_event(expected, kRun, 4, "done", R"("status":"complete","tokens":2)");
  std::string all;
  log.frame(0, log.next_seq(), all);
  EXPECT_EQ(all, expected);
  // Any range, clamped to what the log holds.
  std::string tail;
  log.frame(3, 100, tail);
  std::string expected_tail;
  append_token_event(expected_tail, kRun, 3, "日本語 🚀");
  append_event(expected_tail, kRun, 4, "done", R"("status":"complete","tokens":2)");
  EXPECT_EQ(tail, expected_tail);
  std::string none;
  log.frame(5, 9, none);
  EXPECT_TRUE(none.empty());
}

TEST(EventLog, SplitsFramedTextBackIntoEventsWithTheirSeqAndType) {
  EventLog log(kRun);
  log.append("meta", "");
  log.append_token("a\n\nb");  // escaped in the data line: never a blank line inside an event
  log.append("error", R"("code":"worker_lost","retryable":true)");
  std::string framed;
  log.frame(0, 3, framed);
  std::vector<std::pair<uint64_t, std::string>> events;
  for_each_framed_event(framed, [&](uint64_t seq, std::string_view event) {
    events.emplace_back(seq, std::string(framed_event_type(event)));
  });
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], (std::pair<uint64_t, std::string>{0, "meta"}));
  EXPECT_EQ(events[1], (std::pair<uint64_t, std::string>{1, "token"}));
  EXPECT_EQ(events[2], (std::pair<uint64_t, std::string>{2, "error"}));
  EXPECT_TRUE(is_terminal_type("error"));
  EXPECT_FALSE(is_terminal_type("token"));
  EXPECT_EQ(framed_event_seq("id: nothing\n\n"), -1);
}

TEST(EventLog, AReplicaStartsAtItsCursorAndKeepsFramedEventsAsTheyCame) {
  EventLog owner(kRun);
  for (int i = 0; i < 6; ++i) owner.append_token("t" + std::to_string(i));
  std::string framed;
  owner.frame(4, 6, framed);
  EventLog replica(kRun, 4);
  for_each_framed_event(framed, [&](uint64_t seq, std::string_view event) {
    EXPECT_EQ(seq, replica.next_seq());
    replica.append_framed(event);
  });
  std::string again;
  replica.frame(0, 100, again);
  EXPECT_EQ(again, framed);
  EXPECT_EQ(replica.base_seq(), 4u);
  EXPECT_EQ(replica.next_seq(), 6u);
}

TEST(EventLog, TheStoredFormIsSmallAndFramesAgainByteForByte) {
  EventLog owner(kRun);
  owner.append("meta", R"("run_id":"x")");
  owner.append("stage", "");
  for (int i = 0; i < 50; ++i) owner.append_token(i % 7 == 0 ? "a:b 12: \"é\"\n" : "word ");
  owner.append("done", R"("status":"complete","tokens":50)");
  std::string stored;
  owner.store(2, owner.next_seq(), stored);
  std::string framed;
  owner.frame(2, owner.next_seq(), framed);
  EXPECT_LT(stored.size() * 5, framed.size()) << "a token costs its text and a few bytes";

  EventLog replica(kRun, 2);
  std::string_view rest = stored;
  StoredEvent event;
  std::vector<std::string> types;
  while (take_stored_event(rest, event)) {
    types.emplace_back(event.type());
    replica.append_stored(event);
  }
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(types.front(), "token");
  EXPECT_EQ(types.back(), "done");
  EXPECT_TRUE(event.terminal());
  std::string again;
  replica.frame(0, 100, again);
  EXPECT_EQ(again, framed);

  // An event written elsewhere in the stored form (the terminal of a run's end, worker_lost by SQL).
  std::string one;
  store_event(one, "error", R"("code":"worker_lost","retryable":true)");
  EXPECT_EQ(one, R"(e43:error "code":"worker_lost","retryable":true)");
  // Malformed input stops the parse: never a read past the end.
  for (std::string_view bad : {"t", "t5:abc", "x1:a", "t:a", "t-1:a", "t99999999999999999999:a", "e"}) {
    std::string_view text = bad;
    EXPECT_FALSE(take_stored_event(text, event)) << bad;
  }
}

TEST(EventLog, TellsReadersAndItsWatcher) {
  CountingWatcher watcher;
  CountingReader first, second;
  {
    EventLog log(kRun);
    log.set_watcher(&watcher);
    log.add_reader(first);
    log.add_reader(second);
    log.append_token("x");
    log.remove_reader(first);
    log.remove_reader(first);  // twice is harmless
    log.append_token("y");
    log.end();
    log.end();
    EXPECT_EQ(log.readers(), 1u);
  }  // the log goes with a reader still on it: the reader hears it
  EXPECT_EQ(first.appended, 1);
  EXPECT_EQ(second.appended, 2);
  EXPECT_EQ(first.ended, 0);
  EXPECT_EQ(second.ended, 1);
  EXPECT_EQ(second.gone, 1);
  EXPECT_EQ(watcher.counts, (std::vector<size_t>{1, 2, 1}));
}

}  // namespace
}  // namespace chatstream::sse
