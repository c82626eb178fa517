// hwledger run --model DIR [--chat] "prompt" | --prompt-ids 1,2,3: one generation in-process,
// streamed to the terminal. It goes through the same ModelContext and Scheduler as the server,
// so its greedy output is what the HTTP APIs return for the same messages.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <sstream>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "sched/model_context.h"
#include "sched/text_stream.h"
#include "tokenizer/tokenizer.h"
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

// Prints tokens as they arrive: text through the streaming detokenizer when the model has a
// tokenizer, ids otherwise.
class TerminalSink : public RequestSink {
 public:
  TerminalSink(const tokenizer::Tokenizer* tok, std::vector<std::string> stops)
      : stream_(tok ? std::make_unique<TextStream>(*tok, std::move(stops)) : nullptr) {}

  bool on_token(const TokenEvent& e) override {
    if (e.index == 0) first_ = std::chrono::steady_clock::now();
    if (stream_) {
      std::fputs(stream_->push(e.token).c_str(), stdout);
    } else {
      std::printf("%s%d", e.index ? "," : "", e.token);
    }
    std::fflush(stdout);
    return !(stream_ && stream_->stopped());
  }
  void on_done(const GenerateResult& r) override {
    if (stream_ && !stream_->stopped()) std::fputs(stream_->finish().c_str(), stdout);
    std::printf("\n");
    std::lock_guard<std::mutex> lock(mu_);
    result_ = r;
    done_ = true;
    cv_.notify_all();
  }
  GenerateResult wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    return result_;
  }
  std::chrono::steady_clock::time_point first_token_time() const { return first_; }

 private:
  std::unique_ptr<TextStream> stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  GenerateResult result_;
  std::chrono::steady_clock::time_point first_;
};

}  // namespace

void add_run_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "generate from a prompt in-process and stream the tokens");
  auto flags = std::make_shared<EngineFlags>();
  auto prompt = std::make_shared<std::string>();
  auto prompt_ids = std::make_shared<std::string>();
  auto system = std::make_shared<std::string>();
  auto chat = std::make_shared<bool>(false);
  auto max_tokens = std::make_shared<int64_t>(64);
  auto temperature = std::make_shared<float>(0.0f);
  auto seed = std::make_shared<int64_t>(-1);
  auto stops = std::make_shared<std::vector<std::string>>();
  flags->add_to(cmd, false);
  cmd->add_option("prompt", *prompt, "the prompt text (or use --prompt-ids)");
  cmd->add_option("--prompt-ids", *prompt_ids, "the prompt as comma-separated token ids");
  cmd->add_flag("--chat", *chat, "wrap the prompt as a user message in the model's chat template");
  cmd->add_option("--system", *system, "system message (with --chat)");
  cmd->add_option("-n,--max-tokens", *max_tokens, "tokens to generate (default 64)");
  cmd->add_option("--temperature", *temperature, "0 (default) decodes greedily");
  cmd->add_option("--seed", *seed, "seed for sampling");
  cmd->add_option("--stop", *stops, "stop string (repeatable)");
  cmd->callback([=] {
    if (prompt->empty() == prompt_ids->empty())
      fail_input("give either a prompt text or --prompt-ids");
    std::string dir = flags->model_dir();
    SchedulerOptions so;
    so.max_running = 1;
    ModelContext ctx(dir, flags->model == "demo" ? "demo" : std::filesystem::path(dir).filename().string(),
                     flags->to_options(), so);
    GenerateRequest req;
    req.id = "run";
    if (!prompt_ids->empty()) {
      req.prompt = parse_ids(*prompt_ids);
    } else if (*chat) {
      nlohmann::json messages = nlohmann::json::array();
      if (!system->empty()) messages.push_back({{"role", "system"}, {"content", *system}});
      messages.push_back({{"role", "user"}, {"content", *prompt}});
      req.prompt = ctx.encode(ctx.render_chat(messages, nullptr, true), false);
    } else {
      req.prompt = ctx.encode(*prompt, true);
    }
    req.max_tokens = *max_tokens;
    req.sampling.temperature = *temperature;
    if (*seed >= 0) req.sampling.seed = static_cast<uint64_t>(*seed);
    req.stop_token_ids = ctx.stop_token_ids();
    auto sink = std::make_shared<TerminalSink>(ctx.tokenizer(), *stops);
    auto start = std::chrono::steady_clock::now();
    if (!ctx.scheduler().submit(req, sink)) fail("the scheduler refused the request");
    GenerateResult r = sink->wait();
    if (r.reason == StopReason::Error) fail_input("{}", r.error);
    auto end = std::chrono::steady_clock::now();
    double ttft = std::chrono::duration<double>(sink->first_token_time() - start).count();
    double decode = std::chrono::duration<double>(end - sink->first_token_time()).count();
    std::fprintf(stderr, "[%lld prompt tokens (%lld cached), first token after %.3f s, %lld tokens at %.1f tok/s, %s]\n",
                 static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.cached_tokens), ttft,
                 static_cast<long long>(r.completion_tokens),
                 r.completion_tokens > 1 ? (r.completion_tokens - 1) / decode : 0.0, stop_reason_name(r.reason));
  });
}

}  // namespace hwledger::cli
