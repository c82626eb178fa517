// Decoders of the Hugging Face `tokenizers` pipeline, compiled into a form that decodes one
// token at a time: every step before `Fuse` (and the single-character replacements after it)
// acts on each token alone, so each token id maps to a fixed byte string; what is left acts
// on the whole text's start or end (Strip after Fuse, Metaspace's first-token rule). That is
// what lets the streaming detokenizer produce exactly the full decode.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace hwledger::tokenizer {

class DecoderPipeline {
 public:
  // Builds the decoder described by tokenizer.json's "decoder" value (null: tokens joined by
  // spaces). Throws InputError naming `origin` and the component for anything unsupported.
  static DecoderPipeline from_json(const nlohmann::json& spec, const std::string& origin);

  // The bytes one token contributes; `first` is true for the first token decoded.
  std::string token_bytes(std::string_view token, bool first) const;
  // Whether token_bytes() depends on `first`.
  bool first_token_differs() const { return first_token_differs_; }

  // Whole-text steps: drop up to `count` `content` characters at the start / end.
  struct Strip {
    std::string content;
    size_t count = 0;
  };
  const Strip& strip_start() const { return strip_start_; }
  const Strip& strip_end() const { return strip_end_; }

 private:
  enum class OpKind { kByteLevel, kReplace, kByteFallback, kStrip, kMetaspace, kJoinWithSpace };
  struct Op {
    explicit Op(OpKind k) : kind(k) {}
    OpKind kind;
    std::string from, to;        // kReplace: pattern / content; kStrip, kMetaspace: the character
    size_t start = 0, stop = 0;  // kStrip counts
    bool strip_first = false;    // kMetaspace: the first token loses one leading space
  };
  void add(const nlohmann::json& spec, const std::string& origin);
  void add_token_op(Op op, const std::string& origin, const std::string& type);

  std::vector<Op> ops_;
  bool fused_ = false;
  bool first_token_differs_ = false;
  Strip strip_start_, strip_end_;
};

}  // namespace hwledger::tokenizer
