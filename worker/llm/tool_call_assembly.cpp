#include "llm/tool_call_assembly.hpp"

namespace chatstream::llm {

void ToolCallAssembly::add(simdjson::dom::array pieces) {
  for (simdjson::dom::element piece : pieces) {
    uint64_t index = 0;
    // Some OpenAI-compatible servers omit the index on continuation pieces of a single call.
    if (piece["index"].get(index)) index = calls_.empty() ? 0 : calls_.size() - 1;
    if (index >= kMaxCalls) continue;
    if (calls_.size() <= index) calls_.resize(index + 1);
    ToolCall& call = calls_[index];
    if (std::string_view id; !piece["id"].get(id)) call.id = id;
    // The name is bounded too: an upstream that repeats it in every piece would grow it without end.
    if (std::string_view name; !piece["function"]["name"].get(name)) {
      if (call.name.size() + name.size() <= kMaxNameBytes) call.name += name;
    }
    if (std::string_view arguments; !piece["function"]["arguments"].get(arguments)) {
      if (call.arguments.size() + arguments.size() <= kMaxArgumentBytes) call.arguments += arguments;
    }
  }
}

}  // namespace chatstream::llm
