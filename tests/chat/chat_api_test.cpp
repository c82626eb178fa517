// The public API: render_chat's context, key order with ordered_json, copying and concurrent use.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "chat/chat_template.h"

namespace hwledger::chat {
namespace {

TEST(ChatTemplateApi, RenderChatPassesTransformersVariables) {
  const ChatTemplate t(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}{{ eos_token }}"
      "|{{ tools is none }}|{{ documents is none }}|{{ date_string }}");
  const nlohmann::json messages = {{{"role", "user"}, {"content", "hi"}}};
  EXPECT_EQ(
      render_chat(t, messages, nullptr, true, "<s>", "</s>", {{"date_string", "26 Jul 2024"}}),
      "<s><user>hi<assistant></s>|True|True|26 Jul 2024");
  EXPECT_EQ(render_chat(t, messages, nlohmann::json::array({1}), false, "", ""),
            "<user>hi|False|True|");
}

TEST(ChatTemplateApi, ExtraVariablesOverrideDefaults) {
  const ChatTemplate t("{{ enable_thinking }} {{ add_generation_prompt }}");
  EXPECT_EQ(
      render_chat(t, nlohmann::json::array(), nullptr, true, "", "", {{"enable_thinking", false}}),
      "False True");
  EXPECT_THROW(render_chat(t, nlohmann::json::array(), nullptr, true, "", "", 5), TemplateError);
}

TEST(ChatTemplateApi, OrderedJsonKeepsKeyOrder) {
  const ChatTemplate t("{{ tools[0]|tojson }}");
  const char* tools = R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])";
  // Python keeps insertion order, and so does nlohmann::ordered_json ...
  EXPECT_EQ(render_chat(t, nlohmann::ordered_json::array(), nlohmann::ordered_json::parse(tools),
                        false, "", ""),
            R"({"type": "function", "function": {"name": "f", "parameters": {}}})");
  // ... while nlohmann::json has sorted the keys before the template sees them.
  EXPECT_EQ(render_chat(t, nlohmann::json::array(), nlohmann::json::parse(tools), false, "", ""),
            R"({"function": {"name": "f", "parameters": {}}, "type": "function"})");
  // Ordered messages with no tools still take the ordered overload.
  const ChatTemplate args("{{ messages[0].tool_calls[0].arguments|tojson }}");
  const auto messages = nlohmann::ordered_json::parse(
      R"([{"role": "assistant", "tool_calls": [{"arguments": {"z": 1, "a": 2}}]}])");
  EXPECT_EQ(render_chat(args, messages, nullptr, false, "", ""), R"({"z": 1, "a": 2})");
  nlohmann::ordered_json context;
  context["tools"] = nlohmann::ordered_json::parse(tools);
  EXPECT_EQ(t.render(context),
            R"({"type": "function", "function": {"name": "f", "parameters": {}}})");
}

TEST(ChatTemplateApi, CopiesShareTheParsedTemplate) {
  const ChatTemplate a("{{ x }}");
  const ChatTemplate b = a;
  EXPECT_EQ(b.render({{"x", 1}}), "1");
  EXPECT_EQ(b.source(), "{{ x }}");
}

TEST(ChatTemplateApi, ConcurrentRendersAreIndependent) {
  const ChatTemplate t(
      "{% set ns = namespace(total=0) %}{% for x in xs %}{% set ns.total = ns.total + x %}"
      "{% endfor %}{{ ns.total }}");
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int round = 0; round < 200; ++round) {
        nlohmann::json xs = nlohmann::json::array();
        for (int k = 0; k <= i; ++k) xs.push_back(k);
        results[i] = t.render({{"xs", xs}});
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(results[i], std::to_string(i * (i + 1) / 2));
}

}  // namespace
}  // namespace hwledger::chat
