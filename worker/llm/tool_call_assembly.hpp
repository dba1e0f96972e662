#pragma once
// The tool calls of a streamed OpenAI-compatible answer, put together from their deltas. Each chunk's
// `choices[0].delta.tool_calls` is an array of pieces {index, id, function: {name, arguments}}: the id
// arrives once, the name and the arguments as fragments to concatenate in arrival order, and `index`
// says which call a piece belongs to (a piece without one continues the last call).
//
// Bounded, whatever the upstream sends: at most kMaxCalls calls (pieces with a higher index are
// ignored), names of at most kMaxNameBytes and arguments of at most kMaxArgumentBytes (a fragment that
// would cross its bound is dropped whole, so what is kept is never cut inside a fragment).

#include <simdjson.h>

#include <cstddef>
#include <string>
#include <vector>

namespace chatstream::llm {

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text as the model wrote it (validated by the tool, not here)
};

class ToolCallAssembly {
 public:
  static constexpr size_t kMaxCalls = 17;
  static constexpr size_t kMaxNameBytes = 256;  // OpenAI allows 64 characters
  static constexpr size_t kMaxArgumentBytes = 64 * 1024;

  // Adds the pieces of one delta's `tool_calls` array; elements that are not objects are skipped.
  void add(simdjson::dom::array pieces);
  void clear() { calls_.clear(); }

  bool empty() const { return calls_.empty(); }
  const std::vector<ToolCall>& calls() const { return calls_; }

 private:
  std::vector<ToolCall> calls_;
};

}  // namespace chatstream::llm
