// Post-processors: the special tokens that encode(text, add_special_tokens=true) puts around
// the ids (BOS/EOS). Only single sequences are encoded, so every supported processor reduces
// to fixed ids before and after the text's ids.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace hwledger::tokenizer {

class PostProcessor {
 public:
  // Accepts TemplateProcessing,
  // ByteLevel (which only trims offsets: no ids), RobertaProcessing, BertProcessing and
  // Sequence; throws InputError naming `origin` for anything else.
  static PostProcessor from_json(const nlohmann::json& spec, const std::string& origin);

  void apply(std::vector<int32_t>& ids) const;
  const std::vector<int32_t>& prefix() const { return prefix_; }
  const std::vector<int32_t>& suffix() const { return suffix_; }

 private:
  void add(const nlohmann::json& spec, const std::string& origin);
  std::vector<int32_t> prefix_, suffix_;
};

}  // namespace hwledger::tokenizer
