// The streaming tool-call parser: calls found in Qwen's <tool_call> form and Llama 3.1's JSON
// form, whatever the pieces the text arrives in, and plain text left alone.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/tool_calls.h"

using hwledger::server::ToolCallFormat;
using hwledger::server::ToolCallParser;
using hwledger::server::ToolEvent;

namespace {

struct Parsed {
  std::string text;
  std::vector<std::string> names;
  std::vector<std::string> arguments;
  int ends = 0;
  int argument_events = 0;
};

// Feeds `pieces` one by one and gathers the events.
Parsed parse(ToolCallFormat format, const std::vector<std::string>& pieces) {
  ToolCallParser parser(format);
  std::vector<ToolEvent> events;
  for (const auto& p : pieces) parser.push(p, events);
  parser.finish(events);
  Parsed out;
  for (const ToolEvent& e : events) {
    switch (e.kind) {
      case ToolEvent::Kind::Text:
        out.text += e.text;
        break;
      case ToolEvent::Kind::CallStart:
        EXPECT_EQ(e.index, static_cast<int>(out.names.size()));
        out.names.push_back(e.text);
        out.arguments.emplace_back();
        break;
      case ToolEvent::Kind::CallArguments:
        EXPECT_LT(e.index, static_cast<int>(out.arguments.size()));
        out.arguments.at(e.index) += e.text;
        ++out.argument_events;
        break;
      case ToolEvent::Kind::CallEnd:
        ++out.ends;
        break;
    }
  }
  return out;
}

std::vector<std::string> bytes_of(const std::string& s) {
  std::vector<std::string> pieces;
  for (char c : s) pieces.emplace_back(1, c);
  return pieces;
}

// Every split of the text into two pieces, and one byte at a time, gives the same result.
void expect_split_invariant(ToolCallFormat format, const std::string& text) {
  const Parsed whole = parse(format, {text});
  const Parsed bytewise = parse(format, bytes_of(text));
  EXPECT_EQ(bytewise.text, whole.text);
  EXPECT_EQ(bytewise.names, whole.names);
  EXPECT_EQ(bytewise.arguments, whole.arguments);
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    const Parsed two = parse(format, {text.substr(0, cut), text.substr(cut)});
    EXPECT_EQ(two.text, whole.text) << "cut at " << cut;
    EXPECT_EQ(two.names, whole.names) << "cut at " << cut;
    EXPECT_EQ(two.arguments, whole.arguments) << "cut at " << cut;
  }
}

TEST(ToolCalls, HermesSingleCall) {
  const std::string out =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": "
      "\"C\"}}\n</tool_call>";
  const Parsed p = parse(ToolCallFormat::Hermes, {out});
  EXPECT_EQ(p.text, "");
  ASSERT_EQ(p.names, std::vector<std::string>{"get_weather"});
  EXPECT_EQ(nlohmann::json::parse(p.arguments[0]),
            nlohmann::json({{"city", "Paris"}, {"unit", "C"}}));
  EXPECT_EQ(p.ends, 1);
  expect_split_invariant(ToolCallFormat::Hermes, out);
}

TEST(ToolCalls, HermesArgumentsStreamAsTheyArrive) {
  // Byte by byte, the arguments come out in many fragments, not one at the end.
  const std::string out =
      "<tool_call>{\"name\": \"f\", \"arguments\": {\"text\": \"a } tricky \\\" "
      "string\"}}</tool_call>";
  const Parsed p = parse(ToolCallFormat::Hermes, bytes_of(out));
  ASSERT_EQ(p.names.size(), 1u);
  EXPECT_EQ(p.arguments[0], "{\"text\": \"a } tricky \\\" string\"}");
  EXPECT_GT(p.argument_events, 10);
}

TEST(ToolCalls, HermesSeveralCallsWithTextBefore) {
  const std::string out =
      "Let me check both.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": "
      "1}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"b\", \"arguments\": {\"y\": [1, {\"z\": null}]}}\n</tool_call>";
  const Parsed p = parse(ToolCallFormat::Hermes, {out});
  EXPECT_EQ(p.text, "Let me check both.\n");
  EXPECT_EQ(p.names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.arguments[1], "{\"y\": [1, {\"z\": null}]}");
  EXPECT_EQ(p.ends, 2);
  expect_split_invariant(ToolCallFormat::Hermes, out);
}

TEST(ToolCalls, HermesArgumentsBeforeNameAndAsString) {
  const Parsed p1 = parse(ToolCallFormat::Hermes,
                          {"<tool_call>{\"arguments\": {\"q\": 1}, \"name\": \"s\"}</tool_call>"});
  EXPECT_EQ(p1.names, std::vector<std::string>{"s"});
  EXPECT_EQ(p1.arguments[0], "{\"q\": 1}");
  const Parsed p2 =
      parse(ToolCallFormat::Hermes,
            {"<tool_call>{\"name\": \"s\", \"arguments\": \"{\\\"q\\\": 2}\"}</tool_call>"});
  EXPECT_EQ(p2.names, std::vector<std::string>{"s"});
  EXPECT_EQ(p2.arguments[0], "{\"q\": 2}");
  const Parsed p3 =
      parse(ToolCallFormat::Hermes, {"<tool_call>{\"name\": \"noargs\"}</tool_call>"});
  EXPECT_EQ(p3.arguments[0], "{}");
}

TEST(ToolCalls, HermesMalformedCallIsText) {
  const std::string out = "before <tool_call>not json at all</tool_call> after";
  const Parsed p = parse(ToolCallFormat::Hermes, {out});
  EXPECT_TRUE(p.names.empty());
  EXPECT_EQ(p.text, out);
  expect_split_invariant(ToolCallFormat::Hermes, out);
}

TEST(ToolCalls, HermesPlainTextPassesThroughIncludingTagLookalikes) {
  const std::string out = "a < b and <tool is not a tag; <tool_cal";
  const Parsed p = parse(ToolCallFormat::Hermes, bytes_of(out));
  EXPECT_EQ(p.text, out);
  EXPECT_TRUE(p.names.empty());
}

TEST(ToolCalls, HermesUnfinishedCallEndsAtFinish) {
  const Parsed p =
      parse(ToolCallFormat::Hermes, {"<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": \"b"});
  ASSERT_EQ(p.names, std::vector<std::string>{"f"});
  EXPECT_EQ(p.arguments[0], "{\"a\": \"b");  // what the model wrote before it stopped
  EXPECT_EQ(p.ends, 1);
  const Parsed q = parse(ToolCallFormat::Hermes, {"<tool_call>{\"na"});
  EXPECT_TRUE(q.names.empty());
  EXPECT_EQ(q.text, "<tool_call>{\"na");
}

TEST(ToolCalls, LlamaJsonCall) {
  const std::string out = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}";
  const Parsed p = parse(ToolCallFormat::LlamaJson, {out});
  EXPECT_EQ(p.text, "");
  EXPECT_EQ(p.names, std::vector<std::string>{"get_weather"});
  EXPECT_EQ(p.arguments[0], "{\"city\": \"Oslo\"}");
  expect_split_invariant(ToolCallFormat::LlamaJson, out);
}

TEST(ToolCalls, LlamaJsonAfterPythonTagAndSeveral) {
  const std::string out =
      "<|python_tag|>{\"type\": \"function\", \"name\": \"a\", \"parameters\": {}}; {\"name\": "
      "\"b\", \"parameters\": {\"k\": true}}";
  const Parsed p = parse(ToolCallFormat::LlamaJson, {out});
  EXPECT_EQ(p.names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.arguments[0], "{}");
  EXPECT_EQ(p.arguments[1], "{\"k\": true}");
  expect_split_invariant(ToolCallFormat::LlamaJson, out);
}

TEST(ToolCalls, LlamaPlainTextAndOtherJsonStayText) {
  const std::string text = "The weather in Oslo is cold.";
  EXPECT_EQ(parse(ToolCallFormat::LlamaJson, bytes_of(text)).text, text);
  const std::string json = "{\"answer\": 42, \"name\": \"x\"}";
  const Parsed p = parse(ToolCallFormat::LlamaJson, {json});
  EXPECT_TRUE(p.names.empty());
  EXPECT_EQ(p.text, json);
  expect_split_invariant(ToolCallFormat::LlamaJson, json);
}

TEST(ToolCalls, FormatFromTemplate) {
  EXPECT_EQ(hwledger::server::detect_tool_call_format("... <tool_call> ..."),
            ToolCallFormat::Hermes);
  EXPECT_EQ(hwledger::server::detect_tool_call_format("{{- '<|python_tag|>' }}"),
            ToolCallFormat::LlamaJson);
  EXPECT_EQ(hwledger::server::detect_tool_call_format(""), ToolCallFormat::Hermes);
}

}  // namespace
