#include "bench/agent_loop.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>

#include "util/error.h"
#include "util/size.h"

namespace hwledger {

namespace fs = std::filesystem;

const char* agent_loop_mode_name(AgentLoopMode m) {
  switch (m) {
    case AgentLoopMode::Off:
      return "off";
    case AgentLoopMode::Ram:
      return "ram";
    case AgentLoopMode::RamSsd:
      return "ram+ssd";
    case AgentLoopMode::SsdCold:
      return "ssd-cold";
    case AgentLoopMode::RamCold:
      return "ram-cold";
  }
  return "?";
}

AgentLoopMode parse_agent_loop_mode(const std::string& s) {
  for (auto m : {AgentLoopMode::Off, AgentLoopMode::Ram, AgentLoopMode::RamSsd,
                 AgentLoopMode::SsdCold, AgentLoopMode::RamCold})
    if (s == agent_loop_mode_name(m)) return m;
  fail_input("unknown mode '{}' (modes: off, ram, ram+ssd, ssd-cold, ram-cold)", s);
}

void drop_page_cache(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

namespace {

using clock_type = std::chrono::steady_clock;

struct Rng {
  uint64_t s;
  uint32_t next(uint32_t n) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<uint32_t>(s % n);
  }
};

std::vector<int32_t> draw(uint64_t seed, int64_t n, int64_t vocab) {
  Rng r{seed * 0x9e3779b97f4a7c15ull + 0x1234567ull};
  std::vector<int32_t> v(n);
  for (auto& x : v) x = static_cast<int32_t>(r.next(static_cast<uint32_t>(vocab)));
  return v;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i =
      static_cast<size_t>(std::min<double>(v.size() - 1, std::max(0.0, p * (v.size() - 1) + 0.5)));
  return v[i];
}

AgentTurn run_turn(Engine& e, const std::vector<int32_t>& prompt, int64_t gen_tokens,
                   int64_t chunk) {
  AgentTurn t;
  t.prompt_tokens = static_cast<int64_t>(prompt.size());
  const int64_t V = e.config().vocab_size;
  KVSequence seq;
  auto t0 = clock_type::now();
  PrefixHit hit;
  std::vector<float> logits = e.prefill_cached(seq, prompt, &hit, "", chunk);
  int32_t next = argmax(logits.data(), V);
  auto t1 = clock_type::now();
  t.ttft_seconds = std::chrono::duration<double>(t1 - t0).count();
  t.restored_tokens = hit.tokens;
  t.computed_tokens = t.prompt_tokens - hit.tokens;
  t.recomputed_tokens = hit.recomputed_tokens;
  for (int i = 0; i < 3; ++i) t.restored_blocks[i] = hit.blocks_from[i];
  t.restore_bytes = hit.bytes_read;
  t.restore_seconds = hit.seconds;
  std::vector<int32_t> all = prompt;
  t.generated.push_back(next);
  for (int64_t i = 1; i < gen_tokens; ++i) {
    all.push_back(next);
    BatchItem step{&seq, std::span<const int32_t>(&all.back(), 1), BatchItem::Logits::Last};
    std::vector<float>& l = e.runner().forward(std::span<BatchItem>(&step, 1));
    e.kv_cache().commit(seq, all);
    next = argmax(l.data(), V);
    t.generated.push_back(next);
  }
  auto t2 = clock_type::now();
  if (gen_tokens > 1)
    t.decode_tok_s = (gen_tokens - 1) / std::chrono::duration<double>(t2 - t1).count();
  e.kv_cache().release(seq);
  return t;
}

}  // namespace

AgentLoopReport run_agent_loop(const AgentLoopOptions& o) {
  if (o.prefix_tokens < 1 || o.sessions < 1 || o.turns < 1 || o.append_tokens < 1 ||
      o.gen_tokens < 1)
    fail_input("agent-loop: prefix, sessions, turns, append and gen tokens must be positive");
  AgentLoopReport report;
  report.options = o;
  const int64_t longest = o.prefix_tokens + o.turns * (o.append_tokens + o.gen_tokens);
  std::string base_dir =
      o.cache_dir.empty()
          ? (fs::temp_directory_path() / ("hwledger-agent-loop-" + std::to_string(::getpid())))
                .string()
          : o.cache_dir;

  const ModelConfig cfg = ModelConfig::from_file((fs::path(o.model_dir) / "config.json").string());
  // Prefill chunks: small enough on the CPU to interleave with decode steps in a server, large
  // enough on a GPU to keep the tensor cores busy.
  const int64_t chunk = o.prefill_chunk > 0               ? o.prefill_chunk
                        : o.engine.device == Device::CUDA ? 8192
                                                          : 512;
  for (AgentLoopMode mode : o.modes) {
    AgentLoopRun run;
    run.mode = mode;
    EngineOptions eo = o.engine;
    eo.load.show_progress = false;
    eo.max_context = std::max<int64_t>(eo.max_context, longest + 64);
    // Working memory holds about one session's context, so the other sessions' blocks must
    // come back from the tiers below.
    const uint64_t per_token = cfg.kv_layout(eo.block_tokens, eo.kv_dtype).bytes_per_token();
    eo.max_kv_bytes = static_cast<uint64_t>((longest + 2 * eo.block_tokens) * per_token * 1.25);
    eo.cache.enabled = mode != AgentLoopMode::Off;
    eo.cache.ram_bytes = 0;
    eo.cache.ssd_bytes = 0;
    eo.cache.cache_dir = (fs::path(base_dir) / agent_loop_mode_name(mode)).string();
    if (mode == AgentLoopMode::Ram || mode == AgentLoopMode::RamCold)
      eo.cache.ram_bytes = static_cast<uint64_t>(o.sessions * longest * per_token * 1.25);
    if (mode == AgentLoopMode::RamSsd)
      eo.cache.ram_bytes = o.ram_cache_bytes > 0 ? o.ram_cache_bytes : longest * per_token / 4;
    if (mode == AgentLoopMode::RamSsd || mode == AgentLoopMode::SsdCold)
      eo.cache.ssd_bytes = o.ssd_cache_bytes;
    std::error_code ec;
    fs::remove_all(eo.cache.cache_dir, ec);
    auto e = std::make_unique<Engine>(o.model_dir, eo);

    const int64_t V = e->config().vocab_size;
    const std::vector<int32_t> prefix = draw(o.seed, o.prefix_tokens, V);
    std::vector<std::vector<int32_t>> history(o.sessions);
    for (int64_t turn = 0; turn < o.turns; ++turn) {
      for (int64_t s = 0; s < o.sessions; ++s) {
        std::vector<int32_t> append =
            draw(o.seed + 1000003 * (s + 1) + 7919 * (turn + 1), o.append_tokens, V);
        history[s].insert(history[s].end(), append.begin(), append.end());
        std::vector<int32_t> prompt = prefix;
        prompt.insert(prompt.end(), history[s].begin(), history[s].end());
        if (mode == AgentLoopMode::SsdCold) {
          // A restarted engine: empty working memory and RAM tier, index rebuilt from disk,
          // and the cache files out of the OS page cache.
          e->kv_cache().flush();
          e->restart_kv_cache();
          drop_page_cache(eo.cache.cache_dir);
        }
        // Working memory taken by others: every idle cached block moved down to the RAM tier.
        if (mode == AgentLoopMode::RamCold) e->kv_cache().evict_idle();
        AgentTurn t = run_turn(*e, prompt, o.gen_tokens, chunk);
        t.session = s;
        t.turn = turn;
        history[s].insert(history[s].end(), t.generated.begin(), t.generated.end());
        run.turns.push_back(std::move(t));
      }
    }
    e->kv_cache().flush();
    run.cache_stats = e->kv_cache().stats_json();
    std::vector<double> ttft, dec;
    double bytes = 0, secs = 0;
    for (const auto& t : run.turns) {
      ttft.push_back(t.ttft_seconds);
      dec.push_back(t.decode_tok_s);
      bytes += static_cast<double>(t.restore_bytes);
      if (t.restore_bytes > 0) secs += t.restore_seconds;
    }
    run.ttft_p50 = percentile(ttft, 0.5);
    run.ttft_p95 = percentile(ttft, 0.95);
    run.decode_tok_s_p50 = percentile(dec, 0.5);
    run.restore_gbps = secs > 0 ? bytes / secs / 1e9 : 0;
    report.runs.push_back(std::move(run));
  }
  std::error_code ec;
  if (o.cache_dir.empty()) fs::remove_all(base_dir, ec);
  for (const auto& r : report.runs)
    for (size_t i = 0; i < r.turns.size(); ++i)
      if (r.turns[i].generated != report.runs[0].turns[i].generated)
        report.outputs_identical = false;
  return report;
}

nlohmann::json AgentLoopReport::to_json() const {
  nlohmann::json j;
  j["options"] = {{"prefix_tokens", options.prefix_tokens},
                  {"sessions", options.sessions},
                  {"turns", options.turns},
                  {"append_tokens", options.append_tokens},
                  {"gen_tokens", options.gen_tokens},
                  {"seed", options.seed},
                  {"prefill_chunk", options.prefill_chunk},
                  {"device", options.engine.device == Device::CUDA ? "cuda" : "cpu"}};
  const AgentLoopRun* off = nullptr;
  for (const auto& r : runs)
    if (r.mode == AgentLoopMode::Off) off = &r;
  for (const auto& r : runs) {
    nlohmann::json m;
    for (const auto& t : r.turns)
      m["turns"].push_back(
          {{"session", t.session},
           {"turn", t.turn},
           {"prompt_tokens", t.prompt_tokens},
           {"computed_tokens", t.computed_tokens},
           {"restored_tokens", t.restored_tokens},
           {"recomputed_tokens", t.recomputed_tokens},
           {"restored_blocks",
            {{"working", t.restored_blocks[0]},
             {"ram", t.restored_blocks[1]},
             {"ssd", t.restored_blocks[2]}}},
           {"restore_bytes", t.restore_bytes},
           {"restore_seconds", t.restore_seconds},
           {"restore_gbps",
            t.restore_seconds > 0 ? t.restore_bytes / t.restore_seconds / 1e9 : 0.0},
           {"ttft_seconds", t.ttft_seconds},
           {"decode_tok_s", t.decode_tok_s}});
    m["summary"] = {{"ttft_p50", r.ttft_p50},
                    {"ttft_p95", r.ttft_p95},
                    {"decode_tok_s_p50", r.decode_tok_s_p50},
                    {"restore_gbps", r.restore_gbps}};
    if (off && off != &r && r.ttft_p50 > 0)
      m["summary"]["ttft_p50_speedup_vs_off"] = off->ttft_p50 / r.ttft_p50;
    m["cache"] = r.cache_stats;
    j["modes"][agent_loop_mode_name(r.mode)] = m;
  }
  j["outputs_identical_across_modes"] = outputs_identical;
  return j;
}

std::string AgentLoopReport::to_text() const {
  std::string out = fmt::format(
      "agent loop: prefix {} tokens, {} sessions x {} turns, +{} tokens/turn, {} generated/turn\n",
      options.prefix_tokens, options.sessions, options.turns, options.append_tokens,
      options.gen_tokens);
  const AgentLoopRun* off = nullptr;
  for (const auto& r : runs)
    if (r.mode == AgentLoopMode::Off) off = &r;
  for (const auto& r : runs) {
    out += fmt::format("\n[{}]\n{:>4} {:>4} {:>7} {:>8} {:>8} {:>14} {:>9} {:>7} {:>8} {:>9}\n",
                       agent_loop_mode_name(r.mode), "sess", "turn", "prompt", "computed",
                       "restored", "blocks w/r/s", "restoreMB", "GB/s", "TTFT s", "decode t/s");
    for (const auto& t : r.turns)
      out += fmt::format(
          "{:>4} {:>4} {:>7} {:>8} {:>8} {:>14} {:>9.1f} {:>7.2f} {:>8.3f} {:>9.1f}\n", t.session,
          t.turn, t.prompt_tokens, t.computed_tokens, t.restored_tokens,
          fmt::format("{}/{}/{}", t.restored_blocks[0], t.restored_blocks[1], t.restored_blocks[2]),
          t.restore_bytes / 1e6,
          t.restore_seconds > 0 ? t.restore_bytes / t.restore_seconds / 1e9 : 0.0, t.ttft_seconds,
          t.decode_tok_s);
    out +=
        fmt::format("TTFT p50 {:.3f} s, p95 {:.3f} s; decode p50 {:.1f} tok/s; restore {:.2f} GB/s",
                    r.ttft_p50, r.ttft_p95, r.decode_tok_s_p50, r.restore_gbps);
    if (off && off != &r && r.ttft_p50 > 0)
      out += fmt::format("; TTFT p50 {:.1f}x faster than off", off->ttft_p50 / r.ttft_p50);
    out += "\n";
  }
  out += fmt::format("\ngenerated tokens identical across modes: {}\n",
                     outputs_identical ? "yes" : "NO");
  return out;
}

std::string AgentLoopReport::to_svg() const {
  const double W = 760, H = 420, L = 70, R = 150, T = 40, B = 50;
  size_t n = 0;
  double lo = 1e9, hi = 0;
  for (const auto& r : runs) {
    n = std::max(n, r.turns.size());
    for (const auto& t : r.turns) {
      lo = std::min(lo, std::max(t.ttft_seconds, 1e-3));
      hi = std::max(hi, t.ttft_seconds);
    }
  }
  if (n == 0 || hi <= 0) return "<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
  double ylo = std::pow(10, std::floor(std::log10(lo))),
         yhi = std::pow(10, std::ceil(std::log10(hi)));
  auto X = [&](size_t i) { return L + (W - L - R) * (n > 1 ? double(i) / (n - 1) : 0.5); };
  auto Y = [&](double v) {
    v = std::max(v, ylo);
    return T + (H - T - B) *
                   (1 - (std::log10(v) - std::log10(ylo)) / (std::log10(yhi) - std::log10(ylo)));
  };
  const char* colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd"};
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"22\" font-size=\"15\">Time to first token per turn (prefix {} tokens, {} "
      "sessions)</text>\n",
      W, H, L, options.prefix_tokens, options.sessions);
  for (double v = ylo; v <= yhi * 1.001; v *= 10) {
    s += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", L,
                     W - R, Y(v), Y(v));
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", L - 6, Y(v) + 4,
                     v >= 1 ? fmt::format("{:g} s", v) : fmt::format("{:g} ms", v * 1000));
  }
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">turn (sessions interleaved)</text>\n",
      (L + W - R) / 2, H - 12);
  for (size_t i = 0; i < n; i += std::max<size_t>(1, n / 8))
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", X(i),
                     H - B + 16, i + 1);
  for (size_t k = 0; k < runs.size(); ++k) {
    const auto& r = runs[k];
    const char* c = colors[static_cast<int>(r.mode) % 4];
    std::string pts;
    for (size_t i = 0; i < r.turns.size(); ++i)
      pts += fmt::format("{:.1f},{:.1f} ", X(i), Y(r.turns[i].ttft_seconds));
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                     c, pts);
    for (size_t i = 0; i < r.turns.size(); ++i)
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", X(i),
                       Y(r.turns[i].ttft_seconds), c);
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{}\"/>\n",
                     W - R + 12, T + 20 * k + 6, c);
    s += fmt::format("<text x=\"{}\" y=\"{}\">{} (p50 {:.2f} s)</text>\n", W - R + 30,
                     T + 20 * k + 12, agent_loop_mode_name(r.mode), r.ttft_p50);
  }
  return s + "</svg>\n";
}

}  // namespace hwledger
