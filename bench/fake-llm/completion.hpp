// One answer to a chat completion request: content tokens (numbered, or --text word by word,
// after a "Based on the tool result: ..." prefix when the request ends with a tool message) or a
// tool call (its arguments in several fragments), streamed as OpenAI chat.completion.chunk events at
// the configured rate, or sent whole as one chat.completion object; with the stream faults (stall,
// disconnect, malformed, huge) injected at their token.
//
// Streaming is pull-driven: token i is due at start + first-token delay + i/R (absolute deadlines in
// the server's one TimerHeap); when it is due, the stream makes every event that is due, up to a cap
// per loop turn, and stops while the connection holds more than Connection::kHighWater unsent bytes,
// until the connection reports it drained. In split mode every event goes out in pieces, one per
// write, --split-delay-ms apart.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "connection.hpp"
#include "options.hpp"
#include "sse_format.hpp"
#include "timer_heap.hpp"

namespace chatstream::fakellm {

class Server;

struct AnswerPlan {
  std::string id;  // "chatcmpl-..."
  std::string model;
  uint64_t created = 0;  // unix seconds
  bool stream = false;
  bool include_usage = false;
  uint64_t prompt_tokens = 0;

  // Content: prefix words, then `text_words` if set, else `numbered_tokens` tokens "t<i> ".
  std::vector<std::string> prefix_words;
  const std::vector<std::string>* text_words = nullptr;
  uint32_t numbered_tokens = 0;

  // A tool call instead of content when `tool_name` is set.
  std::string tool_name;
  std::string call_id;
  std::vector<std::string> tool_fragments;  // the arguments JSON text, in pieces

  double rate = 0;  // items (tokens or fragments) per second, 0 = as fast as the socket takes them
  uint32_t first_token_delay_ms = 0;
  Fault fault = Fault::kNone;  // only the in-stream faults reach here
  uint32_t fault_after = 0;    // items sent before it
};

class Completion final : public Producer {
 public:
  static constexpr size_t kHugeBytes = 1024 * 1024;

  // Answers the connection's current request: whole (stream:false) at once, or as a stream that
  // the connection owns from here on.
  static void start(Server& server, Connection& connection, AnswerPlan plan);

  Completion(Server& server, Connection& connection, AnswerPlan plan);
  ~Completion() override;

  void on_output_drained() override;
  void on_connection_closed() override;

 private:
  enum class Phase : uint8_t { kItems, kEnding, kEnded };

  static void on_timer(void* self);
  void begin();
  void pump();
  // Appends one event; in split mode it is queued as pieces instead of written.
  void emit(std::string_view json);
  void emit_raw(std::string_view event_bytes);
  // Writes the next split piece; false when none is left.
  bool write_piece();
  void item_json(size_t index, std::string& out) const;
  void chunk_json(std::string_view choice, std::string& out) const;
  void usage_json(std::string& out) const;
  void send_whole();
  void leave(bool completed);

  size_t item_count() const;
  std::string_view item_text(size_t index, std::string& scratch) const;

  Server& server_;
  Connection& connection_;
  AnswerPlan plan_;
  SseStyle style_;
  bool split_ = false;
  Timer timer_;
  std::string chunk_prefix_;  // {"id":...,"model":...,"choices":[  shared by every chunk

  Phase phase_ = Phase::kItems;
  uint64_t items_start_us_ = 0;
  uint64_t next_item_ = 0;
  uint64_t items_sent_ = 0;  // completion_tokens
  uint64_t events_ = 0;      // SSE events so far (for comment placement)
  bool fault_pending_ = false;
  bool stalled_ = false;
  bool waiting_for_drain_ = false;
  bool held_back_ = false;  // backpressure stopped the stream since its last token
  bool open_ = false;       // counted in Stats::open_streams
  bool connection_gone_ = false;

  // Split mode: bytes of the events not yet written, and where to cut them.
  std::string split_bytes_;
  std::vector<uint32_t> cuts_;
  size_t next_cut_ = 0;
  size_t split_sent_ = 0;
  uint64_t next_piece_us_ = 0;
};

}  // namespace chatstream::fakellm
