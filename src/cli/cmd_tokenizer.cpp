// hwledger tokenize / detokenize / verify-tokenizer: the tokenizer from the command line, and
// its check against the transformers.js goldens (../shared/golden/tokenizers/*.json).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

#if __has_include("chat/chat_template.h")
#include "chat/chat_template.h"
#define HWLEDGER_CLI_HAVE_CHAT 1
#endif

namespace hwledger::cli {
namespace {

using nlohmann::ordered_json;
using tokenizer::Tokenizer;

// A model directory, a tokenizer.json, or "demo" for the built-in demo tokenizer.
Tokenizer load_tokenizer(const std::string& model) {
  if (model == "demo" && !std::filesystem::exists(model))
    return Tokenizer::from_json(tokenizer::demo_tokenizer_json(),
                                tokenizer::demo_tokenizer_config_json(), "demo tokenizer");
  return Tokenizer::load(model);
}

// "1,2,3", "[1, 2, 3]" or "1 2 3".
std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string current;
  auto flush = [&] {
    if (current.empty()) return;
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(current, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != current.size() || value < INT32_MIN || value > INT32_MAX)
      fail_input("detokenize: '{}' is not a token id", current);
    ids.push_back(int32_t(value));
    current.clear();
  };
  for (char c : text) {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '[' || c == ']')
      flush();
    else
      current.push_back(c);
  }
  flush();
  return ids;
}

std::string quoted(const std::string& text) {
  // JSON string syntax shows control characters and invalid bytes unambiguously.
  return ordered_json(text).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::string shorten(const std::string& text, size_t limit = 60) {
  if (text.size() <= limit) return text;
  size_t cut = limit;
  while (cut > 0 && (uint8_t(text[cut]) & 0xC0) == 0x80) --cut;  // whole characters only
  return text.substr(0, cut) + "...";
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  return out;
}

// "" when equal, else where and how they differ.
std::string compare_ids(const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
  if (got == want) return "";
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  std::string got_at = i < got.size() ? std::to_string(got[i]) : "end";
  std::string want_at = i < want.size() ? std::to_string(want[i]) : "end";
  return fmt::format("differ at position {} (got {}, want {}; {} vs {} ids)", i, got_at, want_at,
                     got.size(), want.size());
}

std::string compare_text(const std::string& got, const std::string& want) {
  if (got == want) return "";
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return fmt::format("differ at byte {}: got {} want {}", i, quoted(shorten(got.substr(i), 30)),
                     quoted(shorten(want.substr(i), 30)));
}

ordered_json read_golden(const std::string& path) {
  std::ifstream file(path);
  if (!file) fail_input("verify-tokenizer: cannot read golden file '{}'", path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  try {
    return ordered_json::parse(buffer.str());
  } catch (const ordered_json::parse_error& e) {
    fail_input("verify-tokenizer: '{}': malformed JSON: {}", path, e.what());
  }
}

struct Tally {
  int passed = 0, failed = 0, skipped = 0;
};

void verify_texts(const Tokenizer& tok, const ordered_json& golden, Tally& tally) {
  const auto& texts = golden.value("texts", ordered_json::array());
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& c = texts[i];
    std::string text = c.at("text").get<std::string>();
    std::vector<std::string> problems;
    if (c.contains("ids")) {
      std::string diff = compare_ids(tok.encode(text, false), c["ids"].get<std::vector<int32_t>>());
      if (!diff.empty()) problems.push_back("ids " + diff);
    }
    if (c.contains("ids_with_special_tokens")) {
      std::string diff = compare_ids(tok.encode(text, true),
                                     c["ids_with_special_tokens"].get<std::vector<int32_t>>());
      if (!diff.empty()) problems.push_back("ids_with_special_tokens " + diff);
    }
    if (c.contains("decoded") && c.contains("ids")) {
      std::string diff = compare_text(tok.decode(c["ids"].get<std::vector<int32_t>>()),
                                      c["decoded"].get<std::string>());
      if (!diff.empty()) problems.push_back("decoded " + diff);
    }
    std::string label = fmt::format("text[{:2}] {}", i, quoted(shorten(text)));
    if (problems.empty()) {
      std::printf("ok   %s\n", label.c_str());
      ++tally.passed;
    } else {
      for (const auto& p : problems) std::printf("FAIL %s: %s\n", label.c_str(), p.c_str());
      ++tally.failed;
    }
  }
}

void verify_chats(const Tokenizer& tok, const ordered_json& golden, Tally& tally) {
  const auto& chats = golden.value("chats", ordered_json::array());
  if (chats.empty()) return;
#ifdef HWLEDGER_CLI_HAVE_CHAT
  std::unique_ptr<chat::ChatTemplate> chat_template;
  std::string template_error;
  try {
    chat_template = std::make_unique<chat::ChatTemplate>(tok.config().chat_template);
  } catch (const InputError& e) {
    template_error = e.what();
  }
  for (size_t i = 0; i < chats.size(); ++i) {
    const auto& c = chats[i];
    std::string label = fmt::format("chat[{}] ({} messages{})", i, c["messages"].size(),
                                    c.contains("tools") ? ", tools" : "");
    bool expect_error = c.contains("error") && !c["error"].is_null();
    std::string rendered, error;
    if (!chat_template) {
      error = template_error;
    } else {
      try {
        rendered = chat::render_chat_ordered(
            *chat_template, c.at("messages"), c.value("tools", ordered_json()),
            c.value("add_generation_prompt", false), tok.config().bos_token, tok.config().eos_token,
            c.value("extra", ordered_json()));
      } catch (const InputError& e) {
        error = e.what();
      }
    }
    std::vector<std::string> problems;
    if (expect_error) {
      if (error.empty())
        problems.push_back("expected the template to fail (" + c["error"].get<std::string>() +
                           ") but it rendered");
    } else if (!error.empty()) {
      problems.push_back("render failed: " + error);
    } else {
      std::string diff = compare_text(rendered, c.at("rendered").get<std::string>());
      if (!diff.empty()) problems.push_back("rendered " + diff);
      // The rendering is encoded without adding special tokens (the markers in it are still
      // split out), as transformers does with tokenize=False then encode.
      diff = compare_ids(tok.encode(rendered, false), c.at("ids").get<std::vector<int32_t>>());
      if (!diff.empty()) problems.push_back("ids " + diff);
    }
    if (problems.empty()) {
      std::printf("ok   %s\n", label.c_str());
      ++tally.passed;
    } else {
      for (const auto& p : problems) std::printf("FAIL %s: %s\n", label.c_str(), p.c_str());
      ++tally.failed;
    }
  }
#else
  (void)tok;
  for (size_t i = 0; i < chats.size(); ++i) {
    std::printf("skip chat[%zu]: built without the chat-template renderer (hw_chat)\n", i);
    ++tally.skipped;
  }
#endif
}

}  // namespace

void add_tokenizer_commands(CLI::App& app) {
  {
    auto* cmd = app.add_subcommand("tokenize", "print the token ids of a text");
    auto model = std::make_shared<std::string>("demo");
    auto text = std::make_shared<std::string>();
    auto no_special = std::make_shared<bool>(false);
    auto verbose = std::make_shared<bool>(false);
    cmd->add_option("--model", *model, "model directory, tokenizer.json, or demo (default)");
    cmd->add_flag("--no-special", *no_special,
                  "do not add BOS/EOS (added tokens in the text are still split out)");
    cmd->add_flag("--verbose,-v", *verbose, "one line per token: id and token string");
    cmd->add_option("text", *text, "the text")->required();
    cmd->callback([=] {
      Tokenizer tok = load_tokenizer(*model);
      auto ids = tok.encode(*text, !*no_special);
      if (!*verbose) {
        std::printf("%s\n", join_ids(ids).c_str());
        return;
      }
      for (int32_t id : ids) {
        std::printf("%8d  %s%s\n", id, quoted(tok.id_to_token(id)).c_str(),
                    tok.is_special(id) ? "  (special)" : "");
      }
      std::printf("%zu tokens\n", ids.size());
    });
  }
  {
    auto* cmd = app.add_subcommand("detokenize", "print the text of token ids");
    auto model = std::make_shared<std::string>("demo");
    auto ids_text = std::make_shared<std::vector<std::string>>();
    auto skip_special = std::make_shared<bool>(false);
    cmd->add_option("--model", *model, "model directory, tokenizer.json, or demo (default)");
    cmd->add_flag("--skip-special", *skip_special, "leave out special tokens");
    cmd->add_option("ids", *ids_text, "ids: 1,2,3 or \"[1, 2, 3]\" or 1 2 3")->required();
    cmd->callback([=] {
      Tokenizer tok = load_tokenizer(*model);
      std::string all;
      for (const auto& part : *ids_text) all += part + ",";
      std::string text = tok.decode(parse_ids(all), *skip_special);
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::printf("\n");
    });
  }
  {
    auto* cmd = app.add_subcommand("verify-tokenizer",
                                   "check encode, decode and chat templates against a golden file");
    auto model = std::make_shared<std::string>();
    auto golden_path = std::make_shared<std::string>();
    cmd->add_option("--model", *model, "model directory with tokenizer.json")->required();
    cmd->add_option("--golden", *golden_path, "golden file (../shared/golden/tokenizers/*.json)")
        ->required();
    cmd->callback([=] {
      Tokenizer tok = load_tokenizer(*model);
      ordered_json golden = read_golden(*golden_path);
      if (!golden.is_object() || !golden.contains("texts"))
        fail_input("verify-tokenizer: '{}' has no 'texts'", *golden_path);
      Tally tally;
      try {
        verify_texts(tok, golden, tally);
        verify_chats(tok, golden, tally);
      } catch (const nlohmann::json::exception& e) {
        fail_input("verify-tokenizer: '{}': unexpected content: {}", *golden_path, e.what());
      }
      std::printf("verify-tokenizer: %d passed, %d failed, %d skipped (%s against %s)\n",
                  tally.passed, tally.failed, tally.skipped, model->c_str(), golden_path->c_str());
      exit_code() = tally.failed > 0 || tally.skipped > 0 ? 1 : 0;
    });
  }
}

}  // namespace hwledger::cli
