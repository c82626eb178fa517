// The Jinja language as chat templates use it: each case of jinja_cases.json gives a template, a
// context and the output Jinja2 produces (or the error it raises). jinja_cases.py --check
// confirms every case against Jinja2 itself.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "chat/chat_template.h"

namespace hwledger::chat {
namespace {

using Json = nlohmann::ordered_json;

std::vector<Json> load_cases() {
  const std::string path = std::string(HWLEDGER_SOURCE_TESTS_DIR) + "/jinja_cases.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  const Json cases = Json::parse(in);
  return std::vector<Json>(cases.begin(), cases.end());
}

std::string case_name(const testing::TestParamInfo<Json>& info) {
  std::string name;
  for (const char c : info.param.at("name").get<std::string>()) {
    name.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  }
  return name + "_" + std::to_string(info.index);
}

class JinjaCase : public testing::TestWithParam<Json> {};

TEST_P(JinjaCase, MatchesJinja2) {
  const Json& c = GetParam();
  const std::string template_source = c.at("template").get<std::string>();
  SCOPED_TRACE("template: " + template_source);
  if (c.contains("expected")) {
    const ChatTemplate chat_template(template_source);
    EXPECT_EQ(chat_template.render(c.at("context")), c.at("expected").get<std::string>());
    return;
  }
  // Errors may come from parsing or from rendering; both carry the template line.
  try {
    const ChatTemplate chat_template(template_source);
    const std::string out = chat_template.render(c.at("context"));
    FAIL() << "expected an error containing '" << c.at("error").get<std::string>()
           << "', rendered: " << out;
  } catch (const TemplateError& e) {
    EXPECT_NE(e.message().find(c.at("error").get<std::string>()), std::string::npos) << e.what();
    EXPECT_EQ(e.line(), c.at("line").get<int>()) << e.what();
    EXPECT_NE(std::string(e.what()).find("line " + std::to_string(e.line())), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(Jinja2, JinjaCase, testing::ValuesIn(load_cases()), case_name);

}  // namespace
}  // namespace hwledger::chat
