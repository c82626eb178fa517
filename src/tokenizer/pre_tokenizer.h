// Pre-tokenizers of the Hugging Face `tokenizers` pipeline: they cut a normalized piece of text
// into pre-tokens (words), each of which the model then encodes on its own.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace hwledger::tokenizer {

// The pre-tokens of one piece: spans [begin, end) of `text`. Steps that rewrite a pre-token
// append the new bytes to `text`, so earlier spans stay valid.
struct PreTokens {
  std::string text;
  std::vector<std::pair<uint32_t, uint32_t>> spans;
  std::vector<std::pair<uint32_t, uint32_t>> scratch;  // reused by the steps

  void reset(std::string_view piece) {
    text.assign(piece);
    spans.clear();
    if (!piece.empty()) spans.emplace_back(0, uint32_t(piece.size()));
  }
  std::string_view view(std::pair<uint32_t, uint32_t> span) const {
    return std::string_view(text).substr(span.first, span.second - span.first);
  }
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // `first_piece`: the piece starts the input (Metaspace's prepend_scheme "first").
  virtual void apply(PreTokens& tokens, bool first_piece) const = 0;
};

struct PreTokenizerSpec {
  std::unique_ptr<PreTokenizer> pre_tokenizer;  // nullptr: the whole piece is one pre-token
  // A ByteLevel step ends the chain: pre-tokens are raw bytes and the model's vocabulary is
  // written in the GPT-2 byte alphabet. (The byte-to-character mapping itself is folded into
  // the model, which looks raw bytes up directly.)
  bool byte_level = false;
};

// Builds the pre-tokenizer described by tokenizer.json's "pre_tokenizer" value. Throws
// InputError naming `origin` and the component for anything unsupported.
PreTokenizerSpec make_pre_tokenizer(const nlohmann::json& spec, const std::string& origin);

// The GPT-2 pattern ByteLevel uses when its use_regex is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace hwledger::tokenizer
