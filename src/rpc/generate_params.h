// The params of `generate`, checked field by field before anything reaches the engine.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "rpc/jsonrpc.h"
#include "sched/scheduler.h"

namespace hwledger::rpc {

struct GenerateParams {
  enum class PromptKind { Text, Messages, Ids };

  std::string request_id;  // the caller's id for cancel and the notifications
  PromptKind kind = PromptKind::Text;
  std::string prompt;  // kind Text: encoded with the tokenizer's special tokens
  json messages;       // kind Messages: rendered with the chat template
  json tools;          // (added) OpenAI function tools for the template, or null
  // The same two in the client's key order (filled by the caller from the raw line).
  nlohmann::ordered_json ordered_messages, ordered_tools;
  std::vector<int32_t> prompt_ids;  // kind Ids: used as given
  int64_t max_tokens = 0;
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings: the text ends before the first match
  bool stream = false;            // send `token` notifications
};

inline constexpr size_t kMaxStopStrings = 16;
inline constexpr size_t kMaxStopBytes = 1024;
inline constexpr int64_t kMaxGenerateTokens = int64_t{1} << 20;

// Throws RpcError (-32602, data {field, reason}) for a missing, mistyped or out-of-range field.
// Exactly one of prompt, messages and prompt_ids must be given.
GenerateParams parse_generate_params(const json& params);

}  // namespace hwledger::rpc
