// The step loop (docs/scheduler.md): admit -> build one batch (decodes + a prefill chunk) ->
// reserve KV -> forward -> commit full blocks -> sample -> deliver -> retire finished requests.
#include "sched/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "sched/sampler.h"
#include "util/error.h"

namespace hwledger {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Eos:
      return "eos";
    case StopReason::Length:
      return "length";
    case StopReason::Stop:
      return "stop";
    case StopReason::Cancelled:
      return "cancelled";
    case StopReason::Error:
      return "error";
  }
  return "error";
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// What is wrong with a request, or "" when nothing is.
std::string validation_error(const GenerateRequest& r, int64_t vocab_size, int64_t context,
                             int64_t kv_blocks, int64_t block_tokens) {
  if (r.prompt.empty()) return "the prompt is empty";
  for (size_t i = 0; i < r.prompt.size(); ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= vocab_size)
      return fmt::format("prompt token {} at position {} is outside the vocabulary (ids 0..{})",
                         r.prompt[i], i, vocab_size - 1);
  if (r.max_tokens < 1) return fmt::format("max_tokens must be at least 1 (got {})", r.max_tokens);
  const int64_t prompt = static_cast<int64_t>(r.prompt.size());
  if (prompt + r.max_tokens > context)
    return fmt::format("prompt of {} tokens plus max_tokens {} exceeds the context of {} tokens",
                       prompt, r.max_tokens, context);
  // The last token generated is never fed back, so the cache holds at most this many.
  const int64_t blocks = (prompt + r.max_tokens - 1 + block_tokens - 1) / block_tokens;
  if (blocks > kv_blocks)
    return fmt::format(
        "prompt of {} tokens plus max_tokens {} needs {} KV cache blocks of {} tokens; the cache "
        "holds {} "
        "(raise --max-kv-size or lower max_tokens)",
        prompt, r.max_tokens, blocks, block_tokens, kv_blocks);
  try {
    validate_sampling(r.sampling);
  } catch (const InputError& e) {
    return e.what();
  }
  return {};
}

}  // namespace

struct Scheduler::Impl {
  struct Request {
    GenerateRequest req;
    std::shared_ptr<RequestSink> sink;
    std::optional<Sampler> sampler;
    KVSequence kv;
    std::vector<int32_t> tokens;  // [prompt + generated]: the prompt, then each sampled token
    int64_t prompt_len = 0;
    bool attached = false;  // owns KV blocks (attach_prefix was called)
    // The cached prefix still coming from the SSD tier (null or finished: all in place).
    std::unique_ptr<PrefixRestore> restore;
    bool done = false;
    bool first_token = false;
    bool counted_running = false;  // admitted: counted in running_count (guarded by mu)
    bool admitted_once = false;    // prompt/cached totals already counted
    bool requeued = false;         // sent back to the queue this step (KV cache full)
    std::atomic<bool> cancel_requested{false};
    GenerateResult result;
    Clock::time_point submitted, admitted;

    bool prefilling() const { return kv.n_tokens < prompt_len; }
  };

  Impl(Engine& e, const SchedulerOptions& o) : engine(e), opts(o) {
    vocab_size = engine.config().vocab_size;
    block_tokens = engine.kv_cache().layout().block_tokens;
    workspace.resize(vocab_size);
  }

  Engine& engine;
  SchedulerOptions opts;
  int64_t vocab_size = 0, block_tokens = 0;

  // Shared with submit/cancel/drain/stats, under `mu`.
  mutable std::mutex mu;
  std::condition_variable wake;      // the loop sleeps on it when it has nothing to do
  std::condition_variable finished;  // drain() waits on it
  std::deque<std::unique_ptr<Request>> queue;
  std::unordered_map<std::string, Request*> live;  // queued and running requests with an id
  int64_t live_count = 0;                          // queued + running, ids or not
  int64_t running_count = 0;
  bool pending_cancel = false;  // some queued request may have cancel_requested set
  bool stopping = false, draining = false;
  bool cancel_all = false;  // drain's deadline passed: end everything live
  // A prompt did not fit in the KV cache and went back to the queue: admit nothing more until a
  // running request ends (or none runs), so that it is not retried in vain every step.
  bool kv_wait = false;
  SchedulerStats counters;  // totals; queued/running are filled in by stats()

  // The loop thread's own state.
  std::vector<std::unique_ptr<Request>> running;  // in admission order
  SamplerWorkspace workspace;
  std::vector<BatchItem> batch;
  std::vector<Request*> batch_owner;  // [batch.size()]
  std::vector<int64_t> before;        // [batch.size()] each sequence's tokens before the step
  std::thread thread;

  void loop();
  void admit(std::unique_ptr<Request> r);
  bool complete_restore(Request& r);
  void step();
  void deliver_token(Request& r, float* logits);
  bool reserve_batch();
  void requeue(Request& r);
  void finish(Request& r, StopReason reason, std::string error = {});
  void retire_done();
};

void Scheduler::Impl::finish(Request& r, StopReason reason, std::string error) {
  if (r.done) return;
  r.done = true;
  if (r.restore) {
    try {
      r.restore->finish();  // the reader writes into the sequence's blocks: wait for it first
    } catch (const std::exception& e) {
      spdlog::error("request '{}': finishing its prefix restore failed: {}", r.req.id, e.what());
    }
    r.restore.reset();
  }
  if (r.attached) {
    try {
      engine.kv_cache().release(r.kv);
    } catch (const std::exception& e) {
      spdlog::error("request '{}': releasing its KV blocks failed: {}", r.req.id, e.what());
    }
    r.attached = false;
  }
  const auto now = Clock::now();
  r.result.reason = reason;
  r.result.error = std::move(error);
  r.result.completion_tokens = static_cast<int64_t>(r.tokens.size()) - r.prompt_len;
  r.result.total_seconds = seconds(r.submitted, now);
  if (!r.first_token) r.result.ttft_seconds = r.result.total_seconds;
  {
    // Before on_done: a client that reacts to it may reuse the id and reads settled stats.
    std::lock_guard lock(mu);
    if (!r.req.id.empty()) {
      auto it = live.find(r.req.id);
      if (it != live.end() && it->second == &r) live.erase(it);
    }
    if (r.counted_running) {
      --running_count;
      kv_wait = false;  // its blocks are free now
    }
  }
  try {
    r.sink->on_done(r.result);
  } catch (const std::exception& e) {
    spdlog::error("request '{}': on_done threw: {}", r.req.id, e.what());
  }
  // After on_done, so that drain() returns only once every sink has heard the end.
  std::lock_guard lock(mu);
  --live_count;
  finished.notify_all();
}

void Scheduler::Impl::retire_done() {
  std::erase_if(running, [](const std::unique_ptr<Request>& r) { return r->done; });
}

void Scheduler::Impl::admit(std::unique_ptr<Request> r) {
  Request& req = *r;
  req.admitted = Clock::now();
  req.result.queue_seconds = seconds(req.submitted, req.admitted);
  req.requeued = false;
  running.push_back(std::move(r));
  try {
    req.attached = true;
    // Blocks in working memory or RAM are in place now; an SSD part is read in the background
    // while other requests keep running (step() waits for it or computes its head meanwhile).
    req.restore = engine.kv_cache().attach_prefix_async(req.kv, req.req.prompt, req.req.cache_salt);
    if (!req.restore->reading()) complete_restore(req);
  } catch (const std::exception& e) {
    finish(req, StopReason::Error, fmt::format("restoring the cached prefix failed: {}", e.what()));
  }
}

// Waits for the request's prefix restore and counts what it served; a failure ends the request
// (returns false).
bool Scheduler::Impl::complete_restore(Request& req) {
  PrefixHit hit;
  try {
    hit = req.restore->finish();
  } catch (const std::exception& e) {
    finish(req, StopReason::Error, fmt::format("restoring the cached prefix failed: {}", e.what()));
    return false;
  }
  req.restore.reset();
  req.result.cached_tokens = hit.tokens;
  if (!req.admitted_once) {
    req.admitted_once = true;
    std::lock_guard lock(mu);
    counters.prompt_tokens_total += req.prompt_len;
    counters.cached_tokens_total += hit.tokens;
  }
  return true;
}

void Scheduler::Impl::loop() {
  while (true) {
    std::vector<std::unique_ptr<Request>> admitted, cancelled;
    bool stop_now = false, cancel_everything = false;
    {
      std::unique_lock lock(mu);
      wake.wait(lock, [&] {
        return stopping || cancel_all || pending_cancel || !running.empty() ||
               (!queue.empty() && static_cast<int64_t>(running.size()) < opts.max_running &&
                (!kv_wait || running.empty()));
      });
      stop_now = stopping;
      cancel_everything = stopping || cancel_all;
      cancel_all = false;
      if (pending_cancel || cancel_everything) {
        pending_cancel = false;
        for (auto it = queue.begin(); it != queue.end();) {
          if (cancel_everything || (*it)->cancel_requested.load()) {
            cancelled.push_back(std::move(*it));
            it = queue.erase(it);
          } else {
            ++it;
          }
        }
      }
      if (running.empty()) kv_wait = false;
      while (!queue.empty() && !kv_wait &&
             static_cast<int64_t>(running.size() + admitted.size()) < opts.max_running) {
        admitted.push_back(std::move(queue.front()));
        admitted.back()->counted_running = true;
        ++running_count;
        queue.pop_front();
      }
    }
    for (auto& r : cancelled) finish(*r, StopReason::Cancelled);
    cancelled.clear();
    for (auto& r : running)
      if (cancel_everything || r->cancel_requested.load()) finish(*r, StopReason::Cancelled);
    for (auto& r : admitted) {
      if (r->cancel_requested.load() || cancel_everything) {
        finish(*r, StopReason::Cancelled);
        continue;
      }
      admit(std::move(r));
    }
    retire_done();
    if (stop_now) {
      std::lock_guard lock(mu);
      if (queue.empty() && running.empty()) return;
      continue;
    }
    if (!running.empty()) {
      try {
        step();
      } catch (const std::exception& e) {  // a bug or bad_alloc: end the batch, keep serving
        spdlog::error("scheduler step failed: {}", e.what());
        for (auto& r : running)
          finish(*r, StopReason::Error, fmt::format("internal error: {}", e.what()));
      }
    }
    retire_done();
  }
}

void Scheduler::Impl::requeue(Request& r) {
  // Nothing was emitted yet (it was still prefilling), so starting over is invisible to the
  // client; blocks it completed stay in the prefix cache and come back at re-admission.
  if (r.restore) {
    r.restore->finish();
    r.restore.reset();
  }
  engine.kv_cache().release(r.kv);
  r.kv = KVSequence{};
  r.attached = false;
  r.requeued = true;
}

// Reserves each batch item's room before the forward pass, so that a full KV cache is handled
// per request: a prompt still prefilling goes back to the queue while others hold the blocks
// (it may first be made to yield them to a decoding sequence); a sequence that cannot grow
// even so ends with an error. Returns false when the batch ended up empty.
bool Scheduler::Impl::reserve_batch() {
  auto active = [](const Request* q) { return !q->done && !q->requeued; };
  size_t kept = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    Request& r = *batch_owner[i];
    bool ok = false;
    while (active(&r)) {
      try {
        engine.kv_cache().reserve(r.kv,
                                  r.kv.n_tokens + static_cast<int64_t>(batch[i].tokens.size()));
        ok = true;
        break;
      } catch (const std::exception& e) {
        const bool others = std::any_of(running.begin(), running.end(), [&](const auto& q) {
          return q.get() != &r && active(q.get());
        });
        if (r.prefilling() && others) {
          requeue(r);
          break;
        }
        // A decoding sequence takes the blocks of the newest sequence still prefilling.
        Request* victim = nullptr;
        for (auto it = running.rbegin(); it != running.rend() && !victim; ++it)
          if (it->get() != &r && active(it->get()) && (*it)->prefilling() &&
              !(*it)->kv.blocks.empty())
            victim = it->get();
        if (victim) {
          requeue(*victim);
          continue;
        }
        finish(r, StopReason::Error, e.what());
      }
    }
    if (!ok) continue;
    batch[kept] = batch[i];
    batch_owner[kept++] = &r;
  }
  // Items of requests requeued after their own reservation succeeded.
  size_t out = 0;
  for (size_t i = 0; i < kept; ++i)
    if (active(batch_owner[i])) {
      batch[out] = batch[i];
      batch_owner[out++] = batch_owner[i];
    }
  batch.resize(out);
  batch_owner.resize(out);

  if (std::any_of(running.begin(), running.end(), [](const auto& q) { return q->requeued; })) {
    std::lock_guard lock(mu);
    for (auto it = running.rbegin(); it != running.rend(); ++it)
      if ((*it)->requeued) {
        (*it)->counted_running = false;
        --running_count;
        queue.push_front(std::move(*it));  // back at the head, in admission order
      }
    std::erase_if(running, [](const std::unique_ptr<Request>& q) { return q == nullptr; });
    kv_wait = true;
  }
  return !batch.empty();
}

void Scheduler::Impl::step() {
  batch.clear();
  batch_owner.clear();
  // One decode token for every sequence past its prompt...
  for (auto& r : running)
    if (!r->done && !r->prefilling()) {
      batch.push_back(
          {&r->kv, std::span<const int32_t>(&r->tokens.back(), 1), BatchItem::Logits::Last});
      batch_owner.push_back(r.get());
    }
  // ...plus up to prefill_chunk prompt tokens, first come first served.
  int64_t budget = opts.prefill_chunk;
  Request* waiting = nullptr;  // a request whose cached prefix is still being read
  for (auto& r : running) {
    if (budget <= 0) break;
    if (r->done || !r->prefilling()) continue;
    int64_t n = std::min(r->prompt_len - r->kv.n_tokens, budget);
    if (r->restore) {
      // Compute the head of the SSD-cached part while the disk reads its tail, if faster.
      const int64_t granted = r->restore->claim(n, engine.prefill_tok_s(), false);
      if (granted > 0) {
        n = granted;
      } else if (r->restore->reading()) {
        if (!waiting) waiting = r.get();
        continue;  // the others go on meanwhile
      } else {
        if (!complete_restore(*r)) continue;
        if (!r->prefilling()) continue;  // cannot happen: one prompt token is always computed
        n = std::min(r->prompt_len - r->kv.n_tokens, budget);
      }
    }
    const bool completes = r->kv.n_tokens + n == r->prompt_len;
    batch.push_back({&r->kv, std::span<const int32_t>(r->tokens.data() + r->kv.n_tokens, n),
                     completes ? BatchItem::Logits::Last : BatchItem::Logits::None});
    batch_owner.push_back(r.get());
    budget -= n;
  }

  if (batch.empty() && waiting) {
    // Nothing else to do: wait for the reader's rate and compute the head if that is faster,
    // else wait for the disk (no spinning either way).
    Request& r = *waiting;
    const int64_t n = std::min(r.prompt_len - r.kv.n_tokens, opts.prefill_chunk);
    const int64_t granted = r.restore->claim(n, engine.prefill_tok_s(), true);
    if (granted > 0) {
      batch.push_back({&r.kv, std::span<const int32_t>(r.tokens.data() + r.kv.n_tokens, granted),
                       BatchItem::Logits::None});
      batch_owner.push_back(&r);
    } else {
      complete_restore(r);
      return;
    }
  }
  if (!reserve_batch()) return;

  int64_t prefill_tokens = 0;
  for (const BatchItem& item : batch)
    if (item.tokens.size() > 1) prefill_tokens += static_cast<int64_t>(item.tokens.size());
  const auto started = Clock::now();
  std::vector<float>* logits = nullptr;
  before.resize(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) before[i] = batch[i].kv->n_tokens;
  try {
    logits = &engine.runner().forward(batch);
    engine.note_prefill(prefill_tokens, seconds(started, Clock::now()));
    std::lock_guard lock(mu);
    ++counters.steps_total;
  } catch (const std::exception& e) {
    for (Request* r : batch_owner)
      finish(*r, StopReason::Error, fmt::format("forward pass failed: {}", e.what()));
    return;
  }

  int64_t row = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    Request& r = *batch_owner[i];
    const int64_t n_after = r.kv.n_tokens;
    // Enter newly completed blocks in the prefix cache (the KV holds tokens[0, n_after)).
    if (before[i] / block_tokens != n_after / block_tokens) {
      try {
        engine.kv_cache().commit(r.kv, std::span<const int32_t>(r.tokens.data(), n_after),
                                 r.req.cache_salt);
      } catch (const std::exception& e) {
        spdlog::warn("request '{}': caching its KV blocks failed: {}", r.req.id, e.what());
      }
    }
    if (before[i] < r.prompt_len) {
      try {
        r.sink->on_prefill_progress(std::min(n_after, r.prompt_len), r.prompt_len);
      } catch (const std::exception& e) {
        finish(r, StopReason::Error, fmt::format("request sink failed: {}", e.what()));
      }
    }
    if (batch[i].logits == BatchItem::Logits::None) continue;
    float* row_logits = logits->data() + row * vocab_size;
    ++row;
    if (!r.done) deliver_token(r, row_logits);
  }
}

void Scheduler::Impl::deliver_token(Request& r, float* logits) {
  TokenEvent event;
  if (r.req.constrain)
    r.req.constrain(logits, vocab_size, std::span<const int32_t>(r.tokens).subspan(r.prompt_len));
  const int32_t token = r.sampler->sample(logits, vocab_size, workspace, &event);
  r.sampler->accept(token);
  r.tokens.push_back(token);
  if (!r.first_token) {
    r.first_token = true;
    r.result.ttft_seconds = seconds(r.submitted, Clock::now());
  }
  {
    std::lock_guard lock(mu);
    ++counters.generated_tokens_total;
  }
  const int64_t generated = static_cast<int64_t>(r.tokens.size()) - r.prompt_len;
  if (std::find(r.req.stop_token_ids.begin(), r.req.stop_token_ids.end(), token) !=
      r.req.stop_token_ids.end()) {
    finish(r, StopReason::Eos);
    return;
  }
  event.token = token;
  event.index = generated - 1;
  bool go_on;
  try {
    go_on = r.sink->on_token(event);
  } catch (const std::exception& e) {
    finish(r, StopReason::Error, fmt::format("request sink failed: {}", e.what()));
    return;
  }
  if (!go_on)
    finish(r, StopReason::Stop);
  else if (generated >= r.req.max_tokens)
    finish(r, StopReason::Length);
}

// ---- Scheduler ------------------------------------------------------------------------------

Scheduler::Scheduler(Engine& engine, const SchedulerOptions& opts) : engine_(engine) {
  if (opts.max_running < 1) fail_input("max_running must be at least 1 (got {})", opts.max_running);
  if (opts.max_queue < 0) fail_input("max_queue must be >= 0 (got {})", opts.max_queue);
  if (opts.prefill_chunk < 1)
    fail_input("prefill_chunk must be at least 1 (got {})", opts.prefill_chunk);
  impl_ = std::make_unique<Impl>(engine, opts);
  impl_->thread = std::thread([this] { impl_->loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->thread.join();
}

bool Scheduler::submit(GenerateRequest request, std::shared_ptr<RequestSink> sink) {
  HW_CHECK(sink != nullptr, "Scheduler::submit: no sink for request '{}'", request.id);
  Impl& s = *impl_;
  auto r = std::make_unique<Impl::Request>();
  r->submitted = Clock::now();
  r->result.id = request.id;
  r->result.prompt_tokens = static_cast<int64_t>(request.prompt.size());
  r->prompt_len = static_cast<int64_t>(request.prompt.size());
  std::string error = validation_error(request, s.vocab_size, engine_.max_context(),
                                       engine_.pool().capacity(), s.block_tokens);

  std::unique_lock lock(s.mu);
  if (s.stopping || s.draining || static_cast<int64_t>(s.queue.size()) >= s.opts.max_queue) {
    ++s.counters.requests_rejected;
    return false;
  }
  ++s.counters.requests_total;
  if (error.empty() && !request.id.empty() && s.live.count(request.id))
    error = fmt::format("request id '{}' is already in use", request.id);
  if (!error.empty()) {
    // Invalid: ends now, on the caller's thread (the loop never sees it).
    lock.unlock();
    r->result.reason = StopReason::Error;
    r->result.error = std::move(error);
    sink->on_done(r->result);
    return true;
  }
  r->sampler.emplace(request.sampling, request.prompt);
  r->tokens = request.prompt;
  r->tokens.reserve(request.prompt.size() +
                    static_cast<size_t>(request.max_tokens));  // no regrowth
  r->req = std::move(request);
  r->sink = std::move(sink);
  if (!r->req.id.empty()) s.live[r->req.id] = r.get();
  ++s.live_count;
  s.queue.push_back(std::move(r));
  lock.unlock();
  s.wake.notify_one();
  return true;
}

bool Scheduler::cancel(const std::string& id) {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mu);
    auto it = s.live.find(id);
    if (it == s.live.end()) return false;
    it->second->cancel_requested = true;
    s.pending_cancel = true;
  }
  s.wake.notify_one();
  return true;
}

void Scheduler::drain(double timeout_seconds) {
  Impl& s = *impl_;
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(std::max(0.0, timeout_seconds)));
  std::unique_lock lock(s.mu);
  s.draining = true;
  if (s.finished.wait_until(lock, deadline, [&] { return s.live_count == 0; })) return;
  // Out of time: cancel the rest and wait for the loop to end them (within one step).
  s.cancel_all = true;
  s.wake.notify_one();
  s.finished.wait(lock, [&] { return s.live_count == 0; });
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(impl_->mu);
  SchedulerStats st = impl_->counters;
  st.queued = static_cast<int64_t>(impl_->queue.size());
  st.running = impl_->running_count;
  return st;
}

}  // namespace hwledger
