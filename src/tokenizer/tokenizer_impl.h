// Internals shared by tokenizer.cpp and streaming.cpp; not part of the public API.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/flat_map.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace hwledger::tokenizer::detail {

struct TokenizerImpl {
  std::string origin;  // file name for messages
  std::unique_ptr<Normalizer> normalizer;
  PreTokenizerSpec pre;
  std::unique_ptr<BpeModel> model;
  AddedVocabulary added;
  PostProcessor post;
  DecoderPipeline decoder;
  TokenizerConfig config;

  size_t vocab_size = 0;             // model ids and added ids are all below this
  std::vector<int32_t> added_index;  // [vocab_size] index into added.tokens(), or -1
  std::vector<uint8_t> special;      // [vocab_size] 1 for special added tokens
  StringIdTable added_ids;           // added token content -> id
  // What each id decodes to (not as the first token): bytes of id i are
  // decoded_bytes[decoded_offsets[i] .. decoded_offsets[i + 1]).
  std::string decoded_bytes;
  std::vector<uint32_t> decoded_offsets;  // [vocab_size + 1]

  bool known(int32_t id) const {
    return id >= 0 && size_t(id) < vocab_size &&
           (added_index[size_t(id)] >= 0 || model->has_id(id));
  }
  bool is_special(int32_t id) const {
    return id >= 0 && size_t(id) < vocab_size && special[size_t(id)] != 0;
  }
  // Precondition: known(id).
  const std::string& token_string(int32_t id) const {
    int32_t index = added_index[size_t(id)];
    return index >= 0 ? added.tokens()[size_t(index)].content : model->token(id);
  }
  std::string_view token_bytes(int32_t id) const {
    return std::string_view(decoded_bytes)
        .substr(decoded_offsets[size_t(id)],
                decoded_offsets[size_t(id) + 1] - decoded_offsets[size_t(id)]);
  }

  void encode(std::string_view text, bool add_special_tokens, bool parse_special,
              std::vector<int32_t>& out) const;
};

// Decoding as a stream; Tokenizer::decode() is this fed with all ids, so the two agree.
class DecodeState {
 public:
  DecodeState(const TokenizerImpl& impl, bool skip_special_tokens)
      : impl_(&impl), skip_special_tokens_(skip_special_tokens) {
    leading_left_ = impl.decoder.strip_start().count;
  }
  void push(int32_t id, std::string& out);
  void finish(std::string& out);

 private:
  void emit(std::string_view chars, std::string& out);

  const TokenizerImpl* impl_;
  bool skip_special_tokens_;
  bool first_token_ = true;
  size_t leading_left_ = 0;  // leading strip characters that may still be dropped
  std::string held_;         // trailing strip characters held back until something follows
  utf8::StreamDecoder utf8_;
  std::string chars_;
};

}  // namespace hwledger::tokenizer::detail
