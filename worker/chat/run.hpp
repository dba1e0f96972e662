#pragma once
// A run: one answer to one chat request, from its opening to exactly one outcome (complete,
// cancelled, disconnected, timeout, error). It drives the pipeline (store the question, retrieve,
// rerank, cite) and the provider's Generation, enforces the run and token-gap timeouts, passes output
// pressure back to the provider, and ends the work at once when the client goes away. It says what
// happens to its RunWriter (chat/run_writer.hpp); the writer decides how that looks on the wire.
//
// Lifetime: created by start() and owned by the worker's RunRegistry; finish() is the one way out
// (every end path goes through it exactly once); after its last word (end(), possibly after the save)
// the registry hands it to the Graveyard, which deletes it on the next loop turn, never inside its own
// callbacks. The Run owns its writer and its generation.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "chat/chat_request.hpp"
#include "chat/session_waiters.hpp"
#include "chat/run_writer.hpp"
#include "chat/store.hpp"
#include "core/graveyard.hpp"
#include "core/timer_wheel.hpp"
#include "core/uuid.hpp"
#include "http/connection.hpp"
#include "llm/provider.hpp"
#include "sse/stream.hpp"

namespace chatstream::chat {

class RunRegistry;

// What all runs of a worker share.
struct RunEnvironment {
  TimerWheel& wheel;
  llm::Provider& provider;
  RunRegistry& registry;
  SessionWaiters& waiters;
  Graveyard& graveyard;
  sse::StreamSettings stream_settings;
  uint64_t run_timeout_ms = 0;
  uint64_t token_timeout_ms = 0;
  uint64_t disconnect_grace_ms = 10000;  // a streamed run whose client left waits this long for a resume
  Store* store = nullptr;  // null: no database (no persistence, no retrieval)
  size_t history_messages = 10;
  size_t history_chars = 6000;
  size_t retrieval_candidates = 20;
  size_t rerank_keep = 4;
};

class Run final : public Reclaimable,
                  private llm::EventSink,
                  private llm::ToolRunner,
                  private sse::StreamObserver,
                  private sse::LogWatcher,
                  private SessionWaiter {
 public:
  static void start(RunEnvironment& env, http::Connection& connection, ChatRequest request, RunMode mode);

  // POST /chat/cancel (reason cancel_request), or a newer message that interrupts it (interrupted):
  // ends the run with `cancelled`. `reason` must be a string literal.
  void cancel(std::string_view reason = "cancel_request");
  // The drain deadline passed: ends the run with error{shutdown}.
  void shut_down();

  const Uuid& id() const { return id_; }
  const Uuid& session_id() const { return session_id_; }
  // The user the run belongs to (POST /chat/cancel finds only one's own runs).
  const std::string& user_id() const { return user_id_; }
  // For checkpoints: whether the run's row exists, the answer so far, and how much of it is stored.
  bool persisted() const { return persisted_ && status_ == RunStatus::kRunning; }
  std::string_view answer() const { return answer_; }
  // The answer as far as the event log holds it: without the token text still merging for the next
  // flush pass. What a checkpoint stores, so the stored text and a replay of the stored events agree.
  std::string_view framed_answer() const {
    size_t pending = log_ && writer_ ? writer_->pending_token_bytes() : 0;
    return std::string_view(answer_).substr(0, answer_.size() - std::min(pending, answer_.size()));
  }
  uint64_t tokens() const { return tokens_; }
  // The tokens of framed_answer(): a checkpoint's count agrees with its text and its events.
  uint64_t framed_tokens() const {
    uint64_t pending = log_ && writer_ ? writer_->pending_tokens() : 0;
    return tokens_ - std::min(pending, tokens_);
  }
  size_t checkpointed_bytes() const { return checkpointed_bytes_; }
  // The checkpoints stored so far: the next one's piece number (run_events.piece).
  uint32_t checkpoint_pieces() const { return checkpoint_pieces_; }
  // A checkpoint committed: it stored the answer up to `bytes` and the events up to `events`.
  void checkpointed(size_t bytes, uint64_t events) {
    checkpointed_bytes_ = std::max(checkpointed_bytes_, bytes);
    checkpointed_events_ = std::max(checkpointed_events_, events);
    ++checkpoint_pieces_;
  }
  // A resumable run's events (chatstream's SSE protocol), null for the other formats; valid until
  // the run is freed (it has ended by then, and its readers have let go).
  sse::EventLog* event_log() const { return log_; }
  // Events stored by checkpoints so far (the next checkpoint appends from here).
  uint64_t checkpointed_events() const { return checkpointed_events_; }

 private:
  Run(RunEnvironment& env, http::Connection& connection, ChatRequest request, RunMode mode);
  void begin();
  void open();
  // One running run per conversation: store the question and start, or hear that the session is busy.
  void send_start();
  void on_busy();
  void on_session_busy(const Uuid& running_run);
  void wait_for_session();
  void on_session_free() override;
  static void on_wait_timer(void* self);
  // The pipeline, in order; each stage starts the next when its work is done.
  void on_started(Result<RunStarted>& started);
  void start_retrieval();
  void search(std::string question, const std::string& query);
  std::vector<std::string> earlier_user_messages() const;
  void on_retrieved(Result<std::vector<rag::Passage>>& candidates);
  void start_generation();
  RunEnd make_end(Errc error, std::string_view message = {}) const;
  RunOutcome outcome(RunStatus shown, Errc error, std::string_view message, int64_t message_id) const;
  // A resumable run whose client left goes on while anyone reads its log; with nobody, it waits
  // --disconnect-grace for a resume ("on_disconnect": "continue": until it ends).
  void check_readers();
  static void on_grace_expired(void* self);
  // What the client sees at the end (after the save, for a complete run with a database).
  void end(RunStatus shown, Errc error, std::string_view message, int64_t message_id,
           std::string_view extra_fields = {});
  void finish(RunStatus status, Errc error = Errc::kInternal, std::string_view message = {},
              std::string_view extra_fields = {});
  void fail(const Error& error) { finish(RunStatus::kError, error.code, error.message); }
  void arm_watchdog();
  static void on_watchdog(void* self);
  double elapsed_ms(uint64_t since_us) const;

  // llm::EventSink
  void on_stage(std::string_view type, std::string_view fields_json) override;
  void on_token(std::string_view text) override;
  void on_complete() override;
  void on_usage(std::string_view usage_json) override;
  // llm::ToolRunner
  std::string tool_definitions() const override;
  void run_tool(std::string_view name, std::string_view arguments, llm::ToolRunner::Done done) override;
  void cancel_tool() override;
  static void on_tool_timer(void* self);
  void on_error(Errc code, std::string_view message) override;
  // sse::StreamObserver
  void on_pressure(bool over_cap) override;
  void on_slow_consumer() override;
  void on_client_gone() override;
  // sse::LogWatcher
  void on_log_readers_changed(size_t readers) override;

  RunEnvironment& env_;
  bool streaming_;        // kStream or kOpenAIStream
  bool continues_session_;  // the request named a session, which may be busy with another run
  bool opened_ = false;     // the writer was opened (meta sent): a 409 can no longer be an HTTP status
  bool waiting_session_ = false;
  bool queued_announced_ = false;
  Multitask multitask_;
  OnDisconnect on_disconnect_;
  std::string_view cancel_reason_ = "cancel_request";
  RunStatus status_ = RunStatus::kRunning;
  Uuid id_;
  Uuid session_id_;
  std::string user_id_;
  char id_text_[36];
  char session_text_[36];
  std::string message_;
  std::string answer_;  // the text produced so far (persisted, and the whole answer of POST /chat)
  std::string citations_json_ = "[]";
  Store::Ticket ticket_ = 0;  // the statement in flight, cancelled if the run ends first
  uint64_t stage_started_us_ = 0;
  bool persisted_ = false;     // the run's row exists: its end must be written
  bool starting_ = false;      // the start statement is in flight
  // Checkpoints stored so far; beside the two bools, in what was padding: a Run one word larger
  // moved to mimalloc's next size class (+170 bytes per held stream in `hold`).
  uint32_t checkpoint_pieces_ = 0;
  std::unique_ptr<RunWriter> writer_;
  sse::EventLog* log_ = nullptr;  // the writer's, when resumable
  std::unique_ptr<llm::Generation> generation_;
  Timer watchdog_;
  // What only the database, retrieval and tool paths use, allocated when first needed: a held
  // scripted stream without a database stays small (bench/run.sh hold).
  struct Pipeline {
    explicit Pipeline(Run* run)
        : tool_timer(&Run::on_tool_timer, run), wait_timer(&Run::on_wait_timer, run), grace_timer(&Run::on_grace_expired, run) {}
    std::string language;
    std::vector<llm::Turn> history;
    std::vector<rag::Passage> passages;  // kept after reranking, in citation order
    Timer tool_timer;                    // delivers a tool result that needs no database from the loop
    llm::ToolRunner::Done tool_done;
    std::string tool_result;
    std::string search_question;
    std::string usage_json;
    Timer wait_timer;                    // retries the start of a run waiting for its conversation
    Uuid busy_run;                                   // the run this one waits for or was refused by
    Timer grace_timer;                               // the client left: cancel unless a resume comes
  };
  Pipeline& pipeline() {
    if (!pipeline_) pipeline_ = std::make_unique<Pipeline>(this);
    return *pipeline_;
  }
  std::unique_ptr<Pipeline> pipeline_;
  uint64_t started_us_;  // for the figures (ttft, duration)
  uint64_t started_ms_;  // on the wheel's clock, for the deadlines
  uint64_t first_token_us_ = 0;
  uint64_t last_token_us_ = 0;  // for the token-gap histogram
  uint64_t last_token_ms_;
  uint64_t tokens_ = 0;
  size_t checkpointed_bytes_ = 0;  // of answer_, stored by the last checkpoint
  uint64_t checkpointed_events_ = 0;
  int64_t answer_message_id_ = 0;  // allocated by the start statement
  double final_duration_ms_ = -1;  // fixed by finish(), so the stored and the sent end agree
  bool paused_ = false;
};

}  // namespace chatstream::chat
