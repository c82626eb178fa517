// hwledger bench http: a load client for the HTTP server (`hwledger serve`). At each concurrency
// level it keeps N streaming /v1/chat/completions requests running and reports aggregate output
// tokens/s, time to first token and inter-token latency percentiles, as a table or JSON
// (docs/benchmarks.md, "Serving"). Prompts are deterministic in --seed and distinct per request,
// so that no request is served from another's prefix cache beyond the chat template's header.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "util/error.h"

namespace hwledger::cli {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

struct HttpBenchOptions {
  std::string url = "http://127.0.0.1:8000";
  std::string model;  // "": the first of /v1/models
  std::string api_key;
  std::string concurrency = "1,8,32";
  int requests = 1;  // per stream and level, one after the other
  int max_tokens = 128;
  int prompt_words = 24;
  uint64_t seed = 1;
  bool json = false;
};

struct RequestTiming {
  bool ok = false;
  std::string error;
  double ttft = 0, total = 0;  // seconds from sending
  int64_t tokens = 0;          // completion_tokens from the usage chunk
  int64_t chunks = 0;          // content chunks received
  std::vector<double> gaps;    // between consecutive content chunks
};

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Linear interpolation between the closest ranks (numpy's default).
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double at = p / 100 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(at);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - static_cast<double>(lo));
}

json summary(const std::vector<double>& v) {
  double mean = 0;
  for (double x : v) mean += x;
  if (!v.empty()) mean /= static_cast<double>(v.size());
  return {{"p50", percentile(v, 50)},
          {"p95", percentile(v, 95)},
          {"p99", percentile(v, 99)},
          {"mean", mean},
          {"samples", v.size()}};
}

std::string prompt_for(uint64_t seed, int level, int stream, int index, int words) {
  static const char* const kWords[] = {
      "cache",  "block",    "token",   "stream", "kernel", "memory", "thread", "layer",
      "vector", "matrix",   "prompt",  "answer", "model",  "engine", "server", "client",
      "batch",  "queue",    "latency", "decode", "prefix", "disk",   "page",   "file",
      "agent",  "tool",     "result",  "search", "write",  "read",   "edit",   "test",
      "river",  "mountain", "window",  "garden", "letter", "number", "circle", "signal"};
  std::mt19937_64 rng(seed * 1000003u + static_cast<uint64_t>(level) * 10007u +
                      static_cast<uint64_t>(stream) * 101u + static_cast<uint64_t>(index));
  std::string p = fmt::format("Request {}-{}-{}:", level, stream, index);
  for (int i = 0; i < words; ++i) p += std::string(" ") + kWords[rng() % std::size(kWords)];
  return p + ". Continue the list.";
}

class HttpBench {
 public:
  explicit HttpBench(const HttpBenchOptions& o) : o_(o) {}

  httplib::Client client() const {
    httplib::Client c(o_.url);
    c.set_connection_timeout(10, 0);
    c.set_read_timeout(600, 0);
    if (!o_.api_key.empty()) c.set_bearer_token_auth(o_.api_key);
    return c;
  }

  std::string served_model() const {
    auto c = client();
    auto res = c.Get("/v1/models");
    if (!res) fail_input("cannot reach {}: {}", o_.url, httplib::to_string(res.error()));
    if (res->status != 200)
      fail_input("{}/v1/models answered {}: {}", o_.url, res->status, res->body);
    json body = json::parse(res->body, nullptr, false);
    if (!body.is_object() || !body.contains("data") || body["data"].empty())
      fail_input("{}/v1/models lists no model: {}", o_.url, res->body);
    return body["data"][0]["id"].get<std::string>();
  }

  RequestTiming one(const std::string& model, const std::string& prompt, int max_tokens) const {
    RequestTiming t;
    json body = {
        {"model", model},           {"messages", {{{"role", "user"}, {"content", prompt}}}},
        {"max_tokens", max_tokens}, {"temperature", 0},
        {"stream", true},           {"stream_options", {{"include_usage", true}}}};
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    if (!o_.api_key.empty()) req.set_header("Authorization", "Bearer " + o_.api_key);
    std::string buffer;
    const Clock::time_point sent = Clock::now();
    Clock::time_point last;
    auto on_event = [&](const std::string& data) {
      if (data == "[DONE]") return;
      json chunk = json::parse(data, nullptr, false);
      if (!chunk.is_object()) return;
      if (chunk.contains("error")) {
        t.error = chunk["error"].dump();
        return;
      }
      if (chunk.contains("usage") && chunk["usage"].is_object())
        t.tokens = chunk["usage"].value("completion_tokens", int64_t{0});
      if (!chunk.contains("choices") || chunk["choices"].empty()) return;
      const json& delta = chunk["choices"][0]["delta"];
      if (!delta.contains("content") || !delta["content"].is_string() ||
          delta["content"].get_ref<const std::string&>().empty())
        return;
      const Clock::time_point now = Clock::now();
      if (t.chunks == 0)
        t.ttft = seconds(sent, now);
      else
        t.gaps.push_back(seconds(last, now));
      last = now;
      ++t.chunks;
    };
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      buffer.append(data, n);
      for (size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
        std::istringstream lines(buffer.substr(0, end));
        buffer.erase(0, end + 2);
        for (std::string line; std::getline(lines, line);)
          if (line.rfind("data: ", 0) == 0) on_event(line.substr(6));
      }
      return true;
    };
    auto c = client();
    auto res = c.send(req);
    t.total = seconds(sent, Clock::now());
    if (!res) {
      t.error = httplib::to_string(res.error());
    } else if (res->status != 200) {
      t.error = fmt::format("HTTP {}: {}", res->status, res->body.substr(0, 300));
    } else if (t.error.empty()) {
      t.ok = t.tokens > 0;
      if (!t.ok) t.error = "no usage in the stream";
    }
    return t;
  }

  json level(const std::string& model, int level_index, int concurrency) const {
    std::vector<RequestTiming> timings(static_cast<size_t>(concurrency * o_.requests));
    std::vector<std::thread> threads;
    const Clock::time_point start = Clock::now();
    for (int s = 0; s < concurrency; ++s) {
      threads.emplace_back([&, s] {
        for (int i = 0; i < o_.requests; ++i)
          timings[static_cast<size_t>(s * o_.requests + i)] =
              one(model, prompt_for(o_.seed, level_index, s, i, o_.prompt_words), o_.max_tokens);
      });
    }
    for (auto& t : threads) t.join();
    const double wall = seconds(start, Clock::now());
    std::vector<double> ttft, itl, stream_rate;
    int64_t tokens = 0, chunks = 0, failed = 0;
    std::string first_error;
    for (const RequestTiming& t : timings) {
      if (!t.ok) {
        ++failed;
        if (first_error.empty()) first_error = t.error;
        continue;
      }
      tokens += t.tokens;
      chunks += t.chunks;
      ttft.push_back(t.ttft);
      itl.insert(itl.end(), t.gaps.begin(), t.gaps.end());
      if (t.tokens > 1 && t.total > t.ttft)
        stream_rate.push_back(static_cast<double>(t.tokens - 1) / (t.total - t.ttft));
    }
    json out = {{"concurrency", concurrency},
                {"requests", timings.size()},
                {"failed", failed},
                {"wall_s", wall},
                {"output_tokens", tokens},
                {"tokens_per_s", static_cast<double>(tokens) / wall},
                {"ttft_s", summary(ttft)},
                {"itl_s", summary(itl)},
                {"per_stream_decode_tokens_per_s", summary(stream_rate)},
                {"content_chunks", chunks}};
    if (!first_error.empty()) out["first_error"] = first_error;
    return out;
  }

  json run() const {
    std::vector<int> levels;
    std::stringstream list(o_.concurrency);
    for (std::string item; std::getline(list, item, ',');) {
      int n = 0;
      try {
        n = std::stoi(item);
      } catch (const std::exception&) {
      }
      if (n < 1 || n > 1024)
        fail_input("--concurrency: '{}' is not a number of streams between 1 and 1024", item);
      levels.push_back(n);
    }
    const std::string model = o_.model.empty() ? served_model() : o_.model;
    // Warm-up (not measured): first-use costs such as scratch buffers and page faults.
    RequestTiming warm = one(model, prompt_for(o_.seed, 999, 0, 0, o_.prompt_words), 8);
    if (!warm.ok) fail("bench http: the warm-up request failed: {}", warm.error);

    double load[3] = {0, 0, 0};
    if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
      if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
      std::fclose(f);
    }
    json report = {{"url", o_.url},
                   {"model", model},
                   {"endpoint", "/v1/chat/completions (stream, temperature 0)"},
                   {"max_tokens", o_.max_tokens},
                   {"prompt_words", o_.prompt_words},
                   {"requests_per_stream", o_.requests},
                   {"seed", o_.seed},
                   {"client_cpus", std::thread::hardware_concurrency()},
                   {"load_average_before", {load[0], load[1], load[2]}},
                   {"levels", json::array()}};
    for (size_t i = 0; i < levels.size(); ++i) {
      report["levels"].push_back(level(model, static_cast<int>(i), levels[i]));
      if (!o_.json) print_level(report["levels"].back());
    }
    const json& levels_out = report["levels"];
    for (const json& l : levels_out) {
      if (l["concurrency"] == 1) {
        json speedup = json::object();
        for (const json& m : levels_out)
          speedup[std::to_string(m["concurrency"].get<int>())] =
              m["tokens_per_s"].get<double>() / l["tokens_per_s"].get<double>();
        report["speedup_vs_1_stream"] = speedup;
        break;
      }
    }
    return report;
  }

  static void print_level(const json& l) {
    std::printf(
        "%3d streams: %4lld tokens in %6.2f s = %7.1f tok/s | TTFT p50 %6.3f p95 %6.3f p99 %6.3f s"
        " | ITL p50 %6.1f p95 %6.1f p99 %6.1f ms | %lld failed\n",
        l["concurrency"].get<int>(), static_cast<long long>(l["output_tokens"].get<int64_t>()),
        l["wall_s"].get<double>(), l["tokens_per_s"].get<double>(),
        l["ttft_s"]["p50"].get<double>(), l["ttft_s"]["p95"].get<double>(),
        l["ttft_s"]["p99"].get<double>(), l["itl_s"]["p50"].get<double>() * 1e3,
        l["itl_s"]["p95"].get<double>() * 1e3, l["itl_s"]["p99"].get<double>() * 1e3,
        static_cast<long long>(l["failed"].get<int64_t>()));
    std::fflush(stdout);
  }

 private:
  HttpBenchOptions o_;
};

}  // namespace

void add_bench_http_command(CLI::App& bench) {
  auto* cmd = bench.add_subcommand(
      "http", "load an HTTP server with concurrent streaming chat requests: tokens/s, TTFT, ITL");
  auto o = std::make_shared<HttpBenchOptions>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("--url", o->url, "the server (default http://127.0.0.1:8000)");
  cmd->add_option("--model", o->model, "model name to ask for (default: the server's)");
  cmd->add_option("--api-key", o->api_key, "sent as Bearer");
  cmd->add_option("--concurrency", o->concurrency,
                  "comma-separated numbers of concurrent streams (default 1,8,32)");
  cmd->add_option("--requests", o->requests,
                  "requests per stream at each level, one after the other (default 1)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--max-tokens", o->max_tokens, "tokens per request (default 128)")
      ->check(CLI::Range(2, 100000));
  cmd->add_option("--prompt-words", o->prompt_words, "words per prompt (default 24)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--seed", o->seed, "seed of the prompts (default 1)");
  cmd->add_flag("--json", o->json, "print the report as JSON");
  cmd->add_option("--out", *out, "also write the JSON report to this file");
  cmd->callback([o, out] {
    const json report = HttpBench(*o).run();
    if (o->json) std::printf("%s\n", report.dump(2).c_str());
    if (report.contains("speedup_vs_1_stream") && !o->json)
      std::printf("speedup vs 1 stream: %s\n", report["speedup_vs_1_stream"].dump().c_str());
    if (!out->empty()) std::ofstream(*out) << report.dump(2) << "\n";
  });
}

}  // namespace hwledger::cli
