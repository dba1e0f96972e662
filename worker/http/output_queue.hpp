#pragma once
// A connection's unsent response bytes: a chain of fixed-size blocks taken from a per-process pool
// (4 KiB, recycled between connections as nginx recycles its buffer chains), so an idle stream holds
// no output memory at all and a busy one holds only what the socket has not taken yet.
//
// The queue only stores and hands out bytes; the connection decides when to write (once per loop
// turn) and the SSE layer decides what to do when it grows (merge tokens, pause the source, drop a
// reader that stays slow). Bytes handed to a write stay valid until consume() is called for them;
// appending never moves bytes already queued.

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace chatstream::http {

class OutputQueue {
 public:
  static constexpr size_t kBlockSize = 4096;

  OutputQueue() = default;
  OutputQueue(const OutputQueue&) = delete;
  OutputQueue& operator=(const OutputQueue&) = delete;
  ~OutputQueue() { clear(); }

  void append(std::string_view bytes);
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Fills up to `max_bufs` buffers with the first unsent bytes; returns how many were filled.
  int gather(uv_buf_t* bufs, int max_bufs, size_t* total_bytes) const;
  // Drops the first `bytes` bytes (written to the socket).
  void consume(size_t bytes);
  void clear();

  // Blocks cached in the per-process pool (for tests and metrics).
  static size_t pooled_blocks();

  struct Block;  // defined in the .cpp

 private:
  Block* head_ = nullptr;
  Block* tail_ = nullptr;
  size_t head_offset_ = 0;
  size_t size_ = 0;
};

}  // namespace chatstream::http
