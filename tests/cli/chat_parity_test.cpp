// Greedy answers to the same messages are the same text from `hwledger run --chat`, the OpenAI
// chat API and the Anthropic messages API, on a model with Qwen3's real tokenizer and chat
// template (the qwen3-mini preset: random weights, Qwen3's vocabulary). The three paths share
// the template, the tokenizer and the scheduler, and must not drift apart.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve_process.h"

namespace hwledger::test {
namespace {

using nlohmann::json;

const std::string kTokenizer = std::string(HWLEDGER_SHARED_DIR) + "/models/qwen3";
constexpr int kTokens = 24;

// stdout of `hwledger ARGS` (stderr dropped), and its exit status.
std::pair<int, std::string> run_program(const std::string& args) {
  FILE* p = ::popen((kBinary + " " + args + " 2>/dev/null").c_str(), "r");
  std::string out;
  if (!p) return {-1, out};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class ChatParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    home_ = temp_home("chat-parity");
    model_ = home_ / "qwen3-mini";
    auto [code, out] = run_program("model synth --preset qwen3-mini --seed 7 --out " +
                                   model_.string() + " --tokenizer " + kTokenizer);
    ASSERT_EQ(code, 0) << out;
  }
  static void TearDownTestSuite() { fs::remove_all(home_); }
  static inline fs::path home_, model_;
};

TEST_F(ChatParity, RunChatAndBothHttpApisGiveTheSameGreedyText) {
  const std::string question = "Name three prime numbers and say why 1 is not one.";
  auto [code, out] = run_program("run --model " + model_.string() + " --threads 1 -n " +
                                 std::to_string(kTokens) + " --chat '" + question + "'");
  ASSERT_EQ(code, 0) << out;
  ASSERT_FALSE(out.empty());
  const std::string from_run = out.substr(0, out.size() - 1);  // run ends with a newline
  ASSERT_FALSE(from_run.empty());

  Serve serve(home_, model_.string(), {"--ssd-cache", "0", "--ram-cache", "0"});
  const int port = serve.port();
  ASSERT_GT(port, 0) << serve.read_log();
  const json messages = json::array({{{"role", "user"}, {"content", question}}});

  auto ask = [&](const std::string& path) {
    const json body = {{"model", "qwen3-mini"},
                       {"messages", messages},
                       {"max_tokens", kTokens},
                       {"temperature", 0}};
    return json::parse(http_body(http_request(port, "POST", path, body.dump())), nullptr, false);
  };
  const json openai = ask("/v1/chat/completions");
  ASSERT_TRUE(openai.contains("choices")) << openai.dump() << serve.read_log();
  EXPECT_EQ(openai["choices"][0]["message"]["content"].get<std::string>(), from_run);
  EXPECT_EQ(openai["usage"]["completion_tokens"], kTokens) << openai.dump();

  const json anthropic = ask("/v1/messages");
  ASSERT_TRUE(anthropic.contains("content")) << anthropic.dump();
  ASSERT_FALSE(anthropic["content"].empty()) << anthropic.dump();
  EXPECT_EQ(anthropic["content"][0]["text"].get<std::string>(), from_run);
}

}  // namespace
}  // namespace hwledger::test
