// One generation as the HTTP side sees it: the RequestSink the scheduler calls (on its own
// thread) and a small queue that hands the events to the connection's thread.
//
// Text is produced on the scheduler thread (detokenization and stop strings, through
// sched/text_stream.h) because a matched stop string must stop the request there (on_token
// returns false); everything protocol-specific happens on the connection thread.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sched/scheduler.h"
#include "sched/text_stream.h"

namespace hwledger::server {

class Metrics;

using Clock = std::chrono::steady_clock;

struct TokenLogprob {
  std::string token;  // the token's text
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;  // best alternatives, best first
};

struct SessionEvent {
  enum class Kind { Text, Progress, Done };
  Kind kind = Kind::Text;
  std::string text;                             // Text: newly shown text (may be empty: held back)
  std::optional<TokenLogprob> logprob;          // Text: the token's log-probability, when asked for
  int64_t prefill_done = 0, prefill_total = 0;  // Progress
  GenerateResult result;                        // Done
  std::string stop_sequence;                    // Done: the stop string that ended it ("" if none)
};

class GenerationSession : public RequestSink {
 public:
  GenerationSession(std::string id, const tokenizer::Tokenizer& tokenizer,
                    std::vector<std::string> stop_strings, bool want_logprobs, Metrics& metrics,
                    Clock::time_point arrival);

  const std::string& id() const { return id_; }

  // RequestSink (scheduler thread).
  void on_prefill_progress(int64_t done, int64_t total) override;
  bool on_token(const TokenEvent& event) override;
  void on_done(const GenerateResult& result) override;

  // Connection thread: moves queued events to `out`, waiting up to `timeout` for one.
  // Returns false when none came.
  bool take(std::vector<SessionEvent>& out, std::chrono::milliseconds timeout);
  bool done() const;  // on_done has been called

 private:
  void push(SessionEvent event);
  TokenLogprob make_logprob(const TokenEvent& event) const;

  std::string id_;
  const tokenizer::Tokenizer& tokenizer_;
  TextStream text_;
  bool want_logprobs_;
  Metrics& metrics_;
  Clock::time_point arrival_;
  std::optional<Clock::time_point> last_token_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SessionEvent> queue_;
  bool done_ = false;
};

}  // namespace hwledger::server
