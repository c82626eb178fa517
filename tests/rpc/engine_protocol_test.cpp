// `hwledger engine --stdio` as a parent drives it: every method and notification of the sidecar
// protocol (SPEC "JSON-RPC over stdio"), bad input of every kind (each gets its error reply and the
// engine stays up), shutdown paths, and a kill -9 in the middle of a stream followed by a restart
// that restores the prompt's KV blocks from the SSD tier.
#include <sys/wait.h>

#include <numeric>

#include "rpc/process_harness.h"
#include "tokenizer/tokenizer.h"

namespace hwledger::testing {
namespace {

const bool kSubreaper = (become_subreaper(), true);

class EngineTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> args = {}) {
    std::vector<std::string> argv = {hwledger_binary(), "engine", "--stdio", "--threads", "2"};
    argv.insert(argv.end(), args.begin(), args.end());
    process_ = std::make_unique<ChildProcess>(argv);
    rpc_ = std::make_unique<RpcPeer>(*process_);
  }
  void TearDown() override {
    if (process_) {
      process_->close_stdin();
      EXPECT_TRUE(process_->wait(30)) << "the engine did not exit after its stdin closed";
    }
    rpc_.reset();
    process_.reset();
    expect_no_children();
  }
  // The engine still answers (after a bad input).
  void expect_alive() {
    json r = rpc_->result("health");
    EXPECT_TRUE(r.contains("status")) << r.dump();
  }
  json error_reply(const std::string& line) {
    rpc_->send_raw(line + "\n");
    auto m = rpc_->next(30);
    EXPECT_TRUE(m && m->contains("error"))
        << (m ? m->dump() : "no reply") << " for " << line.substr(0, 200);
    return m ? *m : json();
  }
  json load(const std::string& model, json extra = json::object()) {
    extra["model"] = model;
    return rpc_->result("load_model", extra, 120);
  }

  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<RpcPeer> rpc_;
};

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += n;
  }
  return true;
}

// --- methods ---------------------------------------------------------------------------------

TEST_F(EngineTest, HealthBeforeAnyModel) {
  start();
  json r = rpc_->result("health");
  EXPECT_EQ(r["status"], "no_model");
  EXPECT_TRUE(r["model"].is_null());
  EXPECT_EQ(r["version"], "0.1.0");
  EXPECT_GE(r["uptime_s"].get<double>(), 0.0);
  EXPECT_EQ(r["pid"], process_->pid());
}

TEST_F(EngineTest, GenerateBeforeLoadModelIsAnEngineError) {
  start();
  json r =
      rpc_->call("generate", {{"request_id", "a"}, {"prompt_ids", {1, 2, 3}}, {"max_tokens", 4}});
  EXPECT_EQ(r["error"]["code"], -32001) << r.dump();
  for (const char* m : {"memory_report", "cache_stats", "cache_clear", "bench"}) {
    EXPECT_EQ(rpc_->call(m)["error"]["code"], -32001) << m;
  }
  expect_alive();
}

// Greedy generation over the protocol reproduces transformers' tokens (golden gen_greedy).
TEST_F(EngineTest, StreamedGreedyTokensMatchTheGolden) {
  start();
  const std::string dir = golden_dir("qwen3-tiny");
  auto prompt = read_i32_tensor(dir + "/reference.safetensors", "gen_prompt");
  auto expected = read_i32_tensor(dir + "/reference.safetensors", "gen_greedy");
  json loaded = load(dir, {{"kv_dtype", "f32"}});
  EXPECT_EQ(loaded["loaded"], true);
  EXPECT_EQ(loaded["model"], "qwen3-tiny");
  EXPECT_EQ(loaded["context_length"], 4096);
  EXPECT_EQ(rpc_->result("health")["status"], "ok");

  json id = "gen-call-1";  // a string JSON-RPC id is echoed as it is
  rpc_->send({{"jsonrpc", "2.0"},
              {"id", id},
              {"method", "generate"},
              {"params",
               {{"request_id", "g1"},
                {"prompt_ids", prompt},
                {"max_tokens", expected.size()},
                {"stream", true}}}});
  json r = rpc_->response(id, 120);
  ASSERT_TRUE(r.contains("result")) << r.dump();
  json result = r["result"];
  EXPECT_EQ(result["request_id"], "g1");
  EXPECT_EQ(result["prompt_tokens"], prompt.size());
  EXPECT_EQ(result["completion_tokens"], expected.size());
  EXPECT_EQ(result["stopped_reason"], "length");
  EXPECT_EQ(result["cached_tokens"], 0);
  EXPECT_EQ(result["text"], "");  // this model has no tokenizer: tokens only

  auto tokens = tokens_of(rpc_->notifications, "g1");
  ASSERT_EQ(tokens.size(), expected.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    EXPECT_EQ(tokens[i]["index"], i);
    EXPECT_EQ(tokens[i]["token_id"], expected[i]) << "token " << i;
  }
}

TEST_F(EngineTest, NonStreamingGenerateSendsNoNotifications) {
  start();
  load(golden_dir("qwen3-tiny"));
  json r =
      rpc_->result("generate", {{"request_id", "n"}, {"prompt_ids", {5, 6, 7}}, {"max_tokens", 5}});
  EXPECT_EQ(r["completion_tokens"], 5);
  EXPECT_TRUE(rpc_->notifications.empty());
}

TEST_F(EngineTest, TextPromptStreamsWholeUtf8ThatAddsUpToTheFinalText) {
  start();
  load(text_model_dir());
  json r = rpc_->result(
      "generate",
      {{"request_id", "t"}, {"prompt", "Once upon a time"}, {"max_tokens", 48}, {"stream", true}});
  auto tokens = tokens_of(rpc_->notifications, "t");
  std::string streamed;
  std::vector<int32_t> ids;
  for (const auto& t : tokens) {
    std::string text = t["text"];
    EXPECT_TRUE(valid_utf8(text)) << "notification text is not whole UTF-8";
    streamed += text;
    if (t["token_id"] != -1) ids.push_back(t["token_id"]);
  }
  EXPECT_EQ(streamed, r["text"]);
  EXPECT_EQ(static_cast<int64_t>(ids.size()), r["completion_tokens"].get<int64_t>());
  // The text is the tokenizer's decoding of the streamed ids (special tokens skipped).
  auto tok = tokenizer::Tokenizer::from_json(tokenizer::demo_tokenizer_json(),
                                             tokenizer::demo_tokenizer_config_json());
  EXPECT_EQ(r["text"], tok.decode(ids, /*skip_special_tokens=*/true));
  EXPECT_EQ(r["prompt_tokens"], tok.encode("Once upon a time", true).size());
}

TEST_F(EngineTest, MessagesAreRenderedWithTheChatTemplate) {
  start();
  load(text_model_dir());
  json r = rpc_->result("generate", {{"request_id", "m"},
                                     {"messages", {{{"role", "user"}, {"content", "Hello there"}}}},
                                     {"max_tokens", 3}});
  auto tok = tokenizer::Tokenizer::from_json(tokenizer::demo_tokenizer_json(),
                                             tokenizer::demo_tokenizer_config_json());
  // ChatML: <|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n
  std::string rendered = "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(r["prompt_tokens"], tok.encode(rendered, false).size()) << r.dump();
  json bad = rpc_->call("generate",
                        {{"request_id", "m2"},
                         {"messages", {{{"role", "user"}, {"content", {{{"type", "image"}}}}}}},
                         {"max_tokens", 3}});
  EXPECT_EQ(bad["error"]["code"], -32602) << bad.dump();
  EXPECT_EQ(bad["error"]["data"]["field"], "messages");
}

TEST_F(EngineTest, StopStringEndsTheTextBeforeIt) {
  start();
  load(text_model_dir());
  json params = {{"prompt", "The cat"}, {"max_tokens", 64}, {"stream", true}};
  params["request_id"] = "full";
  json full = rpc_->result("generate", params);
  std::string text = full["text"];
  ASSERT_GE(text.size(), 12u) << "the model said too little to pick a stop string from: " << text;
  // A stop string taken from the middle of the greedy text, on character boundaries.
  size_t from = 6;
  while (from < text.size() && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) ++from;
  size_t to = from + 3;
  while (to < text.size() && (static_cast<unsigned char>(text[to]) & 0xC0) == 0x80) ++to;
  std::string stop = text.substr(from, to - from);
  size_t first = text.find(stop);
  params["request_id"] = "stopped";
  params["stop"] = {stop};
  rpc_->notifications.clear();
  json r = rpc_->result("generate", params);
  EXPECT_EQ(r["stopped_reason"], "stop");
  EXPECT_EQ(r["text"], text.substr(0, first));
  std::string streamed;
  for (const auto& t : tokens_of(rpc_->notifications, "stopped"))
    streamed += t["text"].get<std::string>();
  EXPECT_EQ(streamed, r["text"]);
}

TEST_F(EngineTest, ConcurrentGeneratesAndCancel) {
  start();
  load(golden_dir("qwen3-tiny"));
  std::vector<int32_t> prompt(40);
  std::iota(prompt.begin(), prompt.end(), 100);
  rpc_->send(
      {{"jsonrpc", "2.0"},
       {"id", 100},
       {"method", "generate"},
       {"params",
        {{"request_id", "long"}, {"prompt_ids", prompt}, {"max_tokens", 3000}, {"stream", true}}}});
  rpc_->send({{"jsonrpc", "2.0"},
              {"id", 101},
              {"method", "generate"},
              {"params",
               {{"request_id", "short"},
                {"prompt_ids", {7, 8, 9}},
                {"max_tokens", 20},
                {"stream", true}}}});
  json short_reply = rpc_->response(101, 60);
  EXPECT_EQ(short_reply["result"]["completion_tokens"], 20);
  EXPECT_EQ(tokens_of(rpc_->notifications, "short").size(), 20u);
  // Both streamed at once: the long one had tokens before the short one finished... or at least
  // is still running now, so it can be cancelled.
  json dup =
      rpc_->call("generate", {{"request_id", "long"}, {"prompt_ids", {1}}, {"max_tokens", 1}});
  EXPECT_EQ(dup["error"]["code"], -32003) << dup.dump();
  json c = rpc_->call("cancel", {{"request_id", "long"}});
  EXPECT_EQ(c["result"]["cancelled"], true) << c.dump();
  json long_reply = rpc_->response(100, 60);
  EXPECT_EQ(long_reply["result"]["stopped_reason"], "cancelled") << long_reply.dump();
  EXPECT_LT(long_reply["result"]["completion_tokens"].get<int>(), 3000);
  auto long_tokens = tokens_of(rpc_->notifications, "long");
  EXPECT_EQ(static_cast<int64_t>(long_tokens.size()),
            long_reply["result"]["completion_tokens"].get<int64_t>());
  // Finished and cancelled ids are free again; unknown ones are an error.
  EXPECT_EQ(rpc_->call("cancel", {{"request_id", "long"}})["error"]["code"], -32004);
  json again =
      rpc_->result("generate", {{"request_id", "long"}, {"prompt_ids", {1}}, {"max_tokens", 1}});
  EXPECT_EQ(again["completion_tokens"], 1);
}

TEST_F(EngineTest, MemoryReportAddsUpPerLayer) {
  start();
  const std::string dir = golden_dir("qwen3-tiny");
  load(dir, {{"max_kv_size", "4M"}});
  json m = rpc_->result("memory_report");
  ASSERT_TRUE(m.contains("layers")) << m.dump();
  EXPECT_EQ(m["total_bytes"].get<uint64_t>(), m["weights_bytes"].get<uint64_t>() +
                                                  m["kv_bytes"].get<uint64_t>() +
                                                  m["runtime_bytes"].get<uint64_t>());
  ASSERT_EQ(m["layers"].size(), 3u);
  uint64_t layer_kv = 0, layer_weights = 0;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(m["layers"][i]["index"], i);
    layer_kv += m["layers"][i]["kv_bytes"].get<uint64_t>();
    layer_weights += m["layers"][i]["weights_bytes"].get<uint64_t>();
  }
  EXPECT_EQ(layer_kv, m["kv_bytes"].get<uint64_t>());
  EXPECT_LE(m["kv_bytes"].get<uint64_t>(), uint64_t{4} << 20);
  // KV of this model: 3 layers x 2 (K,V) x 2 heads x 32 dims x 2 bytes (f16) = 768 bytes a token.
  EXPECT_EQ(m["kv_bytes"].get<uint64_t>() % (768 * m["block_tokens"].get<uint64_t>()), 0u);
  // Weights as the engine holds them, derived from the safetensors header alone: matrices as
  // stored (bf16), vectors (norms) as fp32 copies.
  std::ifstream in(dir + "/model.safetensors", std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  uint64_t file_weights = 0, file_layers = 0;
  json tensors = json::parse(header);
  for (auto& [name, t] : tensors.items()) {
    if (name == "__metadata__") continue;
    uint64_t bytes = t["data_offsets"][1].get<uint64_t>() - t["data_offsets"][0].get<uint64_t>();
    if (t["shape"].size() == 1) bytes = t["shape"][0].get<uint64_t>() * 4;
    file_weights += bytes;
    if (name.rfind("model.layers.", 0) == 0) file_layers += bytes;
  }
  EXPECT_EQ(layer_weights, file_layers);
  EXPECT_EQ(m["weights_bytes"].get<uint64_t>(), file_weights);
  EXPECT_TRUE(m["tiers"].contains("working")) << m.dump();
}

TEST_F(EngineTest, CacheStatsReuseAndClear) {
  start();
  load(golden_dir("qwen3-tiny"));
  json stats = rpc_->result("cache_stats");
  for (const char* tier : {"working", "ram", "ssd"}) {
    ASSERT_TRUE(stats.contains(tier)) << stats.dump();
    for (const char* key : {"blocks", "bytes", "capacity", "hits", "misses", "evictions"}) {
      EXPECT_TRUE(stats[tier].contains(key)) << tier << "." << key;
    }
  }
  std::vector<int32_t> prompt(100);
  std::iota(prompt.begin(), prompt.end(), 3);
  json first =
      rpc_->result("generate", {{"request_id", "a"}, {"prompt_ids", prompt}, {"max_tokens", 2}});
  EXPECT_EQ(first["cached_tokens"], 0);
  json second =
      rpc_->result("generate", {{"request_id", "b"}, {"prompt_ids", prompt}, {"max_tokens", 2}});
  EXPECT_GE(second["cached_tokens"].get<int>(), 64) << second.dump();  // full 32-token blocks
  EXPECT_GT(rpc_->result("cache_stats")["working"]["hits"].get<int>(), 0);
  json cleared = rpc_->result("cache_clear", {{"tier", "working"}});
  EXPECT_GE(cleared["cleared_blocks"].get<int>(), 3) << cleared.dump();
  json third =
      rpc_->result("generate", {{"request_id", "c"}, {"prompt_ids", prompt}, {"max_tokens", 2}});
  EXPECT_EQ(third["cached_tokens"], 0);
  EXPECT_GE(rpc_->result("cache_clear")["cleared_blocks"].get<int>(), 0);
  json bad = rpc_->call("cache_clear", {{"tier", "floppy"}});
  EXPECT_EQ(bad["error"]["code"], -32602);
  EXPECT_EQ(bad["error"]["data"]["field"], "tier");
}

TEST_F(EngineTest, BenchReportsTheModelBench) {
  start();
  load(golden_dir("qwen3-tiny"));
  json r = rpc_->result(
      "bench", {{"workload", "model"}, {"prompt_tokens", 32}, {"gen_tokens", 8}, {"repeats", 1}},
      300);
  EXPECT_EQ(r["workload"], "model");
  EXPECT_FALSE(r.empty());
  std::string dump = r.dump();
  EXPECT_NE(dump.find("prefill"), std::string::npos) << dump;
  EXPECT_NE(dump.find("decode"), std::string::npos) << dump;
  // The agent-loop workload: its report, with every cache mode generating the same tokens.
  json loop = rpc_->result("bench",
                           {{"workload", "agent-loop"},
                            {"prefix_tokens", 64},
                            {"sessions", 2},
                            {"turns", 2},
                            {"append_tokens", 32},
                            {"gen_tokens", 4},
                            {"modes", {"off", "ram"}}},
                           300);
  EXPECT_EQ(loop["workload"], "agent-loop");
  EXPECT_EQ(loop["outputs_identical_across_modes"], true) << loop.dump();
  ASSERT_TRUE(loop["modes"].contains("ram")) << loop.dump();
  EXPECT_EQ(loop["modes"]["ram"]["turns"].size(), 4u);
  EXPECT_EQ(rpc_->call("bench", {{"workload", "agent-loop"},
                                 {"modes", {"floppy"}}})["error"]["data"]["field"],
            "modes[0]");
  EXPECT_EQ(rpc_->call("bench", {{"workload", "nope"}})["error"]["data"]["field"], "workload");
  EXPECT_EQ(rpc_->call("bench", {{"prompt_tokens", 0}})["error"]["data"]["field"], "prompt_tokens");
}

TEST_F(EngineTest, UnloadThenLoadAgain) {
  start();
  load(golden_dir("qwen3-tiny"));
  EXPECT_EQ(rpc_->call("unload_model", {{"model", "other"}})["error"]["data"]["field"], "model");
  EXPECT_EQ(rpc_->result("unload_model", {{"model", "qwen3-tiny"}})["unloaded"], true);
  EXPECT_TRUE(rpc_->result("health")["model"].is_null());
  EXPECT_EQ(
      rpc_->call("generate",
                 {{"request_id", "x"}, {"prompt_ids", {1}}, {"max_tokens", 1}})["error"]["code"],
      -32001);
  EXPECT_EQ(rpc_->result("unload_model")["unloaded"], false);
  EXPECT_EQ(load(golden_dir("llama-tiny"))["model"], "llama-tiny");
  EXPECT_EQ(rpc_->result("health")["model"], "llama-tiny");
}

TEST_F(EngineTest, LoadModelErrors) {
  start();
  json r = rpc_->call("load_model", {{"model", "/nonexistent/model"}});
  EXPECT_EQ(r["error"]["code"], -32005) << r.dump();
  EXPECT_EQ(r["error"]["data"]["model"], "/nonexistent/model");
  EXPECT_EQ(rpc_->call("load_model", {{"model", 5}})["error"]["data"]["field"], "model");
  EXPECT_EQ(rpc_->call("load_model", {{"model", golden_dir("qwen3-tiny")},
                                      {"kv_dtype", "q4"}})["error"]["data"]["field"],
            "kv_dtype");
  EXPECT_EQ(rpc_->call("load_model", {{"model", golden_dir("qwen3-tiny")},
                                      {"max_kv_size", "lots"}})["error"]["data"]["field"],
            "max_kv_size");
  EXPECT_EQ(rpc_->result("health")["status"], "no_model");
}

TEST_F(EngineTest, PipelinedLoadThenGenerateRunInOrder) {
  start();
  std::string lines =
      json({{"jsonrpc", "2.0"},
            {"id", 1},
            {"method", "load_model"},
            {"params", {{"model", golden_dir("qwen3-tiny")}}}})
          .dump() +
      "\n" +
      json({{"jsonrpc", "2.0"},
            {"id", 2},
            {"method", "generate"},
            {"params", {{"request_id", "p"}, {"prompt_ids", {1, 2}}, {"max_tokens", 3}}}})
          .dump() +
      "\n";
  rpc_->send_raw(lines);
  EXPECT_TRUE(rpc_->response(1, 120).contains("result"));
  EXPECT_EQ(rpc_->response(2, 60)["result"]["completion_tokens"], 3);
}

TEST_F(EngineTest, RequestsOverTheContextAreInvalidParams) {
  start();
  load(golden_dir("qwen3-tiny"));
  json r =
      rpc_->call("generate", {{"request_id", "x"}, {"prompt_ids", {1, 2}}, {"max_tokens", 5000}});
  EXPECT_EQ(r["error"]["code"], -32602);
  EXPECT_EQ(r["error"]["data"]["field"], "max_tokens");
  r = rpc_->call("generate", {{"request_id", "x"}, {"prompt_ids", {1, 1024}}, {"max_tokens", 5}});
  EXPECT_EQ(r["error"]["data"]["field"], "prompt_ids[1]");
  r = rpc_->call("generate",
                 {{"request_id", "x"}, {"prompt", "no tokenizer here"}, {"max_tokens", 5}});
  EXPECT_EQ(r["error"]["data"]["field"], "prompt");
  expect_alive();
}

// --- bad input: each gets its error reply, and the engine stays up -----------------------------

TEST_F(EngineTest, InvalidJson) {
  start();
  json e = error_reply(R"({"jsonrpc":"2.0","id":1,"method":"health")");
  EXPECT_EQ(e["error"]["code"], -32700);
  EXPECT_TRUE(e["id"].is_null());
  EXPECT_EQ(error_reply("not json at all")["error"]["code"], -32700);
  EXPECT_EQ(error_reply("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"h\xff\"}")["error"]["code"],
            -32700);
  EXPECT_EQ(error_reply(std::string("{\"a\":\0}", 7))["error"]["code"], -32700);
  expect_alive();
}

TEST_F(EngineTest, InvalidRequests) {
  start();
  EXPECT_EQ(error_reply("[]")["error"]["code"], -32600);
  EXPECT_EQ(error_reply(R"([{"jsonrpc":"2.0","id":1,"method":"health"}])")["error"]["code"],
            -32600);
  EXPECT_EQ(error_reply("123")["error"]["code"], -32600);
  json e = error_reply(R"({"id":4,"method":"health"})");
  EXPECT_EQ(e["error"]["code"], -32600);
  EXPECT_EQ(e["id"], 4);
  EXPECT_EQ(error_reply(R"({"jsonrpc":"2.0","id":[1],"method":"health"})")["error"]["code"],
            -32600);
  EXPECT_EQ(
      error_reply(R"({"jsonrpc":"2.0","id":5,"method":"health","params":"x"})")["error"]["code"],
      -32600);
  EXPECT_EQ(
      error_reply(R"({"jsonrpc":"2.0","id":5,"method":"health","params":[]})")["error"]["code"],
      -32602);
  EXPECT_EQ(error_reply("[" + std::string(200000, '[') + "]")["error"]["code"], -32600);
  expect_alive();
}

TEST_F(EngineTest, UnknownMethod) {
  start();
  json e = error_reply(R"({"jsonrpc":"2.0","id":"u","method":"explode"})");
  EXPECT_EQ(e["error"]["code"], -32601);
  EXPECT_EQ(e["id"], "u");
  EXPECT_EQ(e["error"]["data"]["method"], "explode");
  // A notification of an unknown method still gets an error (with id null): never silence.
  json n = error_reply(R"({"jsonrpc":"2.0","method":"explode"})");
  EXPECT_EQ(n["error"]["code"], -32601);
  EXPECT_TRUE(n["id"].is_null());
  expect_alive();
}

TEST_F(EngineTest, WrongParamTypes) {
  start();
  load(golden_dir("qwen3-tiny"));
  struct Case {
    json params;
    std::string field;
  };
  std::vector<Case> cases = {
      {{{"request_id", 1}, {"prompt_ids", {1}}, {"max_tokens", 1}}, "request_id"},
      {{{"request_id", "a"}, {"prompt_ids", {1}}, {"max_tokens", "1"}}, "max_tokens"},
      {{{"request_id", "a"}, {"prompt_ids", "1 2"}, {"max_tokens", 1}}, "prompt_ids"},
      {{{"request_id", "a"}, {"prompt_ids", {1, "2"}}, {"max_tokens", 1}}, "prompt_ids[1]"},
      {{{"request_id", "a"}, {"prompt_ids", {1}}, {"max_tokens", 1}, {"temperature", "warm"}},
       "temperature"},
      {{{"request_id", "a"}, {"prompt_ids", {1}}, {"max_tokens", 1}, {"top_p", 7}}, "top_p"},
      {{{"request_id", "a"}, {"prompt_ids", {1}}, {"max_tokens", 1}, {"stream", 1}}, "stream"},
      {{{"request_id", "a"}, {"prompt_ids", {1}}, {"max_tokens", 1}, {"stop", {1}}}, "stop[0]"},
      {{{"request_id", "a"}, {"max_tokens", 1}}, "prompt"},
  };
  for (const auto& c : cases) {
    json r = rpc_->call("generate", c.params);
    EXPECT_EQ(r["error"]["code"], -32602) << c.params.dump();
    EXPECT_EQ(r["error"]["data"]["field"], c.field) << r.dump();
    EXPECT_TRUE(r["error"]["data"]["reason"].is_string());
  }
  EXPECT_EQ(rpc_->call("cancel", {{"request_id", 3}})["error"]["data"]["field"], "request_id");
  EXPECT_EQ(rpc_->call("cancel")["error"]["data"]["field"], "request_id");
  expect_alive();
}

TEST_F(EngineTest, CancelOfAnUnknownRequestId) {
  start();
  json r = rpc_->call("cancel", {{"request_id", "never-started"}});
  EXPECT_EQ(r["error"]["code"], -32004);
  EXPECT_EQ(r["error"]["data"]["field"], "request_id");
  expect_alive();
}

uint64_t peak_rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  uint64_t kb = 0;
  while (status >> key) {
    if (key == "VmHWM:") status >> kb;
  }
  return kb;
}

TEST_F(EngineTest, AHundredMegabyteLineGetsAnErrorAndTheEngineStaysUp) {
  start();
  expect_alive();
  const uint64_t before_kb = peak_rss_kb(process_->pid());
  std::string line(100u << 20, 'a');
  line.front() = '{';
  line.back() = '\n';
  std::thread writer([&] { process_->write(line); });
  auto m = rpc_->next(60);
  writer.join();
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["error"]["code"], -32600) << m->dump();
  EXPECT_EQ((*m)["error"]["data"]["limit_bytes"], 16u << 20);
  expect_alive();
  // Its peak memory grew by about the 16 MiB limit, not by the 100 MB line.
  const uint64_t growth_kb = peak_rss_kb(process_->pid()) - before_kb;
  RecordProperty("peak_rss_growth_kb", std::to_string(growth_kb));
  EXPECT_LT(growth_kb, 80u * 1024) << "the engine held the whole line in memory";
}

TEST_F(EngineTest, PartialLineIsReadWhenItsNewlineComes) {
  start();
  rpc_->send_raw(R"({"jsonrpc":"2.0","id":7,)");
  EXPECT_FALSE(process_->read_line(0.3)) << "answered half a line";
  rpc_->send_raw(R"("method":"health"})"
                 "\n");
  auto m = rpc_->next(10);
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["id"], 7);
  EXPECT_TRUE(m->contains("result"));
}

TEST_F(EngineTest, BlankLinesAreIgnored) {
  start();
  rpc_->send_raw("\n  \r\n\n");
  json r = rpc_->call("health");
  EXPECT_EQ(r["id"], 1);  // the first message back is this reply
}

TEST_F(EngineTest, PartialLineAtEndOfInputIsAnsweredThenTheEngineExits) {
  start();
  rpc_->send_raw(R"({"jsonrpc":"2.0","id":8,"method":"health"})");  // no newline
  process_->close_stdin();
  auto m = rpc_->next(10);
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["id"], 8);
  auto status = process_->wait(15);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

// --- shutdown -------------------------------------------------------------------------------

TEST_F(EngineTest, ShutdownRepliesThenExitsZero) {
  start();
  load(golden_dir("qwen3-tiny"));
  json r = rpc_->call("shutdown");
  EXPECT_EQ(r["result"], json::object());
  EXPECT_FALSE(rpc_->next(15)) << "output after shutdown's reply";
  EXPECT_TRUE(process_->eof());
  auto status = process_->wait(15);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST_F(EngineTest, SigtermDrainsRunningStreamsThenExitsZero) {
  start({"--drain-timeout", "30"});
  load(golden_dir("qwen3-tiny"));
  rpc_->send(
      {{"jsonrpc", "2.0"},
       {"id", 1},
       {"method", "generate"},
       {"params",
        {{"request_id", "d"}, {"prompt_ids", {1, 2, 3}}, {"max_tokens", 60}, {"stream", true}}}});
  auto first = rpc_->next(30);  // the stream is running
  ASSERT_TRUE(first && first->value("method", "") == "token")
      << (first ? first->dump() : "nothing");
  process_->signal(SIGTERM);
  // New work is refused while draining; health still answers.
  json refused =
      rpc_->call("generate", {{"request_id", "late"}, {"prompt_ids", {1}}, {"max_tokens", 1}});
  EXPECT_EQ(refused["error"]["code"], -32006) << refused.dump();
  json done = rpc_->response(1, 60);
  EXPECT_EQ(done["result"]["stopped_reason"], "length") << done.dump();
  EXPECT_EQ(done["result"]["completion_tokens"], 60);
  auto status = process_->wait(30);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
}

TEST_F(EngineTest, DrainTimeoutCancelsWhatIsStillRunning) {
  start({"--drain-timeout", "0.05"});  // far shorter than the 4000 tokens take
  load(golden_dir("qwen3-tiny"));
  rpc_->send(
      {{"jsonrpc", "2.0"},
       {"id", 1},
       {"method", "generate"},
       {"params",
        {{"request_id", "d"}, {"prompt_ids", {1, 2, 3}}, {"max_tokens", 4000}, {"stream", true}}}});
  ASSERT_TRUE(rpc_->next(30));
  auto t0 = Clock::now();
  rpc_->send({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "shutdown"}});
  json done = rpc_->response(1, 30);
  EXPECT_EQ(done["result"]["stopped_reason"], "cancelled") << done.dump();
  auto status = process_->wait(15);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_LT(seconds_since(t0), 5.0);
}

TEST_F(EngineTest, EndOfInputStopsTheEngine) {
  start({"--model", golden_dir("qwen3-tiny")});
  EXPECT_TRUE(wait_until([&] { return rpc_->result("health")["status"] == "ok"; }, 60, 0.05));
  process_->close_stdin();
  auto status = process_->wait(15);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST_F(EngineTest, StartModelThatCannotLoadExitsTwo) {
  start({"--model", "/nonexistent/model"});
  auto status = process_->wait(30);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << *status;
  EXPECT_NE(process_->log().find("/nonexistent/model"), std::string::npos) << process_->log();
}

// --- kill -9 in the middle of a stream, then a warm restart from the SSD tier ------------------

TEST_F(EngineTest, KillMidStreamThenRestartRestoresThePromptFromSsd) {
  const std::string cache = scratch_dir("kv");
  const std::vector<std::string> args = {
      "--model", endless_model_for_tests(), "--cache-dir", cache, "--ssd-cache", "256M"};
  start(args);
  std::vector<int32_t> prompt(700);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 37 + 11) % 1000);
  const int64_t full_blocks = (700 - 1) / 32;  // the cache keeps at least one token to compute
  rpc_->send({{"jsonrpc", "2.0"},
              {"id", 1},
              {"method", "generate"},
              {"params",
               {{"request_id", "long"},
                {"prompt_ids", prompt},
                {"max_tokens", 20000},
                {"stream", true}}}});
  auto first = rpc_->next(120);
  ASSERT_TRUE(first && first->value("method", "") == "token")
      << (first ? first->dump() : "nothing");
  // The prompt's blocks reach the SSD tier in the background while tokens stream.
  bool on_ssd = wait_until(
      [&] { return rpc_->result("cache_stats")["ssd"]["blocks"].get<int64_t>() >= full_blocks; },
      30, 0.05);
  ASSERT_TRUE(on_ssd) << rpc_->result("cache_stats").dump();
  for (const auto& m : rpc_->others)
    ASSERT_NE(m.value("id", json()), 1) << "the stream ended before the kill";

  process_->signal(SIGKILL);
  // The client sees the stream end without its final reply: an error, not a hang.
  while (rpc_->next(10)) {
  }
  EXPECT_TRUE(process_->eof());
  auto status = process_->wait(10);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
  for (const auto& m : rpc_->others)
    EXPECT_NE(m.value("id", json()), 1) << "final reply after kill -9";

  // A new engine on the same cache folder: up and serving, and the prompt comes back from SSD.
  rpc_.reset();
  auto t0 = Clock::now();
  start(args);
  ASSERT_TRUE(wait_until([&] { return rpc_->result("health")["status"] == "ok"; }, 60, 0.02));
  double restart_s = seconds_since(t0);
  json again = rpc_->result("generate",
                            {{"request_id", "long2"}, {"prompt_ids", prompt}, {"max_tokens", 4}});
  EXPECT_EQ(again["cached_tokens"], full_blocks * 32) << again.dump();
  json stats = rpc_->result("cache_stats");
  EXPECT_GE(stats["ssd"]["hits"].get<int64_t>(), full_blocks) << stats.dump();
  RecordProperty("restart_to_ready_s", std::to_string(restart_s));
  EXPECT_LT(restart_s, 10.0);
}

}  // namespace
}  // namespace hwledger::testing
