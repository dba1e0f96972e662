#pragma once
// The event log of one resumable run (docs/architecture.md, "Durable runs"): every event the run's
// stream framed, in seq order, kept compact (an event's type and fields, a token event's text; the
// `id:` line and the JSON wrapper are framed again on read, byte for byte as first sent) so a reader
// that comes back with `Last-Event-ID: <run_id>:<seq>` gets every later event with the same id and
// payload. Several readers (sse::LogReader) may follow one log, each at its own cursor.
//
// A replica log (a resume served by a worker that does not own the run) holds events as the owner
// framed them (append_framed) and may start at any seq (base_seq).
//
// Contract: records are appended in seq order; end() once, after the terminal event; the log tells
// its readers about new records and the end, and its watcher (the run) when the number of readers
// changes. A log outlives none of its readers: its destructor tells each one it is gone.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/intrusive_list.hpp"

namespace chatstream::sse {

class LogListener {
 public:
  virtual void on_log_appended() = 0;
  virtual void on_log_ended() = 0;
  // The log is being destroyed without an end (the worker is exiting).
  virtual void on_log_gone() = 0;
  OwnedNode<LogListener> log_node{this};

 protected:
  ~LogListener() = default;
};

class LogWatcher {
 public:
  virtual void on_log_readers_changed(size_t readers) = 0;

 protected:
  ~LogWatcher() = default;
};

// One event in its stored form (run_events.events, docs/architecture.md "Durable runs"): what the
// log keeps, not the framed bytes. An event is `<kind><size>:<payload>`, kind `e` (payload
// `<type> <fields>`), `t` (a token's text) or `f` (an event framed elsewhere). A token event is its
// text plus 4 to 6 bytes instead of ~100 framed: the stored copy of a 400-token answer is ~3 KB,
// not ~28 KB, and a replica frames it again byte for byte as the owner did.
struct StoredEvent {
  char kind = 0;
  std::string_view payload;
  std::string_view type() const;
  bool terminal() const;
};

// Appends an `e` event in its stored form.
void store_event(std::string& out, std::string_view type, std::string_view fields_json);

// Takes the first stored event off the front of `text`; false at the end or at a malformed event.
bool take_stored_event(std::string_view& text, StoredEvent& event);

class EventLog {
 public:
  // `run_id` must outlive the log (the run's own id text).
  explicit EventLog(std::string_view run_id, uint64_t base_seq = 0);
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;
  ~EventLog();

  // `fields_json`: a run of "key":value pairs (no braces), as sse::append_event takes it.
  void append(std::string_view type, std::string_view fields_json);
  void append_token(std::string_view text);
  // An event already framed (`id: …\nevent: …\ndata: …\n\n`), with the seq `next_seq()`.
  void append_framed(std::string_view bytes);
  // One event in its stored form (take_stored_event), with the seq `next_seq()`.
  void append_stored(const StoredEvent& event);
  // After the terminal event: readers write what is left and end their responses.
  void end();

  std::string_view run_id() const { return run_id_; }
  uint64_t base_seq() const { return base_seq_; }
  uint64_t next_seq() const { return base_seq_ + starts_.size(); }
  bool ended() const { return ended_; }
  bool empty() const { return starts_.empty(); }
  // Frames events [from, to) into `out` (clamped to what the log holds).
  void frame(uint64_t from, uint64_t to, std::string& out) const;
  // The stored form of events [from, to) (clamped to what the log holds), appended to `out`.
  void store(uint64_t from, uint64_t to, std::string& out) const;
  // Bytes held (for the memory figures).
  size_t memory() const { return data_.capacity() + starts_.capacity() * sizeof(uint32_t); }

  void add_reader(LogListener& reader);
  void remove_reader(LogListener& reader);
  size_t readers() const { return readers_count_; }
  void set_watcher(LogWatcher* watcher) { watcher_ = watcher; }

 private:
  enum Kind : char { kEvent = 'e', kToken = 't', kFramed = 'f' };
  void begin_record(Kind kind);
  // fn(seq, kind, record) for the records [from, to), clamped to what the log holds.
  template <typename Fn>
  void each_record(uint64_t from, uint64_t to, Fn fn) const;
  template <typename Fn>
  void each_reader(Fn fn);

  std::string_view run_id_;
  uint64_t base_seq_;
  std::string data_;               // the records, back to back: kind, then what the kind holds
  std::vector<uint32_t> starts_;   // where record i begins in data_
  IntrusiveList readers_;
  size_t readers_count_ = 0;
  LogWatcher* watcher_ = nullptr;
  bool ended_ = false;
};

// Splits framed events (`id: <run>:<seq>\n…\n\n`, as stored in run_events) and calls
// fn(seq, bytes_of_one_event) for each, in order. Stops at the first malformed event.
template <typename Fn>
void for_each_framed_event(std::string_view text, Fn fn);

// The seq of a framed event's `id:` line, or -1.
int64_t framed_event_seq(std::string_view event);
// The type of a framed event (its `event:` line), or empty.
std::string_view framed_event_type(std::string_view event);
bool is_terminal_type(std::string_view type);

template <typename Fn>
void for_each_framed_event(std::string_view text, Fn fn) {
  while (!text.empty()) {
    size_t end = text.find("\n\n");
    if (end == std::string_view::npos) return;
    std::string_view event = text.substr(0, end + 2);
    int64_t seq = framed_event_seq(event);
    if (seq < 0) return;
    fn(static_cast<uint64_t>(seq), event);
    text.remove_prefix(end + 2);
  }
}

}  // namespace chatstream::sse
