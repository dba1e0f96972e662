#include "llm/tool_call_assembly.hpp"

#include <gtest/gtest.h>

#include <string>

namespace chatstream::llm {
namespace {

// Feeds one delta's tool_calls array (JSON text) to the assembly.
void add(ToolCallAssembly& assembly, simdjson::dom::parser& parser, const std::string& pieces) {
  simdjson::dom::array array;
  ASSERT_FALSE(parser.parse(pieces).get(array)) << pieces;
  assembly.add(array);
}

TEST(ToolCallAssembly, ConcatenatesFragmentsPerIndex) {
  simdjson::dom::parser parser;
  ToolCallAssembly assembly;
  add(assembly, parser, R"([{"index":0,"id":"call_a","function":{"name":"sea","arguments":"{\"q\":"}}])");
  add(assembly, parser, R"([{"index":1,"id":"call_b","function":{"name":"time","arguments":"{}"}}])");
  add(assembly, parser, R"([{"index":0,"function":{"name":"rch","arguments":"\"wal\"}"}}])");
  ASSERT_EQ(assembly.calls().size(), 2u);
  EXPECT_EQ(assembly.calls()[0].id, "call_a");
  EXPECT_EQ(assembly.calls()[0].name, "search");
  EXPECT_EQ(assembly.calls()[0].arguments, R"({"q":"wal"})");
  EXPECT_EQ(assembly.calls()[1].name, "time");
  EXPECT_EQ(assembly.calls()[1].arguments, "{}");
}

TEST(ToolCallAssembly, PieceWithoutIndexContinuesTheLastCall) {
  simdjson::dom::parser parser;
  ToolCallAssembly assembly;
  add(assembly, parser, R"([{"id":"c","function":{"name":"f","arguments":"{"}}])");
  add(assembly, parser, R"([{"function":{"arguments":"}"}}, 7, "x"])");
  ASSERT_EQ(assembly.calls().size(), 1u);
  EXPECT_EQ(assembly.calls()[0].arguments, "{}");
  assembly.clear();
  EXPECT_TRUE(assembly.empty());
}

TEST(ToolCallAssembly, BoundsCallsAndArguments) {
  simdjson::dom::parser parser;
  ToolCallAssembly assembly;
  add(assembly, parser, R"([{"index":17,"id":"far"},{"index":18446744073709551615,"id":"farther"}])");
  EXPECT_TRUE(assembly.empty());
  add(assembly, parser, R"([{"index":16,"id":"last"}])");
  EXPECT_EQ(assembly.calls().size(), ToolCallAssembly::kMaxCalls);

  std::string fragment(ToolCallAssembly::kMaxArgumentBytes - 1, 'a');
  add(assembly, parser, R"([{"index":0,"function":{"arguments":")" + fragment + R"("}}])");
  add(assembly, parser, R"([{"index":0,"function":{"arguments":"bc"}}])");  // would cross: dropped whole
  add(assembly, parser, R"([{"index":0,"function":{"arguments":"d"}}])");
  EXPECT_EQ(assembly.calls()[0].arguments, fragment + "d");
}

TEST(ToolCallAssembly, BoundsNames) {
  simdjson::dom::parser parser;
  ToolCallAssembly assembly;
  const std::string piece = R"([{"index":0,"function":{"name":"abcdefghijklmnop"}}])";  // 16 bytes each
  for (int i = 0; i < 1000; ++i) add(assembly, parser, piece);
  EXPECT_EQ(assembly.calls()[0].name.size(), ToolCallAssembly::kMaxNameBytes);
}

}  // namespace
}  // namespace chatstream::llm
