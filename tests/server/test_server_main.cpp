// hwledger_test_server: the HTTP server in one process, for the SDK tests (tests/sdk) and for
// trying the API by hand, over either the real engine or the scripted model.
//
//   hwledger_test_server --model demo|DIR [--port N] [--api-key K] ...
//   hwledger_test_server --scripted demo|TOKENIZER_DIR [--port N] ...
//
// Prints "listening on PORT" on stdout once it accepts connections; SIGINT/SIGTERM stop it.
#include <fmt/format.h>
#include <signal.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "model/synth.h"
#include "sched/model_context.h"
#include "scripted_backend.h"
#include "server/http_server.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace hwledger;

namespace {

// The demo preset with the built-in tokenizer, made once per machine in the temp folder.
std::string demo_model_dir() {
  const fs::path dir = fs::temp_directory_path() / "hwledger-test-demo-model-v1";
  if (!fs::exists(dir / "model.safetensors")) {
    const fs::path tmp = dir.string() + fmt::format(".tmp{}", getpid());
    fs::create_directories(tmp);
    synth_model(find_synth_preset("demo").config, 1, DType::BF16, tmp.string(), false);
    std::ofstream(tmp / "tokenizer.json") << tokenizer::demo_tokenizer_json();
    std::ofstream(tmp / "tokenizer_config.json") << tokenizer::demo_tokenizer_config_json();
    std::error_code ec;
    fs::rename(tmp, dir, ec);  // another process may have won the race: then use its copy
    if (ec) fs::remove_all(tmp);
  }
  return dir.string();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("hwledger's HTTP server in one process, for tests");
  std::string model, scripted, name;
  server::ServerOptions opts;
  opts.port = 0;
  int64_t max_queue = 64, max_running = 32, context = 0;
  int threads = 0;
  auto* model_opt = app.add_option("--model", model, "a model folder, or demo");
  app.add_option("--scripted", scripted,
                 "serve the scripted model with this tokenizer (demo or a folder)")
      ->excludes(model_opt);
  app.add_option("--name", name, "the model's name in the API");
  app.add_option("--host", opts.host);
  app.add_option("--port", opts.port, "0: a free port");
  app.add_option("--api-key", opts.api_key);
  app.add_option("--max-body", opts.max_body_bytes);
  app.add_option("--max-connections", opts.max_connections);
  app.add_option("--request-timeout", opts.request_timeout_s);
  app.add_option("--ping-interval", opts.ping_interval_s);
  app.add_option("--max-queue", max_queue);
  app.add_option("--max-running", max_running);
  app.add_option("--context", context,
                 "context length (scripted: default 4096; model: engine default)");
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  if (model.empty() && scripted.empty()) model = "demo";

  // Signals are taken by a thread of our own (blocked everywhere else) so that stop() runs
  // outside a signal handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    std::unique_ptr<test::ScriptedBackend> scripted_backend;
    std::unique_ptr<ModelContext> context_holder;
    std::unique_ptr<server::HttpServer> http;
    if (!scripted.empty()) {
      test::ScriptedOptions so;
      so.tokenizer = scripted;
      so.model_name = name.empty() ? "scripted" : name;
      so.max_queue = max_queue;
      so.max_running = max_running;
      if (context > 0) so.context_length = context;
      scripted_backend = std::make_unique<test::ScriptedBackend>(so);
      http = std::make_unique<server::HttpServer>(*scripted_backend, opts);
    } else {
      const std::string dir = model == "demo" ? demo_model_dir() : model;
      EngineOptions eo;
      eo.threads = threads;
      eo.max_context = context;
      SchedulerOptions sched;
      sched.max_queue = max_queue;
      sched.max_running = max_running;
      context_holder = std::make_unique<ModelContext>(
          dir, name.empty() ? (model == "demo" ? "demo" : fs::path(dir).filename().string()) : name,
          eo, sched);
      http = std::make_unique<server::HttpServer>(*context_holder, opts);
    }
    const int port = http->bind();
    std::thread signal_thread([&] {
      int sig = 0;
      sigwait(&signals, &sig);
      http->stop(5);
    });
    signal_thread.detach();
    std::thread announce([&] {
      while (!http->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      std::printf("listening on %d\n", port);
      std::fflush(stdout);
    });
    http->serve();
    announce.join();
    http.reset();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hwledger_test_server: %s\n", e.what());
    return 2;
  }
  return 0;
}
