#pragma once
// A run: one answer to one chat request, from the meta event to exactly one of done / error /
// cancelled. It drives the provider's Generation, enforces the run and token-gap timeouts, turns
// provider events into SSE events (stream mode) or one JSON answer (POST /chat), passes output
// pressure back to the provider, and ends the work at once when the client goes away.
//
// Lifetime: created by start(); registered in the RunRegistry until it finishes; finish() is the one
// way out (every end path goes through it exactly once) and the object is deleted on the next loop
// turn through the Graveyard, never inside its own callbacks.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "chat/chat_request.hpp"
#include "chat/run_registry.hpp"
#include "chat/store.hpp"
#include "core/graveyard.hpp"
#include "core/timer_wheel.hpp"
#include "core/uuid.hpp"
#include "http/connection.hpp"
#include "llm/provider.hpp"
#include "sse/stream.hpp"

namespace chatstream::chat {

// What all runs of a worker share.
struct RunEnvironment {
  TimerWheel& wheel;
  llm::Provider& provider;
  RunRegistry& registry;
  Graveyard& graveyard;
  sse::StreamSettings stream_settings;
  uint64_t run_timeout_ms = 0;
  uint64_t token_timeout_ms = 0;
  Store* store = nullptr;  // null: no database (no persistence, no retrieval)
  size_t history_messages = 10;
  size_t history_chars = 6000;
  size_t retrieval_candidates = 20;
  size_t rerank_keep = 4;
};

// How the answer is delivered: chatstream's SSE protocol, one JSON object (POST /chat), or OpenAI's
// chat.completion.chunk stream / chat.completion object (POST /v1/chat/completions).
enum class RunMode { kStream, kJson, kOpenAIStream, kOpenAIJson };

enum class RunStatus { kRunning, kComplete, kCancelled, kDisconnected, kTimeout, kError };

class Run final : public Reclaimable,
                  private llm::EventSink,
                  private llm::ToolRunner,
                  private sse::StreamObserver,
                  private http::ResponseProducer {
 public:
  static void start(RunEnvironment& env, http::Connection& connection, ChatRequest request, RunMode mode);

  // POST /chat/cancel: ends the run with `cancelled`.
  void cancel();
  // The drain deadline passed: ends the run with error{shutdown}.
  void shut_down();

  const Uuid& id() const { return id_; }

 private:
  Run(RunEnvironment& env, http::Connection& connection, ChatRequest request, RunMode mode);
  void begin();
  // The pipeline, in order; each stage starts the next when its work is done.
  void on_started(std::optional<StoreError> error, RunStarted& started);
  void start_retrieval();
  void search(std::string question, const std::string& query);
  std::vector<std::string> earlier_user_messages() const;
  void on_retrieved(std::optional<StoreError> error, std::vector<rag::Passage>& candidates);
  void start_generation();
  RunEnd make_end(std::string_view error_code) const;
  // What the client sees at the end (after the save, for a complete run with a database).
  void end(RunStatus shown, std::string_view error_code, std::string_view message, int64_t message_id);
  void finish(RunStatus status, std::string_view error_code = {}, std::string_view message = {});
  void write_stream_end(RunStatus status, std::string_view error_code, std::string_view message,
                        int64_t message_id);
  void write_json_end(RunStatus status, std::string_view error_code, std::string_view message, int64_t message_id);
  void write_openai_json_end(RunStatus status, std::string_view error_code, std::string_view message);
  std::string usage_for_client() const;
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
  void on_error(std::string_view code, std::string_view message) override;
  // sse::StreamObserver
  void on_pressure(bool over_cap) override;
  void on_slow_consumer() override;
  void on_client_gone() override;
  // http::ResponseProducer (JSON mode)
  void on_flush() override {}
  void on_output_drained() override {}
  void on_connection_lost() override;

  RunEnvironment& env_;
  http::Connection* connection_;
  RunMode mode_;
  bool streaming_;        // kStream or kOpenAIStream
  bool include_usage_;    // OpenAI clients that asked for the usage chunk
  RunStatus status_ = RunStatus::kRunning;
  Uuid id_;
  Uuid session_id_;
  char id_text_[36];
  char session_text_[36];
  std::string message_;
  std::string answer_;  // the text produced so far (persisted, and the whole answer of POST /chat)
  std::string citations_json_ = "[]";
  Store::Ticket ticket_ = 0;  // the statement in flight, cancelled if the run ends first
  uint64_t stage_started_us_ = 0;
  bool persisted_ = false;     // the run's row exists: its end must be written
  bool starting_ = false;      // the start statement is in flight
  std::optional<sse::Stream> stream_;
  std::unique_ptr<llm::Generation> generation_;
  Timer watchdog_;
  // What only the database, retrieval and tool paths use, allocated when first needed: a held
  // scripted stream without a database stays small (bench/run.sh hold).
  struct Pipeline {
    explicit Pipeline(Run* run) : tool_timer(&Run::on_tool_timer, run) {}
    std::string language;
    std::vector<llm::Turn> history;
    std::vector<rag::Passage> passages;  // kept after reranking, in citation order
    Timer tool_timer;                    // delivers a tool result that needs no database from the loop
    llm::ToolRunner::Done tool_done;
    std::string tool_result;
    std::string search_question;
    std::string usage_json;
    std::string tool_calls_json;         // for POST /chat: the tool calls announced, "[{…},{…}" (open)
  };
  Pipeline& pipeline() {
    if (!pipeline_) pipeline_ = std::make_unique<Pipeline>(this);
    return *pipeline_;
  }
  std::unique_ptr<Pipeline> pipeline_;
  uint64_t started_us_;
  uint64_t first_token_us_ = 0;
  uint64_t last_token_us_ = 0;  // for the token-gap histogram
  uint64_t last_token_ms_;
  uint64_t tokens_ = 0;
  bool paused_ = false;
};

}  // namespace chatstream::chat
