// generate's params: every field checked, with the field named in the error.
#include <gtest/gtest.h>

#include "rpc/generate_params.h"

namespace hwledger::rpc {
namespace {

json base() {
  return json::parse(R"({"request_id":"r1","prompt":"hi","max_tokens":8})");
}

std::string bad_field(json params) {
  try {
    parse_generate_params(params);
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), kInvalidParams);
    return e.data().value("field", "");
  }
  ADD_FAILURE() << "accepted: " << params.dump();
  return "";
}

TEST(GenerateParams, ReadsEveryField) {
  json p = json::parse(R"({"request_id":"r1","prompt_ids":[1,2,3],"max_tokens":16,"temperature":0.7,
      "top_p":0.9,"top_k":40,"min_p":0.05,"seed":123,"stop":["\n\n","END"],"stream":true})");
  GenerateParams g = parse_generate_params(p);
  EXPECT_EQ(g.request_id, "r1");
  EXPECT_EQ(g.kind, GenerateParams::PromptKind::Ids);
  EXPECT_EQ(g.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(g.max_tokens, 16);
  EXPECT_FLOAT_EQ(g.sampling.temperature, 0.7f);
  EXPECT_FLOAT_EQ(g.sampling.top_p, 0.9f);
  EXPECT_EQ(g.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(g.sampling.min_p, 0.05f);
  EXPECT_EQ(g.sampling.seed, 123u);
  EXPECT_EQ(g.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_TRUE(g.stream);
}

TEST(GenerateParams, DefaultsAreGreedyAndNotStreaming) {
  GenerateParams g = parse_generate_params(base());
  EXPECT_EQ(g.kind, GenerateParams::PromptKind::Text);
  EXPECT_EQ(g.prompt, "hi");
  EXPECT_EQ(g.sampling.temperature, 0.0f);
  EXPECT_FALSE(g.sampling.seed);
  EXPECT_FALSE(g.stream);
  json p = base();
  p["stop"] = "###";
  EXPECT_EQ(parse_generate_params(p).stop, (std::vector<std::string>{"###"}));
}

TEST(GenerateParams, Messages) {
  json p =
      json::parse(R"({"request_id":"r","messages":[{"role":"user","content":"hi"}],"max_tokens":4,
      "tools":[{"type":"function","function":{"name":"f"}}]})");
  GenerateParams g = parse_generate_params(p);
  EXPECT_EQ(g.kind, GenerateParams::PromptKind::Messages);
  EXPECT_EQ(g.messages.size(), 1u);
  EXPECT_EQ(g.tools.size(), 1u);
}

TEST(GenerateParams, ExactlyOnePromptForm) {
  json p = base();
  p.erase("prompt");
  EXPECT_EQ(bad_field(p), "prompt");
  p = base();
  p["prompt_ids"] = {1};
  EXPECT_EQ(bad_field(p), "prompt");
}

TEST(GenerateParams, WrongTypesAndRangesNameTheField) {
  auto with = [](const char* key, json value) {
    json p = base();
    p[key] = std::move(value);
    return p;
  };
  EXPECT_EQ(bad_field(with("request_id", 5)), "request_id");
  EXPECT_EQ(bad_field(with("request_id", "")), "request_id");
  EXPECT_EQ(bad_field(with("request_id", std::string(300, 'x'))), "request_id");
  EXPECT_EQ(bad_field(with("prompt", json::array())), "prompt");
  EXPECT_EQ(bad_field(with("max_tokens", "ten")), "max_tokens");
  EXPECT_EQ(bad_field(with("max_tokens", 0)), "max_tokens");
  EXPECT_EQ(bad_field(with("max_tokens", 1.5)), "max_tokens");
  EXPECT_EQ(bad_field(with("temperature", -0.1)), "temperature");
  EXPECT_EQ(bad_field(with("temperature", "hot")), "temperature");
  EXPECT_EQ(bad_field(with("top_p", 0)), "top_p");
  EXPECT_EQ(bad_field(with("top_p", 1.5)), "top_p");
  EXPECT_EQ(bad_field(with("top_k", -1)), "top_k");
  EXPECT_EQ(bad_field(with("min_p", 2)), "min_p");
  EXPECT_EQ(bad_field(with("seed", -1)), "seed");
  EXPECT_EQ(bad_field(with("seed", 1.5)), "seed");
  EXPECT_EQ(bad_field(with("stream", "yes")), "stream");
  EXPECT_EQ(bad_field(with("stop", 5)), "stop");
  EXPECT_EQ(bad_field(with("stop", json::array({"a", 1}))), "stop[1]");
  EXPECT_EQ(bad_field(with("stop", json::array({""}))), "stop[0]");
  EXPECT_EQ(bad_field(with("stop", json(std::vector<std::string>(17, "x")))), "stop");

  json p = base();
  p.erase("max_tokens");
  EXPECT_EQ(bad_field(p), "max_tokens");
}

TEST(GenerateParams, PromptIdsAreNonNegativeInt32s) {
  auto ids = [](json v) {
    json p = base();
    p.erase("prompt");
    p["prompt_ids"] = std::move(v);
    return p;
  };
  EXPECT_EQ(bad_field(ids(json::array())), "prompt_ids");
  EXPECT_EQ(bad_field(ids("1 2 3")), "prompt_ids");
  EXPECT_EQ(bad_field(ids(json::array({1, "x"}))), "prompt_ids[1]");
  EXPECT_EQ(bad_field(ids(json::array({1, -5}))), "prompt_ids[1]");
  EXPECT_EQ(bad_field(ids(json::array({1, 2.5}))), "prompt_ids[1]");
  EXPECT_EQ(bad_field(ids(json::array({uint64_t{1} << 31}))), "prompt_ids[0]");
  EXPECT_EQ(parse_generate_params(ids(json::array({0, 2147483647}))).prompt_ids.back(), 2147483647);
}

TEST(GenerateParams, MessagesAreArraysOfObjectsWithARole) {
  auto msgs = [](json v) {
    json p = base();
    p.erase("prompt");
    p["messages"] = std::move(v);
    return p;
  };
  EXPECT_EQ(bad_field(msgs("hi")), "messages");
  EXPECT_EQ(bad_field(msgs(json::array())), "messages");
  EXPECT_EQ(bad_field(msgs(json::array({"hi"}))), "messages[0]");
  EXPECT_EQ(bad_field(msgs(json::parse(R"([{"role":"user"},{"content":"x"}])"))),
            "messages[1].role");
  json p = msgs(json::parse(R"([{"role":"user","content":"x"}])"));
  p["tools"] = "f";
  EXPECT_EQ(bad_field(p), "tools");
}

}  // namespace
}  // namespace hwledger::rpc
