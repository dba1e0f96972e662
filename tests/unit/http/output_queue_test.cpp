#include "http/output_queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace chatstream::http {
namespace {

// Every unsent byte, in order, through gather() as a write would see them.
std::string contents(const OutputQueue& queue) {
  std::vector<uv_buf_t> bufs(4096);
  size_t total = 0;
  int count = queue.gather(bufs.data(), static_cast<int>(bufs.size()), &total);
  std::string out;
  for (int i = 0; i < count; ++i) out.append(bufs[i].base, bufs[i].len);
  EXPECT_EQ(out.size(), total);
  return out;
}

int buffer_count(const OutputQueue& queue) {
  std::vector<uv_buf_t> bufs(4096);
  return queue.gather(bufs.data(), static_cast<int>(bufs.size()), nullptr);
}

// Distinct bytes so a shifted or repeated range shows up.
std::string pattern(size_t length, unsigned seed = 0) {
  std::string out(length, '\0');
  for (size_t i = 0; i < length; ++i) out[i] = static_cast<char>((i * 131 + seed * 7 + i / 251) & 0xFF);
  return out;
}

TEST(OutputQueue, StartsEmpty) {
  OutputQueue queue;
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.size(), 0u);
  uv_buf_t buf;
  size_t total = 99;
  EXPECT_EQ(queue.gather(&buf, 1, &total), 0);
  EXPECT_EQ(total, 0u);
}

TEST(OutputQueue, AppendOfNothingKeepsItEmpty) {
  OutputQueue queue;
  queue.append("");
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(buffer_count(queue), 0);
}

TEST(OutputQueue, GathersASmallAppendAsOneBuffer) {
  OutputQueue queue;
  queue.append("hello ");
  queue.append("world");
  EXPECT_EQ(queue.size(), 11u);
  EXPECT_FALSE(queue.empty());
  uv_buf_t bufs[4];
  size_t total = 0;
  ASSERT_EQ(queue.gather(bufs, 4, &total), 1);
  EXPECT_EQ(total, 11u);
  EXPECT_EQ(std::string(bufs[0].base, bufs[0].len), "hello world");
}

TEST(OutputQueue, KeepsDataLargerThanOneBlockExactly) {
  OutputQueue queue;
  std::string data = pattern(3 * OutputQueue::kBlockSize + 123);
  queue.append(data);
  EXPECT_EQ(queue.size(), data.size());
  EXPECT_EQ(contents(queue), data);
}

TEST(OutputQueue, ManySmallAppendsSpanSeveralBlocks) {
  OutputQueue queue;
  std::string model;
  for (int i = 0; i < 2000; ++i) {
    std::string piece = "event " + std::to_string(i) + "\n";
    queue.append(piece);
    model += piece;
  }
  EXPECT_EQ(queue.size(), model.size());
  EXPECT_EQ(contents(queue), model);

  std::vector<uv_buf_t> bufs(64);
  int count = queue.gather(bufs.data(), 64, nullptr);
  EXPECT_GE(static_cast<size_t>(count), model.size() / OutputQueue::kBlockSize);
  for (int i = 0; i < count; ++i) EXPECT_LE(bufs[i].len, OutputQueue::kBlockSize);
}

TEST(OutputQueue, PartialConsumeInsideABlock) {
  OutputQueue queue;
  queue.append("abcdef");
  queue.consume(2);
  EXPECT_EQ(queue.size(), 4u);
  EXPECT_EQ(contents(queue), "cdef");
  queue.consume(3);
  EXPECT_EQ(contents(queue), "f");
  queue.append("gh");
  EXPECT_EQ(contents(queue), "fgh");
  queue.consume(3);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(buffer_count(queue), 0);
}

TEST(OutputQueue, ConsumeAcrossBlockBoundaries) {
  OutputQueue queue;
  std::string model;
  for (int i = 0; i < 300; ++i) {
    std::string piece = pattern(97, static_cast<unsigned>(i));
    queue.append(piece);
    model += piece;
  }
  ASSERT_GT(buffer_count(queue), 3);
  for (size_t step : {size_t{1}, OutputQueue::kBlockSize - 1, size_t{4096 + 4096 + 5}, size_t{7}}) {
    queue.consume(step);
    model.erase(0, step);
    EXPECT_EQ(queue.size(), model.size());
    EXPECT_EQ(contents(queue), model);
  }
}

TEST(OutputQueue, ConsumeOfMoreThanTheSizeEmptiesTheQueue) {
  OutputQueue queue;
  queue.append("abc");
  queue.consume(100);
  EXPECT_TRUE(queue.empty());
  queue.append("xyz");
  EXPECT_EQ(contents(queue), "xyz");
}

TEST(OutputQueue, GatherFillsAtMostTheGivenNumberOfBuffers) {
  OutputQueue queue;
  std::string model;
  for (int i = 0; i < 5000; ++i) {
    queue.append("0123456789");
    model += "0123456789";
  }
  uv_buf_t bufs[2];
  size_t total = 0;
  ASSERT_EQ(queue.gather(bufs, 2, &total), 2);
  EXPECT_EQ(total, bufs[0].len + bufs[1].len);
  EXPECT_LT(total, model.size());
  std::string first = std::string(bufs[0].base, bufs[0].len) + std::string(bufs[1].base, bufs[1].len);
  EXPECT_EQ(first, model.substr(0, total));

  // After consuming part of the head, the first buffer starts at the first unsent byte.
  queue.consume(5);
  ASSERT_EQ(queue.gather(bufs, 1, &total), 1);
  EXPECT_EQ(std::string(bufs[0].base, bufs[0].len), model.substr(5, total));
}

TEST(OutputQueue, KeepsALargeAppendExactly) {
  OutputQueue queue;
  std::string data = pattern(200 * 1024 + 17, 3);
  queue.append("head:");
  queue.append(data);
  queue.append(":tail");
  EXPECT_EQ(queue.size(), data.size() + 10);
  EXPECT_EQ(contents(queue), "head:" + data + ":tail");
  queue.consume(70000);
  EXPECT_EQ(contents(queue), ("head:" + data + ":tail").substr(70000));
}

TEST(OutputQueue, AppendingNeverMovesQueuedBytes) {
  OutputQueue queue;
  queue.append(pattern(1000));
  uv_buf_t before;
  ASSERT_EQ(queue.gather(&before, 1, nullptr), 1);
  const char* base = before.base;
  for (int i = 0; i < 100; ++i) queue.append(pattern(777, static_cast<unsigned>(i)));
  queue.append(pattern(100000));
  uv_buf_t after;
  ASSERT_EQ(queue.gather(&after, 1, nullptr), 1);
  EXPECT_EQ(after.base, base);
  EXPECT_EQ(std::string(after.base, 1000), pattern(1000));
}

TEST(OutputQueue, EmptiedQueueReturnsItsBlocksToThePool) {
  OutputQueue queue;
  for (int i = 0; i < 1000; ++i) queue.append("a small SSE event of some fifty bytes or so ......\n");
  int blocks = buffer_count(queue);
  ASSERT_GE(blocks, 10);
  size_t pooled_while_full = OutputQueue::pooled_blocks();
  queue.consume(queue.size());
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(OutputQueue::pooled_blocks(), pooled_while_full + static_cast<size_t>(blocks));
}

TEST(OutputQueue, ClearReturnsItsBlocksToThePool) {
  OutputQueue queue;
  for (int i = 0; i < 500; ++i) queue.append("0123456789abcdef0123456789abcdef");
  int blocks = buffer_count(queue);
  size_t pooled_while_full = OutputQueue::pooled_blocks();
  queue.clear();
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.size(), 0u);
  EXPECT_EQ(OutputQueue::pooled_blocks(), pooled_while_full + static_cast<size_t>(blocks));
}

TEST(OutputQueue, DestructorReturnsItsBlocksToThePool) {
  size_t pooled_while_full;
  int blocks;
  {
    OutputQueue queue;
    for (int i = 0; i < 500; ++i) queue.append("0123456789abcdef0123456789abcdef");
    blocks = buffer_count(queue);
    pooled_while_full = OutputQueue::pooled_blocks();
  }
  EXPECT_EQ(OutputQueue::pooled_blocks(), pooled_while_full + static_cast<size_t>(blocks));
}

TEST(OutputQueue, ReusesPooledBlocks) {
  {
    OutputQueue warm;
    for (int i = 0; i < 100; ++i) warm.append(pattern(100));
  }
  size_t pooled = OutputQueue::pooled_blocks();
  ASSERT_GE(pooled, 2u);
  OutputQueue queue;
  queue.append("x");
  EXPECT_EQ(OutputQueue::pooled_blocks(), pooled - 1);
}

// A std::string is the model: random appends, consumes and gathers with a fixed seed.
TEST(OutputQueue, MatchesAStringModelUnderRandomOperations) {
  std::mt19937 random(20240607);
  OutputQueue queue;
  std::string model;
  unsigned serial = 0;
  for (int op = 0; op < 5000; ++op) {
    int kind = static_cast<int>(random() % 10);
    if (kind < 5) {
      size_t length = random() % 200;
      if (random() % 20 == 0) length = random() % 20000;
      if (random() % 200 == 0) length = 64 * 1024 + random() % 70000;
      std::string piece = pattern(length, ++serial);
      queue.append(piece);
      model += piece;
    } else if (kind < 9) {
      size_t bytes = model.empty() ? 0 : random() % (model.size() + 1);
      if (random() % 4 == 0) bytes = std::min<size_t>(model.size(), random() % 64);
      queue.consume(bytes);
      model.erase(0, bytes);
    } else {
      int max_bufs = 1 + static_cast<int>(random() % 8);
      std::vector<uv_buf_t> bufs(static_cast<size_t>(max_bufs));
      size_t total = 0;
      int count = queue.gather(bufs.data(), max_bufs, &total);
      ASSERT_LE(count, max_bufs);
      std::string head;
      for (int i = 0; i < count; ++i) {
        ASSERT_GT(bufs[i].len, 0u);
        head.append(bufs[i].base, bufs[i].len);
      }
      ASSERT_EQ(head.size(), total);
      ASSERT_EQ(head, model.substr(0, total)) << "op " << op;
      ASSERT_EQ(count == 0, model.empty());
    }
    ASSERT_EQ(queue.size(), model.size()) << "op " << op;
    ASSERT_EQ(queue.empty(), model.empty());
    if (op % 50 == 0) {
      ASSERT_EQ(contents(queue), model) << "op " << op;
    }
  }
  ASSERT_EQ(contents(queue), model);
}

}  // namespace
}  // namespace chatstream::http
