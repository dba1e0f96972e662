#pragma once
// Where answer tokens come from. A Provider (one per worker) starts Generations; a Generation reports
// to its EventSink on the worker's loop and can be paused, resumed and cancelled at any time.
//
// Contract for implementations:
// - start() never calls the sink before it returns (first callbacks come from the loop);
// - after on_complete() or on_error() the generation calls nothing more;
// - after cancel() returns it calls nothing more and holds no loop resources that could fire
//   (an upstream request is aborted, a query is cancelled, a timer is stopped);
// - pause() stops producing (an upstream transfer stops reading) until resume(); text produced while
//   paused is never dropped.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/errc.hpp"
#include "rag/passage.hpp"

namespace chatstream::llm {

struct Turn {
  std::string role;  // "user" or "assistant"
  std::string content;
};

// Tools a provider may offer the model, run by the pipeline on the loop (search_knowledge_base runs
// the retrieval and reranking stages and reports them as events).
class ToolRunner {
 public:
  using Done = std::function<void(std::string result)>;
  // The tool definitions as an OpenAI "tools" JSON array; empty when no tool is available.
  virtual std::string tool_definitions() const = 0;
  // Runs tool `name` with JSON `arguments`; `done` is called later from the loop (never inside this
  // call) with the result text, unless cancel_tool() is called first.
  virtual void run_tool(std::string_view name, std::string_view arguments, Done done) = 0;
  virtual void cancel_tool() = 0;

 protected:
  ~ToolRunner() = default;
};

struct RunContext {
  std::string_view run_id;
  std::string_view session_id;
  std::string_view message;
  const std::vector<Turn>* history = nullptr;  // earlier turns of the session, oldest first
  // Passages kept by reranking, best first; citation marker [n] refers to passages[n-1].
  const std::vector<rag::Passage>* passages = nullptr;
  ToolRunner* tools = nullptr;
};

class EventSink {
 public:
  // A pipeline stage with its figures: type is an event type of docs/protocol.md
  // (generation_start, retrieval_start, …) and fields_json a run of "key":value pairs.
  virtual void on_stage(std::string_view type, std::string_view fields_json) = 0;
  virtual void on_token(std::string_view text) = 0;
  virtual void on_complete() = 0;
  // Token usage reported by the model, a JSON object ({"prompt_tokens":…,"completion_tokens":…}).
  virtual void on_usage(std::string_view /*usage_json*/) {}
  // The generation failed (usually Errc::kUpstream); `message` is safe to show to a user.
  virtual void on_error(Errc code, std::string_view message) = 0;

 protected:
  ~EventSink() = default;
};

class Generation {
 public:
  virtual ~Generation() = default;
  virtual void pause() = 0;
  virtual void resume() = 0;
  virtual void cancel() = 0;
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual std::string_view name() const = 0;
  virtual std::unique_ptr<Generation> start(const RunContext& context, EventSink& sink) = 0;
  // The worker is stopping: release loop handles (an upstream client's sockets and timers).
  virtual void close() {}
};

}  // namespace chatstream::llm
