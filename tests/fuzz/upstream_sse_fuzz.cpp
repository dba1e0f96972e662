// Fuzz target: an upstream's streamed answer (bytes of Server-Sent Events) through the real
// UpstreamSseParser and ToolCallAssembly (worker/llm/), as OpenAIGeneration uses them.
//
// Input: 4 bytes that seed where the stream is cut into reads, then the stream. Oracles:
// - the parser delivers the same events (data, type, id) and comments, and stops at the same point,
//   whether the stream arrives in one read or in pieces cut anywhere (inside a CRLF pair, a UTF-8
//   character, a field name), and the data-only interface the provider uses sees the same data;
// - no event holds a CR, or more than the parser's bound;
// - the assembled tool calls keep their bounds and serialize (as the provider sends them back to the
//   upstream) to JSON that parses.
#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "json/writer.hpp"
#include "llm/tool_call_assembly.hpp"
#include "llm/upstream_sse.hpp"
#include "seeded_input.hpp"

namespace {

using chatstream::llm::ToolCall;
using chatstream::llm::ToolCallAssembly;
using chatstream::llm::UpstreamSseParser;

constexpr size_t kMaxEventBytes = 4096;  // small, so the fuzzer reaches the bound

[[noreturn]] void fail(const char* what) {
  fprintf(stderr, "upstream_sse: %s\n", what);
  abort();
}

// Everything the parser reported, in order: each event as "type\x01id-or-\x02\x01data", each comment
// as "\x03".
struct Outcome final : chatstream::llm::UpstreamSseParser::Sink {
  std::vector<std::string> events;  // data only, for the tool-call assembly
  std::vector<std::string> reports;
  bool ok = true;

  bool on_event(const chatstream::llm::SseEvent& event) override {
    events.emplace_back(event.data);
    std::string report(event.type);
    report += '\x01';
    report += event.has_id ? std::string(event.id) : std::string("\x02");
    report += '\x01';
    report += event.data;
    reports.push_back(std::move(report));
    return true;
  }
  void on_comment() override { reports.emplace_back("\x03"); }
};

void parse_whole(std::string_view stream, Outcome& outcome) {
  UpstreamSseParser parser(kMaxEventBytes);
  outcome.ok = parser.feed(stream, outcome);
}

void parse_in_pieces(std::string_view stream, uint32_t seed, Outcome& outcome) {
  UpstreamSseParser parser(kMaxEventBytes);
  chatstream::fuzz::Cuts cuts(seed);
  while (!stream.empty() && outcome.ok) {
    size_t length = std::min<size_t>(stream.size(), 1 + cuts.next() % 16);  // pieces of 1..16 bytes
    outcome.ok = parser.feed(stream.substr(0, length), outcome);
    stream.remove_prefix(length);
  }
}

// The data-only interface the provider uses reports the same data.
std::vector<std::string> parse_data_only(std::string_view stream) {
  std::vector<std::string> events;
  UpstreamSseParser parser(kMaxEventBytes);
  parser.feed(stream, [&](std::string_view data) {
    events.emplace_back(data);
    return true;
  });
  return events;
}

// What OpenAIGeneration::on_event does with one event's data.
void assemble(simdjson::dom::parser& json, const std::string& data, ToolCallAssembly& calls) {
  if (data == "[DONE]") return;
  simdjson::dom::element chunk;
  if (json.parse(data).get(chunk)) return;
  simdjson::dom::array choices;
  if (chunk["choices"].get(choices) || choices.size() == 0) return;
  simdjson::dom::object delta;
  if (choices.at(0).value_unsafe()["delta"].get(delta)) return;
  simdjson::dom::array pieces;
  if (!delta["tool_calls"].get(pieces)) calls.add(pieces);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  chatstream::fuzz::SeededInput input = chatstream::fuzz::split_seed(data, size);
  std::string stream(input.payload);

  Outcome whole;
  parse_whole(stream, whole);
  Outcome pieces;
  parse_in_pieces(stream, input.seed, pieces);
  if (whole.ok != pieces.ok) fail("the bound broke in one read but not in pieces (or the reverse)");
  if (whole.reports != pieces.reports) fail("events or comments differ between one read and pieces");
  if (parse_data_only(stream) != whole.events) fail("the data-only interface reports other events");

  static simdjson::dom::parser json;
  ToolCallAssembly calls;
  for (const std::string& event : whole.events) {
    if (event.size() > kMaxEventBytes) fail("an event is larger than the parser's bound");
    if (event.find('\r') != std::string::npos) fail("an event holds a CR");
    assemble(json, event, calls);
  }

  if (calls.calls().size() > ToolCallAssembly::kMaxCalls) fail("more tool calls than kMaxCalls");
  std::string list = "[";
  for (const ToolCall& call : calls.calls()) {
    if (call.arguments.size() > ToolCallAssembly::kMaxArgumentBytes) fail("arguments over their bound");
    if (call.name.size() > ToolCallAssembly::kMaxNameBytes) fail("name over its bound");
    if (list.size() > 1) list += ",";
    std::string function;
    chatstream::json::Object(function).field("name", call.name).field("arguments", call.arguments).close();
    chatstream::json::Object(list).field("id", call.id).field("type", "function").raw("function", function).close();
  }
  list += "]";
  simdjson::dom::element parsed;
  if (json.parse(list).get(parsed)) fail("the tool calls do not serialize to JSON");
  return 0;
}
