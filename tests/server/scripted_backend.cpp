#include "scripted_backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace hwledger::test {

using Clock = std::chrono::steady_clock;

namespace {

tokenizer::Tokenizer load_tokenizer(const std::string& where) {
  if (where == "demo")
    return tokenizer::Tokenizer::from_json(tokenizer::demo_tokenizer_json(),
                                           tokenizer::demo_tokenizer_config_json(),
                                           "demo tokenizer");
  return tokenizer::Tokenizer::load(where);
}

// The text after the last "[[name:" up to "]]" ("" when absent).
std::string directive(const std::string& text, const std::string& name) {
  const std::string open = "[[" + name + ":";
  const size_t at = text.rfind(open);
  if (at == std::string::npos) return {};
  const size_t start = at + open.size();
  const size_t end = text.find("]]", start);
  if (end == std::string::npos) return {};
  std::string value = text.substr(start, end - start);
  // "\n" written in a JSON string arrives as a backslash and an n when the prompt shows it escaped.
  for (size_t p = 0; (p = value.find("\\n", p)) != std::string::npos;) value.replace(p, 2, "\n");
  return value;
}

int64_t directive_number(const std::string& text, const std::string& name, int64_t fallback) {
  const std::string v = directive(text, name);
  if (v.empty()) return fallback;
  return std::stoll(v);
}

GenerateResult make_result(const std::string& id, int64_t prompt, int64_t cached,
                           int64_t completion, StopReason reason) {
  GenerateResult r;
  r.id = id;
  r.prompt_tokens = prompt;
  r.cached_tokens = cached;
  r.completion_tokens = completion;
  r.reason = reason;
  return r;
}

}  // namespace

struct ScriptedBackend::Live {
  GenerateRequest request;
  std::shared_ptr<RequestSink> sink;
  std::vector<int32_t> reply;
  size_t next = 0;  // next reply token
  std::chrono::milliseconds token_gap{1};
  Clock::time_point prefill_end, next_event;
  Clock::time_point submitted = Clock::now();
  int64_t cached = 0;
  std::atomic<bool> cancelled{false};  // set by cancel(), read by the loop
  bool first = true;
};

ScriptedBackend::ScriptedBackend(const ScriptedOptions& options)
    : opts_(options), tokenizer_(load_tokenizer(options.tokenizer)) {
  const tokenizer::TokenizerConfig& config = tokenizer_.config();
  const std::string& source =
      options.chat_template.empty() ? config.chat_template : options.chat_template;
  if (!source.empty()) template_ = std::make_unique<chat::ChatTemplate>(source);
  if (config.eos_id >= 0) stop_ids_.push_back(config.eos_id);
  for (const char* eos : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|endoftext|>"}) {
    const int32_t id = tokenizer_.token_to_id(eos);
    if (id >= 0 && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end())
      stop_ids_.push_back(id);
  }
  thread_ = std::thread([this] { loop(); });
}

ScriptedBackend::~ScriptedBackend() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::string ScriptedBackend::render_chat(const nlohmann::ordered_json& messages,
                                         const nlohmann::ordered_json& tools,
                                         bool add_generation_prompt,
                                         const nlohmann::ordered_json& extra) const {
  if (!template_) fail_input("the scripted model's tokenizer has no chat template");
  const tokenizer::TokenizerConfig& config = tokenizer_.config();
  std::string text = chat::render_chat_ordered(*template_, messages, tools, add_generation_prompt,
                                               config.bos_token, config.eos_token, extra);
  std::lock_guard lock(mu_);
  last_prompt_text_ = text;
  return text;
}

std::vector<int32_t> ScriptedBackend::encode(const std::string& text,
                                             bool add_special_tokens) const {
  return tokenizer_.encode(text, add_special_tokens);
}

bool ScriptedBackend::submit(GenerateRequest request, std::shared_ptr<RequestSink> sink) {
  auto live = std::make_shared<Live>();
  const std::string text = tokenizer_.decode(request.prompt);
  std::string reply = directive(text, "reply");
  if (reply.empty()) reply = "Hello from the scripted model.";
  live->reply = tokenizer_.encode(reply, false);
  live->token_gap = std::chrono::milliseconds(directive_number(text, "token_ms", 1));
  live->prefill_end =
      Clock::now() + std::chrono::milliseconds(directive_number(text, "prefill_ms", 0));
  live->next_event = Clock::now();
  live->sink = std::move(sink);
  {
    std::lock_guard lock(mu_);
    if (static_cast<int64_t>(queue_.size()) >= opts_.max_queue) {
      ++stats_.requests_rejected;
      return false;
    }
    // Prefix reuse: whole blocks shared with an earlier prompt (at least one token left to
    // compute).
    size_t best = 0;
    for (const auto& seen : seen_prompts_) {
      size_t n = 0;
      while (n < seen.size() && n < request.prompt.size() && seen[n] == request.prompt[n]) ++n;
      best = std::max(best, n);
    }
    best = std::min(best, request.prompt.size() - 1);
    live->cached = static_cast<int64_t>(best / opts_.block_tokens * opts_.block_tokens);
    if (live->cached > 0)
      ++cache_hits_;
    else
      ++cache_misses_;
    seen_prompts_.push_back(request.prompt);
    last_request_ = request;
    live->request = std::move(request);
    queue_.push_back(live);
    ++stats_.requests_total;
    poked_ = true;
  }
  cv_.notify_all();
  return true;
}

bool ScriptedBackend::cancel(const std::string& id) {
  bool found = false;
  {
    std::lock_guard lock(mu_);
    for (auto& l : queue_)
      if (l->request.id == id) {
        l->cancelled = true;
        found = true;
      }
    for (auto& l : running_)
      if (l->request.id == id) {
        l->cancelled = true;
        found = true;
      }
    poked_ = poked_ || found;
  }
  cv_.notify_all();
  return found;
}

SchedulerStats ScriptedBackend::scheduler_stats() const {
  std::lock_guard lock(mu_);
  SchedulerStats s = stats_;
  s.queued = static_cast<int64_t>(queue_.size());
  s.running = static_cast<int64_t>(running_.size());
  return s;
}

std::vector<TierStats> ScriptedBackend::kv_stats() const {
  std::lock_guard lock(mu_);
  std::vector<TierStats> tiers(3);
  tiers[0].blocks = static_cast<int64_t>(running_.size());
  tiers[0].hits = cache_hits_;
  tiers[0].misses = cache_misses_;
  return tiers;
}

GenerateRequest ScriptedBackend::last_request() const {
  std::lock_guard lock(mu_);
  return last_request_;
}

std::string ScriptedBackend::last_prompt_text() const {
  std::lock_guard lock(mu_);
  return last_prompt_text_;
}

void ScriptedBackend::loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    while (!queue_.empty() && static_cast<int64_t>(running_.size()) < opts_.max_running) {
      running_.push_back(queue_.front());
      queue_.pop_front();
    }
    // Cancelled requests still waiting end at once.
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->cancelled) {
        auto l = *it;
        it = queue_.erase(it);
        GenerateResult r =
            make_result(l->request.id, static_cast<int64_t>(l->request.prompt.size()), 0, 0,
                        StopReason::Cancelled);
        lock.unlock();
        l->sink->on_done(r);
        lock.lock();
      } else {
        ++it;
      }
    }
    const Clock::time_point now = Clock::now();
    Clock::time_point wake = now + std::chrono::milliseconds(50);
    std::vector<std::shared_ptr<Live>> batch = running_;
    std::vector<std::shared_ptr<Live>> finished;
    lock.unlock();
    for (auto& l : batch) {
      GenerateResult r = make_result(l->request.id, static_cast<int64_t>(l->request.prompt.size()),
                                     l->cached, static_cast<int64_t>(l->next), StopReason::Length);
      bool done = false;
      if (l->cancelled) {
        r.reason = StopReason::Cancelled;
        done = true;
      } else if (now < l->prefill_end) {
        if (now >= l->next_event) {
          l->sink->on_prefill_progress(static_cast<int64_t>(l->request.prompt.size()) / 2,
                                       static_cast<int64_t>(l->request.prompt.size()));
          l->next_event = now + std::chrono::milliseconds(50);
        }
        wake = std::min(wake, std::min(l->prefill_end, l->next_event));
        continue;
      } else if (now >= l->next_event) {
        if (l->next >= l->reply.size()) {  // the reply is out: EOS
          r.completion_tokens = static_cast<int64_t>(l->next) + 1;
          r.reason = StopReason::Eos;
          done = true;
        } else {
          TokenEvent event;
          event.token = l->reply[l->next];
          event.index = static_cast<int64_t>(l->next);
          if (l->request.sampling.top_logprobs >= 0) {
            event.logprob = -0.25f;
            for (int32_t k = 0; k < l->request.sampling.top_logprobs; ++k)
              event.top_logprobs.emplace_back(
                  (event.token + k) % static_cast<int32_t>(tokenizer_.vocab_size()),
                  -0.25f - static_cast<float>(k));
          }
          ++l->next;
          r.completion_tokens = static_cast<int64_t>(l->next);
          const bool go_on = l->sink->on_token(event);
          if (!go_on) {
            r.reason = StopReason::Stop;
            done = true;
          } else if (static_cast<int64_t>(l->next) >= l->request.max_tokens) {
            r.reason = StopReason::Length;
            done = true;
          }
          l->next_event = now + l->token_gap;
        }
      }
      if (done) {
        l->sink->on_done(r);
        finished.push_back(l);
      } else {
        wake = std::min(wake, l->next_event);
      }
    }
    lock.lock();
    for (auto& f : finished) running_.erase(std::find(running_.begin(), running_.end(), f));
    if (!finished.empty()) continue;
    cv_.wait_until(lock, wake, [&] { return stop_ || poked_; });
    poked_ = false;
  }
  // Shutting down: everything left ends as cancelled.
  std::vector<std::shared_ptr<Live>> left(running_.begin(), running_.end());
  left.insert(left.end(), queue_.begin(), queue_.end());
  running_.clear();
  queue_.clear();
  lock.unlock();
  for (auto& l : left) {
    GenerateResult r = make_result(l->request.id, static_cast<int64_t>(l->request.prompt.size()), 0,
                                   0, StopReason::Cancelled);
    l->sink->on_done(r);
  }
}

}  // namespace hwledger::test
