// hwledger run --model DIR --prompt-ids 1,2,3: one generation in-process, streamed.
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "util/error.h"

namespace hwledger::cli {

namespace {
std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t pos = 0;
      long v = std::stol(item, &pos);
      if (pos != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      fail_input("--prompt-ids: '{}' is not a token id (expected e.g. 1,2,3)", item);
    }
  }
  if (ids.empty()) fail_input("--prompt-ids is empty");
  return ids;
}
}  // namespace

void add_run_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "generate from a prompt in-process and stream the tokens");
  auto flags = std::make_shared<EngineFlags>();
  auto prompt_ids = std::make_shared<std::string>();
  auto max_tokens = std::make_shared<int64_t>(32);
  flags->add_to(cmd, false);
  cmd->add_option("--prompt-ids", *prompt_ids, "prompt as comma-separated token ids")->required();
  cmd->add_option("-n,--max-tokens", *max_tokens, "tokens to generate (default 32)");
  cmd->callback([=] {
    std::vector<int32_t> prompt = parse_ids(*prompt_ids);
    Engine engine(flags->model_dir(), flags->to_options());
    for (int32_t id : prompt)
      if (id >= engine.config().vocab_size)
        fail_input("token id {} is outside the vocabulary of {} tokens", id, engine.config().vocab_size);
    auto start = std::chrono::steady_clock::now();
    auto first = start;
    int64_t n = 0;
    engine.generate_greedy(prompt, *max_tokens, [&](int32_t id) {
      if (n++ == 0) first = std::chrono::steady_clock::now();
      std::printf("%s%d", n > 1 ? "," : "", id);
      std::fflush(stdout);
      return true;
    });
    auto end = std::chrono::steady_clock::now();
    std::printf("\n");
    double ttft = std::chrono::duration<double>(first - start).count();
    double decode = std::chrono::duration<double>(end - first).count();
    std::fprintf(stderr, "prompt %zu tokens, first token after %.3f s, %lld tokens at %.1f tok/s\n",
                 prompt.size(), ttft, static_cast<long long>(n), n > 1 ? (n - 1) / decode : 0.0);
  });
}

}  // namespace hwledger::cli
