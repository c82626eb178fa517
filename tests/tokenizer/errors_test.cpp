// Bad input gives hwledger::InputError with a message that names the file and the problem.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_support.h"
#include "util/error.h"

namespace hwledger::tokenizer {
namespace {

using nlohmann::json;

// A tiny valid byte-level tokenizer to break in various ways.
json small_tokenizer() {
  json vocab = json::object();
  vocab["a"] = 0;
  vocab["b"] = 1;
  vocab["ab"] = 2;
  return {{"version", "1.0"},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}}}};
}

std::string load_error(const std::string& tokenizer_json, const std::string& config = "") {
  try {
    Tokenizer::from_json(tokenizer_json, config, "test/tokenizer.json");
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not an InputError: ") + e.what();
  }
  return "no error";
}

void expect_error(const json& doc, const std::string& needle) {
  std::string message = load_error(doc.dump());
  EXPECT_NE(message.find(needle), std::string::npos) << "message: " << message;
  EXPECT_NE(message.find("test/tokenizer.json"), std::string::npos) << "message: " << message;
}

TEST(LoadErrors, SmallTokenizerIsValid) {
  Tokenizer tok = Tokenizer::from_json(small_tokenizer().dump());
  EXPECT_EQ(tok.encode("ab", false), std::vector<int32_t>{2});
}

TEST(LoadErrors, UnsupportedComponentsAreNamed) {
  json doc = small_tokenizer();
  doc["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error(doc, "unsupported pre_tokenizer type 'Whitespace'");

  doc = small_tokenizer();
  doc["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}};
  expect_error(doc, "unsupported normalizer type 'Lowercase'");

  doc = small_tokenizer();
  doc["decoder"] = {{"type", "WordPiece"}};
  expect_error(doc, "unsupported decoder type 'WordPiece'");

  doc = small_tokenizer();
  doc["post_processor"] = {{"type", "Magic"}};
  expect_error(doc, "unsupported post_processor type 'Magic'");

  doc = small_tokenizer();
  doc["model"]["type"] = "Unigram";
  expect_error(doc, "unsupported model type 'Unigram'");

  doc = small_tokenizer();
  doc["model"]["dropout"] = 0.1;
  expect_error(doc, "unsupported BPE dropout");

  doc = small_tokenizer();
  doc["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "\\p{L"}}}, {"behavior", "Isolated"}};
  expect_error(doc, "bad regex '\\p{L'");

  doc = small_tokenizer();
  doc["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "x"}}}, {"behavior", "Sideways"}};
  expect_error(doc, "unsupported Split behavior 'Sideways'");
}

TEST(LoadErrors, BadVocabularyAndMerges) {
  json doc = small_tokenizer();
  doc["model"]["merges"] = {"a c"};
  expect_error(doc, "model.merges[0] ('a' 'c'): token 'c' is not in the vocabulary");

  doc = small_tokenizer();
  doc["model"]["merges"] = {"ab"};
  expect_error(doc, "model.merges[0] 'ab' is not two tokens");

  doc = small_tokenizer();
  doc["model"]["merges"] = {{"a", "b", "c"}};
  expect_error(doc, "model.merges[0]");

  doc = small_tokenizer();
  doc["model"]["vocab"]["c"] = "three";
  expect_error(doc, "model.vocab['c'] must be an integer id");

  doc = small_tokenizer();
  doc["model"]["vocab"]["c"] = -3;
  expect_error(doc, "model.vocab['c'] has id -3");

  doc = small_tokenizer();
  doc["model"].erase("vocab");
  expect_error(doc, "model.vocab is missing");

  doc = small_tokenizer();
  doc["added_tokens"] = {{{"content", "<x>"}}};
  expect_error(doc, "added_tokens[0] needs an integer 'id'");
}

TEST(LoadErrors, MalformedJson) {
  std::string text = small_tokenizer().dump();
  EXPECT_NE(load_error(text.substr(0, text.size() / 2)).find("test/tokenizer.json: malformed JSON"),
            std::string::npos);
  EXPECT_NE(load_error("[1, 2]").find("must be a JSON object"), std::string::npos);
  EXPECT_NE(load_error("{}").find("has no 'model'"), std::string::npos);
  EXPECT_NE(load_error("").find("malformed JSON"), std::string::npos);
  // tokenizer_config.json is checked too.
  std::string config_error = load_error(text, "{\"eos_token\": ");
  EXPECT_NE(config_error.find("tokenizer_config.json"), std::string::npos) << config_error;
  EXPECT_NE(config_error.find("malformed JSON"), std::string::npos) << config_error;
  config_error = load_error(text, "{\"eos_token\": 5}");
  EXPECT_NE(config_error.find("'eos_token' must be a string"), std::string::npos) << config_error;
}

TEST(LoadErrors, MissingFileNamesThePath) {
  try {
    Tokenizer::load("/nonexistent/model-dir");
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'/nonexistent/model-dir' does not exist"),
              std::string::npos)
        << e.what();
  }
  // A directory without tokenizer.json.
  auto dir = std::filesystem::temp_directory_path() / "hwledger_tok_empty_dir";
  std::filesystem::create_directories(dir);
  EXPECT_THROW(Tokenizer::load(dir.string()), InputError);
  // A file that is there but broken.
  std::ofstream(dir / "tokenizer.json") << "{\"model\": ";
  try {
    Tokenizer::load(dir.string());
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("malformed JSON"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(LoadErrors, ConfigTokensAsObjectsOrStrings) {
  std::string text = small_tokenizer().dump();
  Tokenizer tok = Tokenizer::from_json(
      text, R"({"bos_token": {"content": "a", "lstrip": false}, "eos_token": "b",
               "chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}],
               "add_bos_token": true})");
  EXPECT_EQ(tok.config().bos_token, "a");
  EXPECT_EQ(tok.config().bos_id, 0);
  EXPECT_EQ(tok.config().eos_id, 1);
  EXPECT_EQ(tok.config().chat_template, "D");
  EXPECT_EQ(tok.config().chat_templates.at("tool_use"), "T");
  EXPECT_TRUE(tok.config().add_bos_token);
}

}  // namespace
}  // namespace hwledger::tokenizer
