// `hwledger bench agent-loop`: the agent loop replayed deterministically. A shared prefix
// (system prompt and tools) and several interleaved sessions whose transcripts grow each turn;
// every turn is a full prompt = prefix + that session's history + new tokens, generating a few
// tokens greedily. Run once per cache mode, with identical token content.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"

namespace hwledger {

// off: no prefix reuse. ram: a RAM tier that holds everything. ram+ssd: a small RAM tier over
// the SSD tier. ssd-cold: the engine's cache restarted before every turn (working memory and
// RAM empty, the SSD index rebuilt, the files out of the page cache). ram-cold: working memory
// emptied into the RAM tier before every turn, so prefixes come back from RAM.
enum class AgentLoopMode { Off, Ram, RamSsd, SsdCold, RamCold };
const char* agent_loop_mode_name(
    AgentLoopMode m);  // "off", "ram", "ram+ssd", "ssd-cold", "ram-cold"
AgentLoopMode parse_agent_loop_mode(const std::string& s);

struct AgentLoopOptions {
  std::string model_dir;
  EngineOptions engine;  // threads, KV dtype, context; cache fields are set per mode
  int64_t prefix_tokens = 8192;
  int64_t sessions = 4;
  int64_t turns = 8;
  int64_t append_tokens = 256;
  int64_t gen_tokens = 32;
  int64_t prefill_chunk = 0;  // tokens per prefill forward; 0: 512 on the CPU, 8192 on a GPU
  uint64_t seed = 0;
  uint64_t ram_cache_bytes = 0;  // 0: a quarter of one session's KV, so that RAM spills to SSD
  uint64_t ssd_cache_bytes = 64ull << 30;
  std::string cache_dir;  // SSD tier folder (emptied first); default: a temp folder
  std::vector<AgentLoopMode> modes = {AgentLoopMode::Off, AgentLoopMode::Ram, AgentLoopMode::RamSsd,
                                      AgentLoopMode::SsdCold};
};

struct AgentTurn {
  int64_t session = 0, turn = 0;
  int64_t prompt_tokens = 0, computed_tokens = 0, restored_tokens = 0;
  int64_t recomputed_tokens =
      0;  // of computed_tokens: cached on SSD, computed while the rest was read
  int64_t restored_blocks[3] = {0, 0, 0};  // working, ram, ssd
  uint64_t restore_bytes = 0;
  double restore_seconds = 0, ttft_seconds = 0, decode_tok_s = 0;
  std::vector<int32_t> generated;
};

struct AgentLoopRun {
  AgentLoopMode mode;
  std::vector<AgentTurn> turns;
  double ttft_p50 = 0, ttft_p95 = 0, decode_tok_s_p50 = 0;
  double restore_gbps = 0;  // total restore bytes / total restore time
  nlohmann::json cache_stats;
};

struct AgentLoopReport {
  AgentLoopOptions options;
  std::vector<AgentLoopRun> runs;
  bool outputs_identical = true;  // every mode generated the same tokens
  nlohmann::json to_json() const;
  std::string to_text() const;
  std::string to_svg() const;  // TTFT per turn, one line per mode
};

AgentLoopReport run_agent_loop(const AgentLoopOptions& opts);

// Evicts a folder's files from the OS page cache (posix_fadvise DONTNEED; works unprivileged).
void drop_page_cache(const std::string& dir);

}  // namespace hwledger
