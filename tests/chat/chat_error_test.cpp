// Errors name the template line, and no template can run forever, recurse without bound or
// build unbounded values: every limit ends in a TemplateError, never a crash or a hang.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "chat/chat_template.h"

namespace hwledger::chat {
namespace {

using Json = nlohmann::json;

// The TemplateError a template raises at parse or render time (fails the test if none).
TemplateError error_of(const std::string& source, const Json& context = Json::object(),
                       RenderLimits limits = {}) {
  try {
    ChatTemplate(source, limits).render(context);
  } catch (const TemplateError& e) {
    return e;
  }
  ADD_FAILURE() << "no error from: " << source.substr(0, 200);
  return TemplateError("", 0);
}

TEST(ChatTemplateErrors, RaiseExceptionCarriesTheMessageAndLine) {
  const TemplateError e = error_of(
      "{% for m in messages %}\n{% if m.role not in ['user', 'assistant'] %}\n"
      "{{ raise_exception('Only user and assistant roles are supported!') }}\n{% endif %}\n"
      "{% endfor %}",
      {{"messages", {{{"role", "system"}, {"content", "x"}}}}});
  EXPECT_EQ(e.message(), "Only user and assistant roles are supported!");
  EXPECT_EQ(e.line(), 3);
  EXPECT_STREQ(e.what(), "chat template line 3: Only user and assistant roles are supported!");
}

TEST(ChatTemplateErrors, IsAnInputError) {
  EXPECT_THROW(ChatTemplate("{% if %}"), hwledger::InputError);
}

TEST(ChatTemplateErrors, SyntaxErrorsNameTheLine) {
  try {
    ChatTemplate("line 1\nline 2\n{{ foo | }}");
    FAIL();
  } catch (const TemplateError& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos);
  }
  EXPECT_EQ(error_of("{% for x in y %}\n{% if x %}\n{% endfor %}").line(), 3);
  EXPECT_EQ(error_of("\n\n{{ 'unterminated }}").line(), 3);
  EXPECT_EQ(error_of("{{ x | nosuch }}").message(), "no filter named 'nosuch'");
  EXPECT_EQ(error_of("{{ (1 }}").line(), 1);
  EXPECT_EQ(error_of("{{ 1 ]}}").line(), 1);
}

TEST(ChatTemplateErrors, RuntimeErrorsNameTheLineOfTheExpression) {
  const TemplateError e = error_of("{% set a = 1 %}\n{% set b = a.x.y %}");
  EXPECT_EQ(e.line(), 2);
  EXPECT_NE(e.message().find("has no attribute 'x'"), std::string::npos) << e.what();
  // Inside a macro, the line is the macro body's.
  EXPECT_EQ(error_of("{% macro m() %}\n{{ 1 // 0 }}\n{% endmacro %}\n{{ m() }}").line(), 2);
}

TEST(ChatTemplateErrors, ContextMustBeAnObject) {
  const ChatTemplate t("x");
  EXPECT_THROW(t.render(Json::array()), TemplateError);
  EXPECT_EQ(t.render(Json()), "x");  // null: no variables
}

TEST(ChatTemplateErrors, DeeplyNestedContextIsRefused) {
  Json deep = Json::array();
  for (int i = 0; i < 5000; ++i) {
    Json wrapper = Json::array();
    wrapper.push_back(std::move(deep));
    deep = std::move(wrapper);
  }
  EXPECT_THROW(ChatTemplate("{{ x }}").render({{"x", deep}}), TemplateError);
}

TEST(ChatTemplateLimits, DeepSyntaxNestingIsRefused) {
  const std::string deep = "{{ " + std::string(20000, '(') + "1" + std::string(20000, ')') + " }}";
  EXPECT_NE(error_of(deep).message().find("nested"), std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(20000, '-') + "1 }}").message().find("nested"),
            std::string::npos);
  std::string blocks;
  for (int i = 0; i < 5000; ++i) blocks += "{% if true %}";
  EXPECT_NE(error_of(blocks).message().find("nested"), std::string::npos);
}

TEST(ChatTemplateLimits, LongChainsAreRefused) {
  // a+a+...+a parses into a tree as deep as the chain is long.
  std::string sum = "{{ 1";
  std::string filters = "{{ 'x'";
  std::string attributes = "{{ x";
  for (int i = 0; i < 5000; ++i) {
    sum += " + 1";
    filters += "|trim";
    attributes += ".a";
  }
  for (const std::string& source : {sum, filters, attributes}) {
    EXPECT_NE(error_of(source + " }}").message().find("nested"), std::string::npos);
  }
}

TEST(ChatTemplateLimits, DeepEvaluationInsideRecursionStops) {
  // Each recursive call sits in 60 nested lists, so 25 calls are 1500 nested evaluations: the
  // evaluation depth limit ends it before the stack runs out (and before the call limit).
  const std::string source = "{% macro f(n) %}{{ " + std::string(60, '[') + "f(n + 1)" +
                             std::string(60, ']') + " }}{% endmacro %}{{ f(0) }}";
  EXPECT_NE(error_of(source).message().find("evaluation nested more than"), std::string::npos)
      << error_of(source).what();
}

TEST(ChatTemplateLimits, UnboundedMacroRecursionStops) {
  const TemplateError e = error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_NE(e.message().find("nested more than"), std::string::npos) << e.what();
}

TEST(ChatTemplateLimits, LongLoopsStopAtTheStepLimit) {
  // 10^8 iterations would take tens of seconds; the default step limit stops it in about 2.
  const auto start = std::chrono::steady_clock::now();
  const TemplateError e =
      error_of("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}");
  EXPECT_NE(e.message().find("steps"), std::string::npos) << e.what();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));

  RenderLimits small;
  small.max_steps = 1000;
  Json xs = Json::array();
  for (int i = 0; i < 2000; ++i) xs.push_back(i);
  EXPECT_NE(error_of("{% for x in xs %}{% endfor %}", {{"xs", xs}}, small).message().find("steps"),
            std::string::npos);
  EXPECT_NO_THROW(
      ChatTemplate("{% for x in xs %}{% endfor %}", small).render({{"xs", Json::array({1, 2})}}));
}

TEST(ChatTemplateLimits, OutputIsCapped) {
  RenderLimits limits;
  limits.max_output_bytes = 1000;
  EXPECT_EQ(ChatTemplate("{{ 'x' * 1000 }}", limits).render({}).size(), 1000u);
  const TemplateError e = error_of("{{ 'x' * 1000 }}{{ 'y' }}", {}, limits);
  EXPECT_NE(e.message().find("output exceeds"), std::string::npos) << e.what();
  // With the default 64 MiB cap.
  EXPECT_NE(error_of("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}")
                .message()
                .find("output exceeds"),
            std::string::npos);
}

TEST(ChatTemplateLimits, MemoryIsCapped) {
  // Doubling a string 40 times would need a terabyte.
  EXPECT_NE(error_of("{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                     "{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
                .message()
                .find("bytes"),
            std::string::npos);
  EXPECT_THROW(ChatTemplate("{{ 'x' * 100000000000 }}").render({}), TemplateError);
  EXPECT_THROW(ChatTemplate("{{ [1] * 100000000000 }}").render({}), TemplateError);
  EXPECT_THROW(ChatTemplate("{{ range(100000000000)|length }}").render({}), TemplateError);
}

TEST(ChatTemplateLimits, ValuesCannotNestWithoutBound) {
  EXPECT_NE(error_of("{% set ns = namespace(x=[]) %}{% for i in range(5000) %}"
                     "{% set ns.x = [ns.x] %}{% endfor %}")
                .message()
                .find("nested"),
            std::string::npos);
}

TEST(ChatTemplateLimits, NamespacesCannotHoldNamespaces) {
  // A namespace inside itself would be a reference cycle.
  EXPECT_THROW(ChatTemplate("{% set ns = namespace() %}{% set ns.me = ns %}").render({}),
               TemplateError);
  EXPECT_THROW(ChatTemplate("{% set ns = namespace() %}{% set ns.l = [ns] %}").render({}),
               TemplateError);
}

TEST(ChatTemplateLimits, IntegerOverflowIsAnError) {
  EXPECT_NE(error_of("{{ 2 ** 64 }}").message().find("overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ 9223372036854775807 + 1 }}").message().find("overflow"),
            std::string::npos);
}

}  // namespace
}  // namespace hwledger::chat
