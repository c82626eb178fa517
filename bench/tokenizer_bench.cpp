// Tokenizer load time and encode/decode throughput on a few MB of generated mixed English,
// code and CJK text, with the real tokenizers in ../shared/models.
//   build-*/bench/tokenizer_bench --benchmark_filter=Qwen3
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

using hwledger::tokenizer::StreamingDetokenizer;
using hwledger::tokenizer::Tokenizer;

std::string model_dir(const char* name) {
  return std::string(HWLEDGER_SHARED_DIR) + "/models/" + name;
}

// Deterministic generator (not std::uniform_*: those differ between standard libraries).
struct Rng {
  uint64_t state;
  uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(state >> 33);
  }
  size_t below(size_t n) { return next() % n; }
  template <typename T, size_t N>
  const T& pick(const T (&items)[N]) {
    return items[below(N)];
  }
};

const char* const kWords[] = {"the",
                              "of",
                              "and",
                              "to",
                              "in",
                              "a",
                              "is",
                              "that",
                              "for",
                              "it",
                              "as",
                              "was",
                              "with",
                              "be",
                              "by",
                              "on",
                              "not",
                              "he",
                              "this",
                              "are",
                              "or",
                              "his",
                              "from",
                              "at",
                              "which",
                              "but",
                              "have",
                              "an",
                              "had",
                              "they",
                              "you",
                              "were",
                              "their",
                              "one",
                              "all",
                              "we",
                              "can",
                              "her",
                              "has",
                              "there",
                              "been",
                              "if",
                              "more",
                              "when",
                              "will",
                              "would",
                              "who",
                              "so",
                              "no",
                              "model",
                              "memory",
                              "cache",
                              "token",
                              "tokenizer",
                              "inference",
                              "throughput",
                              "latency",
                              "server",
                              "request",
                              "response",
                              "context",
                              "window",
                              "attention",
                              "layer",
                              "weights",
                              "quantization",
                              "benchmark",
                              "deterministic",
                              "prefix",
                              "block",
                              "tier",
                              "eviction",
                              "hardware",
                              "ledger",
                              "prediction",
                              "allocation",
                              "compute",
                              "bandwidth",
                              "accelerator",
                              "transformer",
                              "people",
                              "government",
                              "information",
                              "development",
                              "environment",
                              "understanding",
                              "particularly",
                              "nevertheless",
                              "approximately",
                              "responsibility",
                              "international",
                              "characteristics",
                              "Tuesday",
                              "London",
                              "Paris",
                              "Python",
                              "Linux",
                              "GPU",
                              "API",
                              "JSON",
                              "HTTP",
                              "OpenAI",
                              "don't",
                              "it's",
                              "we're",
                              "they'll",
                              "I've",
                              "you'd",
                              "isn't",
                              "couldn't",
                              "shouldn't"};
const char* const kPunct[] = {".", ",", ";", ":", "!", "?", " -", " (see above)", "...", ","};
const char* const kIdents[] = {
    "i",        "j",      "n",      "count",      "buffer",         "result",
    "value",    "index",  "tokens", "block_size", "kv_cache",       "num_heads",
    "head_dim", "hidden", "scale",  "offset",     "data",           "ptr",
    "config",   "self",   "output", "input_ids",  "attention_mask", "logits",
    "key",      "x"};
const char* const kCodeLines[] = {"for (size_t {a} = 0; {a} < {b}.size(); ++{a}) {\n",
                                  "  {a} += {b}[{n}] * {c};\n",
                                  "    return {a}.get({b}, None)\n",
                                  "def {a}({b}, {c}={n}):\n",
                                  "if ({a} == nullptr) throw std::runtime_error(\"{b} failed\");\n",
                                  "    {a} = torch.zeros({n}, {n}, dtype=torch.float16)\n",
                                  "const auto& {a} = {b}->{c}();  // {b} {c}\n",
                                  "}\n",
                                  "\t{a}.push_back({b} + {n});\n",
                                  "    print(f\"{a}={{{b}}} {c}\")\n",
                                  "{\"{a}\": {n}, \"{b}\": [\"{c}\", {n}]}\n",
                                  "#include <{a}.h>\n"};
// Common Chinese characters, and Japanese and Korean phrases.
const char* const kHanzi[] = {
    "的", "一", "是", "不", "了", "人", "我", "在", "有", "他", "这", "中", "大", "来", "上",
    "国", "个", "到", "说", "们", "为", "子", "和", "你", "地", "出", "道", "也", "时", "年",
    "模", "型", "推", "理", "内", "存", "缓", "计", "算", "数", "据", "服", "务", "器", "请",
    "求", "问", "题", "回", "答", "文", "本", "分", "词", "速", "度", "测", "试", "系", "统"};
const char* const kCjkPhrases[] = {"こんにちは",
                                   "ありがとうございます",
                                   "モデルを読み込みます",
                                   "キャッシュ",
                                   "東京",
                                   "안녕하세요",
                                   "메모리",
                                   "감사합니다",
                                   "토큰",
                                   "。",
                                   "，",
                                   "、",
                                   "！",
                                   "？"};

std::string fill(std::string line, Rng& rng) {
  std::string out;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '{' && i + 2 < line.size() && line[i + 2] == '}') {
      char slot = line[i + 1];
      if (slot == 'n')
        out += std::to_string(rng.below(5000));
      else
        out += rng.pick(kIdents);
      i += 2;
    } else {
      out += line[i];
    }
  }
  return out;
}

// Text of the given kinds, by weight: English prose, code, CJK. The default mix is about
// half English, a quarter code, a quarter CJK by bytes.
std::string mixed_text(size_t bytes, int english = 2, int code = 1, int cjk = 1) {
  Rng rng{42};
  std::string text;
  text.reserve(bytes + 1024);
  while (text.size() < bytes) {
    size_t pick = rng.below(size_t(english + code + cjk));
    int kind = pick < size_t(english) ? 0 : pick < size_t(english + code) ? 2 : 3;
    if (kind == 0) {
      size_t words = 8 + rng.below(25);
      for (size_t w = 0; w < words; ++w) {
        std::string word = rng.pick(kWords);
        if (w == 0) word[0] = char(toupper(word[0]));
        text += word;
        if (rng.below(12) == 0) text += rng.pick(kPunct);
        if (rng.below(40) == 0) text += " " + std::to_string(rng.below(100000));
        text += ' ';
      }
      text.back() = '.';
      text += rng.below(3) == 0 ? "\n\n" : " ";
    } else if (kind == 2) {
      size_t lines = 3 + rng.below(8);
      std::string indent;
      for (size_t l = 0; l < lines; ++l) text += indent + fill(rng.pick(kCodeLines), rng);
    } else {
      size_t pieces = 10 + rng.below(30);
      for (size_t p = 0; p < pieces; ++p)
        text += rng.below(4) == 0 ? rng.pick(kCjkPhrases) : rng.pick(kHanzi);
      text += "。\n";
    }
  }
  return text;
}

const std::string& bench_text() {
  static const std::string text = mixed_text(4u << 20);
  return text;
}

const Tokenizer& loaded(const char* name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, Tokenizer::load(model_dir(name))).first;
  return it->second;
}

void BM_Load(benchmark::State& state, const char* name) {
  for (auto _ : state) {
    Tokenizer tok = Tokenizer::load(model_dir(name));
    benchmark::DoNotOptimize(tok.vocab_size());
  }
}
BENCHMARK_CAPTURE(BM_Load, Qwen3, "qwen3")->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK_CAPTURE(BM_Load, Llama31, "llama3.1")->Unit(benchmark::kMillisecond)->Iterations(5);

// Encode of the whole text; a fresh tokenizer's first pass also fills the pre-token cache.
void BM_Encode(benchmark::State& state, const char* name) {
  const Tokenizer& tok = loaded(name);
  const std::string& text = bench_text();
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text, false);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations() * text.size()));
  state.counters["tokens"] = double(tokens);
  state.counters["bytes_per_token"] = double(text.size()) / double(tokens);
}
BENCHMARK_CAPTURE(BM_Encode, Qwen3, "qwen3")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, Llama31, "llama3.1")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, SpmBpe32k, "spm-bpe-32k")->Unit(benchmark::kMillisecond);

// One kind of text at a time (1 MiB each), Qwen3.
void BM_EncodeKind(benchmark::State& state, int english, int code, int cjk) {
  const Tokenizer& tok = loaded("qwen3");
  const std::string text = mixed_text(1u << 20, english, code, cjk);
  for (auto _ : state) {
    auto ids = tok.encode(text, false);
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations() * text.size()));
}
BENCHMARK_CAPTURE(BM_EncodeKind, English, 1, 0, 0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeKind, Code, 0, 1, 0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeKind, CJK, 0, 0, 1)->Unit(benchmark::kMillisecond);

// The cache's worst case: every pass starts from an empty cache (a new tokenizer).
void BM_EncodeColdCache(benchmark::State& state) {
  const std::string& text = bench_text();
  for (auto _ : state) {
    state.PauseTiming();
    Tokenizer tok = Tokenizer::load(model_dir("qwen3"));
    state.ResumeTiming();
    auto ids = tok.encode(text, false);
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations() * text.size()));
}
BENCHMARK(BM_EncodeColdCache)->Unit(benchmark::kMillisecond)->Iterations(3);

// Server-like use: short requests encoded from several threads on one tokenizer.
void BM_EncodeThreads(benchmark::State& state) {
  const Tokenizer& tok = loaded("qwen3");
  const std::string& text = bench_text();
  size_t chunk = 16 << 10, offset = size_t(state.thread_index()) * 997 * chunk % text.size();
  size_t bytes = 0;
  for (auto _ : state) {
    size_t begin = offset % (text.size() - chunk);
    while (begin > 0 && (uint8_t(text[begin]) & 0xC0) == 0x80) --begin;
    size_t end = begin + chunk;
    while (end < text.size() && (uint8_t(text[end]) & 0xC0) == 0x80) ++end;
    auto ids = tok.encode(std::string_view(text).substr(begin, end - begin), true);
    benchmark::DoNotOptimize(ids.data());
    bytes += end - begin;
    offset += chunk;
  }
  state.SetBytesProcessed(int64_t(bytes));
}
BENCHMARK(BM_EncodeThreads)->Threads(1)->Threads(2)->UseRealTime();

void BM_Decode(benchmark::State& state) {
  const Tokenizer& tok = loaded("qwen3");
  auto ids = tok.encode(bench_text(), false);
  for (auto _ : state) {
    std::string text = tok.decode(ids);
    benchmark::DoNotOptimize(text.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations() * ids.size()));
  state.SetBytesProcessed(int64_t(state.iterations() * bench_text().size()));
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

void BM_StreamingDetokenize(benchmark::State& state) {
  const Tokenizer& tok = loaded("qwen3");
  auto ids = tok.encode(bench_text(), false);
  for (auto _ : state) {
    StreamingDetokenizer stream(tok);
    size_t total = 0;
    for (int32_t id : ids) total += stream.push(id).size();
    total += stream.flush().size();
    benchmark::DoNotOptimize(total);
  }
  state.SetItemsProcessed(int64_t(state.iterations() * ids.size()));
}
BENCHMARK(BM_StreamingDetokenize)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
