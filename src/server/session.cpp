#include "server/session.h"

#include "server/metrics.h"
#include "tokenizer/tokenizer.h"

namespace hwledger::server {

namespace {
double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

GenerationSession::GenerationSession(std::string id, const tokenizer::Tokenizer& tokenizer,
                                     std::vector<std::string> stop_strings, bool want_logprobs,
                                     Metrics& metrics, Clock::time_point arrival)
    : id_(std::move(id)),
      tokenizer_(tokenizer),
      text_(tokenizer, std::move(stop_strings), /*skip_special_tokens=*/true),
      want_logprobs_(want_logprobs),
      metrics_(metrics),
      arrival_(arrival) {}

void GenerationSession::on_prefill_progress(int64_t done, int64_t total) {
  SessionEvent event;
  event.kind = SessionEvent::Kind::Progress;
  event.prefill_done = done;
  event.prefill_total = total;
  push(std::move(event));
}

bool GenerationSession::on_token(const TokenEvent& token) {
  const Clock::time_point now = Clock::now();
  if (last_token_)
    metrics_.inter_token_latency.observe(seconds_between(*last_token_, now));
  else
    metrics_.time_to_first_token.observe(seconds_between(arrival_, now));
  last_token_ = now;

  SessionEvent event;
  event.text = text_.push(token.token);
  // The token that completes a stop string belongs to the stop, not to the answer.
  if (want_logprobs_ && !text_.stopped()) event.logprob = make_logprob(token);
  const bool go_on = !text_.stopped();
  push(std::move(event));
  return go_on;
}

void GenerationSession::on_done(const GenerateResult& result) {
  const Clock::time_point now = Clock::now();
  if (!last_token_ && result.completion_tokens > 0)  // the only token was EOS
    metrics_.time_to_first_token.observe(seconds_between(arrival_, now));
  metrics_.request_duration.observe(seconds_between(arrival_, now));
  metrics_.count_tokens(result.prompt_tokens, result.cached_tokens, result.completion_tokens);

  SessionEvent event;
  event.kind = SessionEvent::Kind::Done;
  if (!text_.stopped()) event.text = text_.finish();
  event.stop_sequence = text_.matched_stop();
  event.result = result;
  {
    std::lock_guard lock(mu_);
    done_ = true;
    queue_.push_back(std::move(event));
  }
  cv_.notify_all();
}

void GenerationSession::push(SessionEvent event) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(event));
  }
  cv_.notify_all();
}

bool GenerationSession::take(std::vector<SessionEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (queue_.empty() && !cv_.wait_for(lock, timeout, [&] { return !queue_.empty(); })) return false;
  for (auto& e : queue_) out.push_back(std::move(e));
  queue_.clear();
  return true;
}

bool GenerationSession::done() const {
  std::lock_guard lock(mu_);
  return done_;
}

TokenLogprob GenerationSession::make_logprob(const TokenEvent& token) const {
  TokenLogprob lp;
  const int32_t id = token.token;
  lp.token = tokenizer_.decode(std::span<const int32_t>(&id, 1));
  lp.logprob = token.logprob;
  for (const auto& [alt, value] : token.top_logprobs) {
    lp.top.emplace_back(tokenizer_.decode(std::span<const int32_t>(&alt, 1)), value);
  }
  return lp;
}

}  // namespace hwledger::server
