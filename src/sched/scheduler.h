// The scheduler: continuous batching over one Engine. Requests join and leave the running batch
// between forward steps; long prompts are prefilled in chunks interleaved with the other
// sequences' decode steps. Front ends (HTTP server, JSON-RPC sidecar, benchmarks) submit
// requests and receive tokens through a RequestSink, on the scheduler's thread.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace hwledger {

struct SamplingParams {
  float temperature = 0.0f;        // 0: greedy (argmax)
  int32_t top_k = 0;               // 0: off
  float top_p = 1.0f;              // 1: off
  float min_p = 0.0f;              // 0: off
  float repetition_penalty = 1.0f; // 1: off (HF semantics: divide positive logits, multiply negative)
  float presence_penalty = 0.0f;   // OpenAI semantics, over generated tokens
  float frequency_penalty = 0.0f;
  std::optional<uint64_t> seed;    // same seed + same request = same tokens
  int32_t top_logprobs = -1;       // -1: no logprobs; 0..20: the chosen token's logprob and this many alternatives
};

struct GenerateRequest {
  std::string id;                      // unique among live requests (cancel uses it); free
                                       // again once on_done was called; "" = not cancellable
  std::vector<int32_t> prompt;         // token ids, already templated and encoded
  int64_t max_tokens = 256;
  SamplingParams sampling;
  std::vector<int32_t> stop_token_ids; // EOS ids: generation ends with reason "eos", token not emitted
  std::string cache_salt;              // isolates this request's prefix-cache entries
  // Masks a logits row before sampling (-inf: the token may not come next), given the tokens
  // generated so far; on the scheduler thread, must be quick and must not throw. Empty: none.
  // (The HTTP server uses it to keep a forced tool call's name among the offered tools.)
  std::function<void(float* logits, int64_t vocab_size, std::span<const int32_t> generated)>
      constrain;
};

struct TokenEvent {
  int32_t token = 0;
  int64_t index = 0;                   // 0 for the first generated token
  float logprob = 0;                   // log-softmax of the chosen token (when asked)
  std::vector<std::pair<int32_t, float>> top_logprobs;  // best alternatives, best first
};

enum class StopReason { Eos, Length, Stop, Cancelled, Error };
const char* stop_reason_name(StopReason r);  // "eos", "length", "stop", "cancelled", "error"

struct GenerateResult {
  std::string id;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;           // prompt tokens restored from the KV cache, not computed
  int64_t completion_tokens = 0;       // tokens sampled, an EOS included (it is not emitted)
  StopReason reason = StopReason::Length;
  std::string error;                   // for StopReason::Error
  double queue_seconds = 0, ttft_seconds = 0, total_seconds = 0;
};

// Receives a request's events on the scheduler thread; must not block for long.
class RequestSink {
 public:
  virtual ~RequestSink() = default;
  // A chunk of the prompt was prefilled (done of total tokens): for keep-alive pings.
  virtual void on_prefill_progress(int64_t done, int64_t total) {}
  // A new token. Return false to end the request now with StopReason::Stop (the front end
  // matched a stop string); the token is counted but the sink decides what text it emits.
  virtual bool on_token(const TokenEvent& event) = 0;
  // Always called exactly once, last.
  virtual void on_done(const GenerateResult& result) = 0;
};

struct SchedulerOptions {
  int64_t max_running = 32;        // sequences decoding at once
  int64_t max_queue = 64;          // waiting requests beyond which submit() refuses
  int64_t prefill_chunk = 256;     // prompt tokens per step while others decode
};

struct SchedulerStats {
  int64_t queued = 0, running = 0;
  int64_t requests_total = 0, requests_rejected = 0;
  int64_t prompt_tokens_total = 0, cached_tokens_total = 0, generated_tokens_total = 0;
  int64_t steps_total = 0;  // forward passes run (one per step, for the whole batch)
};

class Scheduler {
 public:
  Scheduler(Engine& engine, const SchedulerOptions& opts);
  ~Scheduler();  // stops the loop; unfinished requests end with StopReason::Cancelled

  // Queues a request. Returns false (and calls nothing on the sink) when the queue is full or
  // the scheduler is draining / shutting down.
  // Invalid requests (empty prompt, prompt + max_tokens beyond the context or beyond the whole
  // KV cache, ids outside the vocabulary, sampling settings out of range, an id already live)
  // end at once with StopReason::Error and a message: on_done runs on the caller's thread
  // before submit returns true. Every other event comes on the scheduler thread.
  bool submit(GenerateRequest request, std::shared_ptr<RequestSink> sink);
  // Cancels a queued or running request: it ends with StopReason::Cancelled and its KV blocks
  // are freed before the next step. Returns false for an unknown id.
  bool cancel(const std::string& id);
  // Stops admitting new requests (submit returns false from now on); returns when every
  // accepted request has finished - queued ones still run - or the deadline passed (then the
  // rest are cancelled and drain returns once their on_done ran).
  void drain(double timeout_seconds);

  SchedulerStats stats() const;
  Engine& engine() { return engine_; }

 private:
  struct Impl;
  Engine& engine_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hwledger
