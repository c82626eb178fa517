// The demo model's tokenizer, built at run time so that `hwledger model synth --preset demo`
// needs no outside file: byte-level BPE whose merges are learned, deterministically, from the
// short English and code text below.
#include <algorithm>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"

namespace hwledger::tokenizer {
namespace {

using nlohmann::json;

constexpr std::string_view kDemoCorpus = R"corpus(
The quick brown fox jumps over the lazy dog. A local language model runs on the machine in
front of you: it reads the prompt, turns the text into tokens, and predicts the next token one
step at a time. Each step looks at every token that came before, so the model keeps a cache of
keys and values for the tokens it has already seen. When the same prompt comes back, the cache
lets the model skip the work it has already done, and the first token arrives much sooner.
This is a demo model. Its weights are random, so the text it writes is noise, but every part of
the system around it is real: the tokenizer, the chat template, the cache, the server and the
benchmarks. You can send it a question and it will answer with words that make no sense.
Memory is the main limit. The weights take a fixed amount of memory, the cache grows with the
length of the context and the number of users, and the activations of a long prefill need room
as well. The planner adds these up for each layer and tells you whether the model will fit on
your device before you start it.
Hello, world! How are you today? I am fine, thank you. What time is it? It is ten past three.
Please write a short story about a robot who learns to paint. Then summarize it in one line.
The user asked for the weather in Paris; the assistant called a tool and got back a number.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 16 32 64 100 128 256 512 1024 2048 4096 8192 3.14 2.71
Dates like 2024-01-15 and times like 12:30 appear often, as do prices ($19.99) and rates (5%).
def tokenize(text):
    """Split the text into words and return their ids."""
    words = text.split()
    return [vocab.get(word, unk_id) for word in words]

class Cache:
    def __init__(self, capacity):
        self.capacity = capacity
        self.entries = {}

    def get(self, key):
        return self.entries.get(key)

    def put(self, key, value):
        if len(self.entries) >= self.capacity:
            self.entries.pop(next(iter(self.entries)))
        self.entries[key] = value

for i in range(10):
    print(f"step {i}: loss = {1.0 / (i + 1):.3f}")

#include <cstdio>
#include <string>
#include <vector>

struct Block {
  int index = 0;
  std::vector<float> keys;
  std::vector<float> values;
};

int main(int argc, char** argv) {
  std::vector<Block> blocks(16);
  for (size_t i = 0; i < blocks.size(); ++i) {
    blocks[i].index = static_cast<int>(i);
    blocks[i].keys.resize(128, 0.0f);
  }
  if (argc > 1) {
    std::printf("%s\n", argv[1]);
  }
  return 0;
}

{"model": "demo", "messages": [{"role": "user", "content": "Hello!"}], "stream": true}
<html><body><p>This is a paragraph with a <a href="https://example.com">link</a>.</p></body></html>
SELECT name, count(*) FROM users WHERE active = 1 GROUP BY name ORDER BY count(*) DESC;
The system prompt says: you are a helpful assistant. The user says: hello. The assistant says:
hello, how can I help you today? The user says: tell me a joke. The assistant says: why did the
chicken cross the road? To get to the other side. The user says: that is an old one.

A tokenizer splits text into pieces that a model can count. Common words become one piece,
rare words are spelled out from smaller pieces, and any byte at all can still be written, so
no input is ever refused. Numbers are split into single digits, spaces stay attached to the
word that follows them, and punctuation keeps to itself.
The scheduler decides which request runs next. Short requests should not wait behind long
ones, so prefill is cut into chunks and decode steps of many users are batched together.
When memory runs low, the least recently used blocks move from working memory to the RAM
tier, then to the disk, and come back when a prompt needs them again. Every block carries a
checksum; a block that fails the check is dropped and computed again, never served.
Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday. January, February, March,
April, May, June, July, August, September, October, November, December. North, south, east,
west. Red, green, blue, yellow, black, white. One, two, three, four, five, six, seven, eight.
import json
import sys
from pathlib import Path

def load_config(path: Path) -> dict:
    with open(path, "r", encoding="utf-8") as handle:
        config = json.load(handle)
    if "hidden_size" not in config:
        raise ValueError(f"{path}: missing hidden_size")
    return config

async def handle_request(request):
    body = await request.json()
    prompt = body.get("prompt", "")
    tokens = tokenizer.encode(prompt)
    result = await engine.generate(tokens, max_tokens=body.get("max_tokens", 128))
    return {"text": tokenizer.decode(result), "usage": {"prompt_tokens": len(tokens)}}

template <typename T>
T clamp(T value, T low, T high) {
  return value < low ? low : (value > high ? high : value);
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string result;
  for (const auto& part : parts) {
    if (!result.empty()) result += separator;
    result += part;
  }
  return result;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("hello from {}", args[0]);
}

const server = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ status: "ok", uptime: process.uptime() }));
});

$ git commit -m "Fix the cache eviction order" && git push origin main
$ cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build -j8
| name | value |
|------|-------|
| layers | 32 |
| heads | 32 |
| hidden | 4096 |
<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
What is the capital of France?<|im_end|>
<|im_start|>assistant
The capital of France is Paris.<|im_end|>
<|im_start|>user
And of Japan?<|im_end|>
<|im_start|>assistant
Tokyo.<|im_end|>
)corpus";

// Qwen2's pre-tokenizer pattern: contractions, letters, single digits, punctuation, spaces.
constexpr std::string_view kDemoPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr std::string_view kChatTemplate =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

constexpr const char* kSpecialTokens[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
constexpr size_t kSpecialCount = 3;
constexpr size_t kModelVocab = kDemoVocabSize - kSpecialCount;  // bytes + learned merges

struct Learned {
  std::vector<std::string> tokens;                  // [kModelVocab] byte-level text
  std::vector<std::pair<int32_t, int32_t>> merges;  // in rank order
};

// Classic BPE training on the corpus' pre-tokens: merge the most frequent adjacent pair
// (ties: smallest ids) until the vocabulary is full. Pair counts live in a dense table since
// ids stay below kDemoVocabSize.
Learned learn() {
  Learned learned;
  const auto& chars = byte_level::byte_chars();
  for (int b = 0; b < 256; ++b) learned.tokens.push_back(chars[size_t(b)]);

  std::map<std::string, int64_t> frequency;
  Regex regex(kDemoPattern, "demo tokenizer");
  regex.for_each_match(kDemoCorpus, [&](size_t begin, size_t end) {
    ++frequency[std::string(kDemoCorpus.substr(begin, end - begin))];
  });
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> counts;
  for (const auto& [word, count] : frequency) {
    std::vector<int32_t> symbols;
    for (char c : word) symbols.push_back(uint8_t(c));
    words.push_back(std::move(symbols));
    counts.push_back(count);
  }

  std::map<std::string, int32_t> token_ids;
  for (int b = 0; b < 256; ++b) token_ids[chars[size_t(b)]] = b;
  std::vector<int64_t> pair_counts(kDemoVocabSize * kDemoVocabSize, 0);  // [left][right]
  std::vector<size_t> touched;
  while (learned.tokens.size() < kModelVocab) {
    touched.clear();
    for (size_t w = 0; w < words.size(); ++w) {
      const auto& symbols = words[w];
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        size_t key = size_t(symbols[i]) * kDemoVocabSize + size_t(symbols[i + 1]);
        if (pair_counts[key] == 0) touched.push_back(key);
        pair_counts[key] += counts[w];
      }
    }
    if (touched.empty()) break;  // every word is one token: nothing left to learn
    size_t best = touched[0];
    for (size_t key : touched)
      if (pair_counts[key] > pair_counts[best] ||
          (pair_counts[key] == pair_counts[best] && key < best))
        best = key;
    for (size_t key : touched) pair_counts[key] = 0;
    auto left = int32_t(best / kDemoVocabSize), right = int32_t(best % kDemoVocabSize);
    std::string merged = learned.tokens[size_t(left)] + learned.tokens[size_t(right)];
    int32_t merged_id;
    auto it = token_ids.find(merged);
    if (it != token_ids.end()) {
      merged_id = it->second;  // same bytes reached by another split: no new token
    } else {
      merged_id = int32_t(learned.tokens.size());
      learned.tokens.push_back(merged);
      token_ids[merged] = merged_id;
    }
    learned.merges.emplace_back(left, right);
    for (auto& symbols : words) {
      size_t out = 0;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          symbols[out++] = merged_id;
          ++i;
        } else {
          symbols[out++] = symbols[i];
        }
      }
      symbols.resize(out);
    }
  }
  return learned;
}

const Learned& learned() {
  static const Learned result = learn();
  return result;
}

json byte_level_step(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", false},
          {"use_regex", use_regex}};
}

}  // namespace

std::string demo_tokenizer_json() {
  const Learned& l = learned();
  json vocab = json::object();
  for (size_t id = 0; id < l.tokens.size(); ++id) vocab[l.tokens[id]] = id;
  json merges = json::array();
  for (auto [left, right] : l.merges)
    merges.push_back({l.tokens[size_t(left)], l.tokens[size_t(right)]});
  json added = json::array();
  for (size_t i = 0; i < kSpecialCount; ++i) {
    added.push_back({{"id", l.tokens.size() + i},
                     {"content", kSpecialTokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  json doc = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", {{"type", "NFC"}}},
              {"pre_tokenizer",
               {{"type", "Sequence"},
                {"pretokenizers",
                 {{{"type", "Split"},
                   {"pattern", {{"Regex", kDemoPattern}}},
                   {"behavior", "Isolated"},
                   {"invert", false}},
                  byte_level_step(false)}}}},
              {"post_processor", byte_level_step(false)},
              {"decoder", byte_level_step(false)},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merges}}}};
  return doc.dump();
}

std::string demo_tokenizer_config_json() {
  size_t first_special = learned().tokens.size();
  json decoder = json::object();
  for (size_t i = 0; i < kSpecialCount; ++i) {
    decoder[std::to_string(first_special + i)] = {
        {"content", kSpecialTokens[i]}, {"lstrip", false}, {"normalized", false}, {"rstrip", false},
        {"single_word", false},         {"special", true}};
  }
  json doc = {{"add_bos_token", false},
              {"add_prefix_space", false},
              {"added_tokens_decoder", decoder},
              {"additional_special_tokens", {"<|im_start|>", "<|im_end|>"}},
              {"bos_token", nullptr},
              {"chat_template", kChatTemplate},
              {"clean_up_tokenization_spaces", false},
              {"eos_token", "<|im_end|>"},
              {"model_max_length", 32768},
              {"pad_token", "<|endoftext|>"},
              {"tokenizer_class", "PreTrainedTokenizerFast"},
              {"unk_token", nullptr}};
  return doc.dump(2);
}

}  // namespace hwledger::tokenizer
