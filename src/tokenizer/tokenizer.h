// hwledger's tokenizer: loads a Hugging Face `tokenizer.json` (byte-level BPE as in GPT-2,
// Llama 3 and Qwen; SentencePiece-style BPE with byte fallback as in Llama 2 and Mistral)
// together with the `tokenizer_config.json` beside it, and encodes and decodes exactly as the
// `tokenizers` library does. See docs/tokenizer.md for what is supported and how.
//
// Thread safety: a loaded Tokenizer is immutable apart from an internally locked cache, so
// any number of threads may call encode()/decode() on one instance at once. Copies are cheap
// and share the loaded data.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hwledger::tokenizer {

namespace detail {
struct TokenizerImpl;
class DecodeState;
}  // namespace detail

// What tokenizer_config.json says (when there is one) about special tokens and chat.
struct TokenizerConfig {
  std::string chat_template;  // the default Jinja chat template; "" when the model has none
  std::map<std::string, std::string> chat_templates;  // named templates (e.g. "tool_use")
  // Token strings ("" when unset; the config may give them as "..." or {"content": "..."})
  // and their ids (-1 when unset or not in the vocabulary).
  std::string bos_token, eos_token, pad_token, unk_token;
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1;
  // Whether encode(text, true) starts with BOS / ends with EOS: the config's add_bos_token /
  // add_eos_token when given, else what tokenizer.json's post-processor does.
  bool add_bos_token = false;
  bool add_eos_token = false;
  bool clean_up_tokenization_spaces = false;  // informational: decode() never cleans up
};

class Tokenizer {
 public:
  // `path` is a model directory holding tokenizer.json (and optionally tokenizer_config.json
  // and chat_template.jinja), or the tokenizer.json file itself. Throws hwledger::InputError
  // naming the file and the problem: missing file, malformed JSON, or an unsupported
  // component ("...: unsupported pre_tokenizer type 'Whitespace'").
  static Tokenizer load(const std::string& path);
  // The same from JSON text; `origin` names the source in error messages.
  static Tokenizer from_json(std::string_view tokenizer_json,
                             std::string_view tokenizer_config_json = {},
                             const std::string& origin = "tokenizer.json");

  // Text to ids. Added tokens in the text (special or not) are split out first and become
  // their own ids; add_special_tokens adds what the post-processor adds (BOS/EOS).
  // Ill-formed UTF-8 in `text` is first replaced by U+FFFD (one per maximal bad subsequence).
  // parse_special = false encodes the text of special tokens as plain text (for untrusted text
  // such as user messages; `tokenizers`' split_special_tokens / encode_special_tokens);
  // non-special added tokens are still split out.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens,
                              bool parse_special = true) const;

  // Ids to text, as `tokenizers` decodes (no clean-up of spaces). Ids outside the vocabulary
  // are skipped, as `tokenizers` does; bytes that do not form UTF-8 become U+FFFD.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  int32_t token_to_id(std::string_view token) const;  // -1 if none
  // The token's string as in the vocabulary (byte-level tokens in the GPT-2 alphabet, e.g.
  // "Ġworld"); throws InputError for an id outside the vocabulary.
  std::string id_to_token(int32_t id) const;
  // Ids are in [0, vocab_size()): model vocabulary plus added tokens.
  size_t vocab_size() const;
  const TokenizerConfig& config() const;
  bool is_special(int32_t id) const;  // a special added token (<|im_end|>, <s>, ...)

 private:
  explicit Tokenizer(std::shared_ptr<const detail::TokenizerImpl> impl);
  std::shared_ptr<const detail::TokenizerImpl> impl_;
  friend class StreamingDetokenizer;
};

// Turns ids arriving one at a time into text that is always whole UTF-8 characters: bytes of
// an unfinished character wait for the next token, and flush() releases what is left (as
// U+FFFD if it never completed). The concatenation of everything push() and flush() return
// equals Tokenizer::decode() of all the ids pushed (same skip_special_tokens), including
// SentencePiece's removal of the leading space.
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  ~StreamingDetokenizer();
  StreamingDetokenizer(StreamingDetokenizer&&) noexcept;
  StreamingDetokenizer& operator=(StreamingDetokenizer&&) noexcept;

  std::string push(int32_t id);
  std::string flush();  // ends the stream; the detokenizer can then start a new one

 private:
  std::shared_ptr<const detail::TokenizerImpl> impl_;
  bool skip_special_tokens_;
  std::unique_ptr<detail::DecodeState> state_;
};

// A small built-in byte-level BPE tokenizer for the demo model (no outside file needed):
// 256 byte tokens, merges learned deterministically from a built-in English and code text,
// and the special tokens <|endoftext|>, <|im_start|>, <|im_end|>; kDemoVocabSize ids in all.
inline constexpr size_t kDemoVocabSize = 1024;
std::string demo_tokenizer_json();
// Its tokenizer_config.json: a ChatML chat template, eos "<|im_end|>", no BOS.
std::string demo_tokenizer_config_json();

}  // namespace hwledger::tokenizer
