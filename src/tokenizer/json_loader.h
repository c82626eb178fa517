// Reads tokenizer.json in one streaming (SAX) pass. The model's vocabulary and merges (about
// 150k entries each in current models) go straight into flat lists; only the rest, which is
// small, is built as a JSON tree. That halves the load time compared with parsing it all
// into a tree first.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hwledger::tokenizer {

struct TokenizerJson {
  nlohmann::json doc;  // everything but model.vocab and model.merges
  bool has_vocab = false;
  bool has_merges = false;
  std::vector<std::pair<std::string, int32_t>> vocab;       // in file order
  std::vector<std::pair<std::string, std::string>> merges;  // in file order
};

// Throws InputError naming `origin`: malformed JSON, or a vocab/merges entry of the wrong shape.
TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& origin);

}  // namespace hwledger::tokenizer
