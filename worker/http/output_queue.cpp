#include "http/output_queue.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace chatstream::http {

struct OutputQueue::Block {
  Block* next;
  uint32_t capacity;
  uint32_t used;
  char* data() { return reinterpret_cast<char*>(this + 1); }
};

namespace {
// Workers are single-threaded, so the pool is a plain free list. It keeps at most kMaxPooled blocks
// (4 MiB) so a burst of slow readers does not pin memory forever.
constexpr size_t kMaxPooled = 1024;
constexpr uint32_t kStandardCapacity = OutputQueue::kBlockSize - 16;
struct Pool {
  void* free_list = nullptr;
  size_t count = 0;
} g_pool;
}  // namespace

size_t OutputQueue::pooled_blocks() { return g_pool.count; }

static OutputQueue::Block* acquire_block(size_t min_capacity);
static void release_block(OutputQueue::Block* block);

void OutputQueue::append(std::string_view bytes) {
  while (!bytes.empty()) {
    if (!tail_ || tail_->used == tail_->capacity) {
      Block* block = acquire_block(bytes.size());
      if (tail_) tail_->next = block;
      else head_ = block;
      tail_ = block;
    }
    size_t n = std::min<size_t>(bytes.size(), tail_->capacity - tail_->used);
    std::memcpy(tail_->data() + tail_->used, bytes.data(), n);
    tail_->used += static_cast<uint32_t>(n);
    size_ += n;
    bytes.remove_prefix(n);
  }
}

int OutputQueue::gather(uv_buf_t* bufs, int max_bufs, size_t* total_bytes) const {
  int count = 0;
  size_t total = 0;
  size_t offset = head_offset_;
  for (Block* block = head_; block && count < max_bufs; block = block->next) {
    size_t length = block->used - offset;
    if (length > 0) {
      bufs[count++] = uv_buf_init(block->data() + offset, static_cast<unsigned>(length));
      total += length;
    }
    offset = 0;
  }
  if (total_bytes) *total_bytes = total;
  return count;
}

void OutputQueue::consume(size_t bytes) {
  bytes = std::min(bytes, size_);
  size_ -= bytes;
  while (bytes > 0 && head_) {
    size_t available = head_->used - head_offset_;
    if (bytes < available) {
      head_offset_ += bytes;
      return;
    }
    bytes -= available;
    Block* done = head_;
    head_ = head_->next;
    head_offset_ = 0;
    release_block(done);
  }
  if (!head_) tail_ = nullptr;
  // An empty tail block is kept only while it is the head; once the queue is empty it goes back to
  // the pool so a quiet connection holds no output memory.
  if (size_ == 0 && head_) {
    for (Block* block = head_; block;) {
      Block* next = block->next;
      release_block(block);
      block = next;
    }
    head_ = tail_ = nullptr;
    head_offset_ = 0;
  }
}

void OutputQueue::clear() {
  for (Block* block = head_; block;) {
    Block* next = block->next;
    release_block(block);
    block = next;
  }
  head_ = tail_ = nullptr;
  head_offset_ = 0;
  size_ = 0;
}

static OutputQueue::Block* acquire_block(size_t min_capacity) {
  OutputQueue::Block* block;
  if (min_capacity <= kStandardCapacity || min_capacity > 64 * 1024) {
    // Standard block (a large append spans several of them rather than one huge allocation).
    if (g_pool.free_list) {
      block = static_cast<OutputQueue::Block*>(g_pool.free_list);
      g_pool.free_list = block->next;
      --g_pool.count;
    } else {
      void* memory = std::malloc(sizeof(OutputQueue::Block) + kStandardCapacity);
      if (!memory) throw std::bad_alloc();
      block = static_cast<OutputQueue::Block*>(memory);
    }
    block->capacity = kStandardCapacity;
  } else {
    void* memory = std::malloc(sizeof(OutputQueue::Block) + min_capacity);
    if (!memory) throw std::bad_alloc();
    block = static_cast<OutputQueue::Block*>(memory);
    block->capacity = static_cast<uint32_t>(min_capacity);
  }
  block->next = nullptr;
  block->used = 0;
  return block;
}

static void release_block(OutputQueue::Block* block) {
  if (block->capacity == kStandardCapacity && g_pool.count < kMaxPooled) {
    block->next = static_cast<OutputQueue::Block*>(g_pool.free_list);
    g_pool.free_list = block;
    ++g_pool.count;
    return;
  }
  std::free(block);
}

}  // namespace chatstream::http
