#include "rpc/engine_service.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "bench/agent_loop.h"
#include "bench/model_bench.h"
#include "rpc/generate_params.h"
#include "sched/model_context.h"
#include "sched/text_stream.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/size.h"

namespace hwledger::rpc {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

json tier_json(const TierStats& s) {
  return {{"blocks", s.blocks},
          {"bytes", s.bytes},
          {"capacity", s.capacity_bytes},
          {"hits", s.hits},
          {"misses", s.misses},
          {"evictions", s.evictions},
          {"rejected", s.rejected},
          {"bytes_read", s.bytes_read},
          {"bytes_written", s.bytes_written},
          {"write_errors", s.write_errors}};
}

json tiers_json(const KVCacheManager& kv) {
  std::vector<TierStats> stats = kv.stats();
  json out = json::object();
  for (size_t t = 0; t < stats.size(); ++t)
    out[tier_name(static_cast<Tier>(t))] = tier_json(stats[t]);
  return out;
}

}  // namespace

std::string scheduler_request_id(const std::string& request_id) {
  return "rpc-" + request_id;
}

std::string model_display_name(const std::string& spec) {
  std::filesystem::path p = std::filesystem::path(spec).lexically_normal();
  std::string name = p.filename().string();
  if (name.empty()) name = p.parent_path().filename().string();  // "models/x/" -> "x"
  return name.empty() ? spec : name;
}

// --- the control thread ---------------------------------------------------------------------

class EngineService::ControlThread {
 public:
  ControlThread() : thread_([this] { loop(); }) {}
  ~ControlThread() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void post(std::function<void()> job) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and the queue is done
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

// --- generate's sink ---------------------------------------------------------------------------

class EngineService::GenerateSink : public RequestSink {
 public:
  GenerateSink(EngineService& service, json rpc_id, bool answer, const GenerateParams& params,
               const tokenizer::Tokenizer* tokenizer)
      : service_(service),
        rpc_id_(std::move(rpc_id)),
        answer_(answer),
        request_id_(params.request_id),
        stream_(params.stream) {
    // Without a tokenizer (prompt_ids only) there is no text: tokens are reported by id.
    if (tokenizer) text_stream_.emplace(*tokenizer, params.stop);
  }

  bool on_token(const TokenEvent& event) override {
    std::string piece = text_stream_ ? text_stream_->push(event.token) : std::string();
    text_ += piece;
    next_index_ = event.index + 1;
    if (stream_) {
      service_.out_.write(make_notification("token", {{"request_id", request_id_},
                                                      {"text", std::move(piece)},
                                                      {"token_id", event.token},
                                                      {"index", event.index}}));
    }
    return !(text_stream_ && text_stream_->stopped());
  }

  void on_done(const GenerateResult& r) override {
    std::string rest =
        text_stream_ && !text_stream_->stopped() ? text_stream_->finish() : std::string();
    text_ += rest;
    if (stream_ && !rest.empty()) {
      // Text held back at the end (an unfinished character, or the start of a stop string that
      // never completed): one last notification that belongs to no new token.
      service_.out_.write(make_notification("token", {{"request_id", request_id_},
                                                      {"text", std::move(rest)},
                                                      {"token_id", -1},
                                                      {"index", next_index_}}));
    }
    json result = {
        {"request_id", request_id_},
        {"prompt_tokens", r.prompt_tokens},
        {"cached_tokens", r.cached_tokens},
        {"completion_tokens", r.completion_tokens},
        {"stopped_reason", stop_reason_name(r.reason)},
        {"text", std::move(text_)},
        {"timings",
         {{"queue_s", r.queue_seconds}, {"ttft_s", r.ttft_seconds}, {"total_s", r.total_seconds}}}};
    if (r.reason == StopReason::Error) result["error"] = r.error;
    // The reply is written and the request unregistered under one lock: a caller that reuses
    // the request_id after this reply is not refused, and a drain that sees no live request
    // knows every reply is out (the process may exit right after).
    service_.finish_request(request_id_, answer_ ? make_result(rpc_id_, std::move(result)) : json());
  }

 private:
  EngineService& service_;
  json rpc_id_;
  bool answer_;
  std::string request_id_;
  bool stream_;
  std::optional<TextStream> text_stream_;
  std::string text_;  // everything sent so far: the final reply's text
  int64_t next_index_ = 0;
};

// --- the service ------------------------------------------------------------------------------

EngineService::EngineService(EngineServiceOptions options, LineWriter& out)
    : options_(std::move(options)),
      out_(out),
      started_(Clock::now()),
      control_(std::make_unique<ControlThread>()) {
  if (options_.version.empty()) options_.version = HWLEDGER_VERSION;
}

EngineService::~EngineService() {
  control_.reset();  // runs what is queued, then joins
  try {
    unload();
  } catch (const std::exception& e) {
    spdlog::error("unloading the model at exit: {}", e.what());
  }
}

void EngineService::handle_overflow(size_t limit_bytes) {
  out_.write(
      make_error(nullptr, kInvalidRequest, "invalid request: line too long",
                 {{"reason", fmt::format("a request line must be at most {} bytes; the rest of "
                                         "this line is skipped",
                                         limit_bytes)},
                  {"limit_bytes", limit_bytes}}));
}

void EngineService::handle_line(std::string_view line) {
  if (is_blank(line)) return;
  ParsedLine parsed = parse_line(line);
  if (!parsed.request) {
    out_.write(parsed.error_reply);
    return;
  }
  // Errors are always answered, notifications included ("never silence"): with id null then.
  json id = parsed.request->has_id ? parsed.request->id : json(nullptr);
  try {
    dispatch(std::move(*parsed.request), line);
  } catch (const RpcError& e) {
    out_.write(make_error(id, e));
  } catch (const std::exception& e) {
    out_.write(make_error(id, kEngineError, fmt::format("engine error: {}", e.what()),
                          {{"reason", e.what()}}));
  }
}

void EngineService::reply(const Request& request, json result) {
  if (request.has_id) out_.write(make_result(request.id, std::move(result)));
}

void EngineService::reply_error(const Request& request, const RpcError& error) {
  // Errors are always answered, notifications included ("never silence"): id null then.
  out_.write(make_error(request.has_id ? request.id : json(nullptr), error));
}

void EngineService::dispatch(Request request, std::string_view line) {
  const std::string& m = request.method;
  if (m == "health") return reply(request, health());
  if (m == "cancel") return reply(request, cancel(request.params));
  if (m == "shutdown") {
    reply(request, json::object());
    if (on_shutdown_) on_shutdown_();
    return;
  }
  if (m == "generate") return start_generate(std::move(request), line);
  // Requests that arrive once the drain began; those queued before it still run.
  if (draining_ && (m == "load_model" || m == "bench")) {
    throw RpcError(kShuttingDown, "the engine is shutting down and takes no new requests");
  }
  if (m == "load_model")
    return run_on_control(std::move(request),
                          [this](const Request& r) { return load_model(r.params); });
  if (m == "unload_model")
    return run_on_control(std::move(request),
                          [this](const Request& r) { return unload_model(r.params); });
  if (m == "memory_report")
    return run_on_control(std::move(request), [this](const Request&) { return memory_report(); });
  if (m == "cache_stats")
    return run_on_control(std::move(request), [this](const Request&) { return cache_stats(); });
  if (m == "cache_clear")
    return run_on_control(std::move(request),
                          [this](const Request& r) { return cache_clear(r.params); });
  if (m == "bench")
    return run_on_control(std::move(request), [this](const Request& r) { return bench(r.params); });
  throw RpcError(kMethodNotFound, fmt::format("method not found: '{}'", m),
                 {{"method", m},
                  {"reason",
                   "methods: health, load_model, unload_model, generate, cancel, memory_report, "
                   "cache_stats, cache_clear, bench, shutdown"}});
}

void EngineService::run_on_control(Request request, std::function<json(const Request&)> handler) {
  auto shared = std::make_shared<Request>(std::move(request));
  control_->post([this, shared, handler = std::move(handler)] {
    try {
      reply(*shared, handler(*shared));
    } catch (const RpcError& e) {
      reply_error(*shared, e);
    } catch (const InputError& e) {
      reply_error(*shared, RpcError(kInvalidParams, fmt::format("invalid params: {}", e.what()),
                                    {{"reason", e.what()}}));
    } catch (const std::exception& e) {
      reply_error(*shared, RpcError(kEngineError, fmt::format("engine error: {}", e.what()),
                                    {{"reason", e.what()}}));
    }
  });
}

// --- health, model loading --------------------------------------------------------------------

json EngineService::health() const {
  static const char* kStates[] = {"no_model", "loading", "ok"};
  State state = state_.load();
  json model = nullptr, loading = nullptr, scheduler = nullptr;
  {
    std::shared_lock lock(model_mutex_);
    if (model_) {
      model = model_->name();
      SchedulerStats stats = model_->scheduler().stats();  // HTTP requests included
      scheduler = {{"running", stats.running}, {"queued", stats.queued}};
    }
    loading = loading_name_;
  }
  json h = {{"status", draining_ ? "draining" : kStates[static_cast<int>(state)]},
            {"uptime_s", seconds_since(started_)},
            {"version", options_.version},
            {"model", model},
            {"requests", live_requests()},
            {"scheduler", scheduler},
            {"pid", static_cast<int64_t>(::getpid())}};
  if (state == State::Loading) h["loading"] = loading;
  return h;
}

ModelContext& EngineService::require_model() {
  if (!model_) {
    throw RpcError(kNoModel, "no model is loaded",
                   {{"reason", state_ == State::Loading ? "a model is still loading"
                                                        : "call load_model first"}});
  }
  return *model_;
}

json EngineService::load_model(const json& params) {
  Params p(params);
  std::string spec = p.string("model");
  if (spec.empty()) throw_invalid_param("model", "must not be empty");
  EngineOptions engine_options = options_.engine;
  if (const json* size = p.find("max_kv_size")) {
    if (size->is_number()) {
      engine_options.max_kv_bytes = *p.opt_unsigned("max_kv_size");
    } else if (size->is_string()) {
      try {
        engine_options.max_kv_bytes = parse_size(size->get<std::string>());
      } catch (const InputError& e) {
        throw_invalid_param("max_kv_size", e.what());
      }
    } else {
      throw_invalid_param(
          "max_kv_size",
          fmt::format("must be a size (\"2G\") or a byte count, not {}", size->dump()));
    }
  }
  if (auto dtype = p.opt_string("kv_dtype")) {
    try {
      engine_options.kv_dtype = parse_kv_dtype(*dtype);
    } catch (const InputError& e) {
      throw_invalid_param("kv_dtype", e.what());
    }
  }
  bool same = model_ && spec == model_spec_ && engine_options.kv_dtype == model_options_.kv_dtype &&
              engine_options.max_kv_bytes == model_options_.max_kv_bytes;
  if (!same) {
    if (pinned_ && model_) {
      throw RpcError(
          kModelPinned, "the loaded model serves HTTP and cannot be replaced",
          {{"model", model_->name()}, {"reason", "restart the engine with another --model"}});
    }
    load(spec, engine_options);
  }
  return {
      {"loaded", true}, {"model", model_->name()}, {"context_length", model_->context_length()}};
}

void EngineService::load(const std::string& spec, const EngineOptions& engine_options) {
  unload();
  {
    std::unique_lock lock(model_mutex_);
    loading_name_ = model_display_name(spec);
  }
  state_ = State::Loading;
  std::unique_ptr<ModelContext> context;
  auto t0 = Clock::now();
  try {
    std::string dir = options_.resolve_model ? options_.resolve_model(spec) : spec;
    context = std::make_unique<ModelContext>(dir, model_display_name(spec), engine_options,
                                             options_.scheduler);
  } catch (const std::exception& e) {
    state_ = State::Empty;
    throw RpcError(kModelLoadFailed, fmt::format("load_model failed: {}", e.what()),
                   {{"model", spec}, {"reason", e.what()}});
  }
  spdlog::info("loaded model '{}' from {} in {:.2f} s", context->name(), spec, seconds_since(t0));
  {
    std::unique_lock lock(model_mutex_);
    model_ = std::move(context);
    model_spec_ = spec;
    model_options_ = engine_options;
  }
  state_ = State::Ready;
}

void EngineService::unload() {
  if (!model_) return;
  cancel_all();
  model_->scheduler().drain(0);
  {
    std::unique_lock lock(live_mutex_);
    live_changed_.wait_for(lock, std::chrono::seconds(10), [&] { return live_.empty(); });
  }
  std::unique_ptr<ModelContext> context;
  {
    std::unique_lock lock(model_mutex_);
    context = std::move(model_);
    model_spec_.clear();
  }
  context->engine().kv_cache().flush();
  context.reset();
  state_ = State::Empty;
}

void EngineService::load_at_start(const std::string& model,
                                  std::function<void(ModelContext&)> on_loaded,
                                  std::function<void(const std::string&)> on_failed) {
  state_ = State::Loading;
  {
    std::unique_lock lock(model_mutex_);
    loading_name_ = model_display_name(model);
  }
  control_->post([this, model, on_loaded = std::move(on_loaded), on_failed = std::move(on_failed)] {
    try {
      load(model, options_.engine);
      if (on_loaded) on_loaded(*model_);
    } catch (const RpcError& e) {
      if (on_failed) on_failed(e.data().value("reason", e.message()));
    } catch (const std::exception& e) {  // e.g. the HTTP server could not start
      if (on_failed) on_failed(e.what());
    }
  });
}

json EngineService::unload_model(const json& params) {
  Params p(params);
  auto name = p.opt_string("model");
  if (!model_) return {{"unloaded", false}};
  if (name && *name != model_->name() && *name != model_spec_) {
    throw_invalid_param("model", fmt::format("'{}' is not loaded (the loaded model is '{}')", *name,
                                             model_->name()));
  }
  if (pinned_) {
    throw RpcError(kModelPinned, "the loaded model serves HTTP and cannot be unloaded",
                   {{"model", model_->name()}});
  }
  unload();
  return {{"unloaded", true}};
}

// --- generate, cancel -----------------------------------------------------------------------

size_t EngineService::live_requests() const {
  std::lock_guard lock(live_mutex_);
  return live_.size();
}

void EngineService::finish_request(const std::string& request_id, const json& reply) {
  {
    std::lock_guard lock(live_mutex_);
    if (!reply.is_null()) out_.write(reply);
    live_.erase(request_id);
  }
  live_changed_.notify_all();
}

void EngineService::start_generate(Request request, std::string_view line) {
  auto params = std::make_shared<GenerateParams>(parse_generate_params(request.params));
  if (params->kind == GenerateParams::PromptKind::Messages) {
    // Again, keeping the client's key order: templates print tool schemas with `tojson`.
    auto ordered = nlohmann::ordered_json::parse(line.begin(), line.end());
    params->ordered_messages = std::move(ordered["params"]["messages"]);
    if (params->tools.is_array()) params->ordered_tools = std::move(ordered["params"]["tools"]);
  }
  if (draining_)
    throw RpcError(kShuttingDown, "the engine is shutting down and takes no new requests");
  {
    std::lock_guard lock(live_mutex_);
    if (live_.count(params->request_id)) {
      throw RpcError(
          kDuplicateRequestId,
          fmt::format("request_id '{}' is already running", params->request_id),
          {{"field", "request_id"}, {"reason", "must be unique among running requests"}});
    }
    live_[params->request_id] = LiveRequest{request.id, request.has_id};
  }
  auto shared = std::make_shared<Request>(std::move(request));
  control_->post([this, shared, params] {
    try {
      submit_generate(*shared, *params);
    } catch (const RpcError& e) {
      finish_request(params->request_id);
      reply_error(*shared, e);
    } catch (const std::exception& e) {
      finish_request(params->request_id);
      reply_error(*shared, RpcError(kEngineError, fmt::format("engine error: {}", e.what()),
                                    {{"reason", e.what()}}));
    }
  });
}

void EngineService::submit_generate(const Request& request, const GenerateParams& g) {
  {
    std::lock_guard lock(live_mutex_);
    auto it = live_.find(g.request_id);
    if (it != live_.end() && it->second.cancel_requested) {
      live_.erase(g.request_id);
      live_changed_.notify_all();
      reply(request, {{"request_id", g.request_id},
                      {"prompt_tokens", 0},
                      {"cached_tokens", 0},
                      {"completion_tokens", 0},
                      {"stopped_reason", "cancelled"},
                      {"text", ""}});
      return;
    }
  }
  ModelContext& context = require_model();
  std::vector<int32_t> ids;
  switch (g.kind) {
    case GenerateParams::PromptKind::Text:
      if (!context.tokenizer())
        throw_invalid_param("prompt", "the model has no tokenizer: send prompt_ids");
      ids = context.encode(g.prompt, /*add_special_tokens=*/true);
      break;
    case GenerateParams::PromptKind::Messages:
      if (!context.chat_template())
        throw_invalid_param("messages", "the model has no chat template");
      try {
        ids = context.encode(context.render_chat_ordered(g.ordered_messages, g.ordered_tools,
                                                         /*add_generation_prompt=*/true),
                             /*add_special_tokens=*/false);
      } catch (const InputError& e) {
        throw_invalid_param("messages", e.what());
      }
      break;
    case GenerateParams::PromptKind::Ids: {
      int64_t vocab = context.engine().config().vocab_size;
      for (size_t i = 0; i < g.prompt_ids.size(); ++i) {
        if (g.prompt_ids[i] >= vocab) {
          throw_invalid_param(
              fmt::format("prompt_ids[{}]", i),
              fmt::format("{} is outside the vocabulary (size {})", g.prompt_ids[i], vocab));
        }
      }
      ids = g.prompt_ids;
      break;
    }
  }
  if (ids.empty()) throw_invalid_param("prompt", "encodes to no tokens");
  int64_t context_length = context.context_length();
  if (static_cast<int64_t>(ids.size()) + g.max_tokens > context_length) {
    throw_invalid_param("max_tokens",
                        fmt::format("the prompt ({} tokens) plus max_tokens ({}) exceeds the "
                                    "context length ({})",
                                    ids.size(), g.max_tokens, context_length));
  }

  GenerateRequest r;
  r.id = scheduler_request_id(g.request_id);
  r.prompt = std::move(ids);
  r.max_tokens = g.max_tokens;
  r.sampling = g.sampling;
  r.stop_token_ids = context.stop_token_ids();
  auto sink =
      std::make_shared<GenerateSink>(*this, request.id, request.has_id, g, context.tokenizer());
  {
    std::lock_guard lock(live_mutex_);
    live_[g.request_id].submitted = true;
  }
  if (!context.scheduler().submit(std::move(r), sink)) {
    SchedulerStats stats = context.scheduler().stats();
    throw RpcError(
        kBusy, "the scheduler's queue is full; retry later",
        {{"reason", "queue full"}, {"queued", stats.queued}, {"running", stats.running}});
  }
  bool cancel_now = false;
  {
    std::lock_guard lock(live_mutex_);
    auto it = live_.find(g.request_id);
    cancel_now = it != live_.end() && it->second.cancel_requested;
  }
  // A cancel that came while the request was on its way into the scheduler.
  if (cancel_now) context.scheduler().cancel(scheduler_request_id(g.request_id));
}

json EngineService::cancel(const json& params) {
  std::string request_id = Params(params).string("request_id", 256);
  bool submitted = false;
  {
    std::lock_guard lock(live_mutex_);
    auto it = live_.find(request_id);
    if (it == live_.end()) {
      throw RpcError(kUnknownRequestId,
                     fmt::format("no running request has request_id '{}'", request_id),
                     {{"field", "request_id"}, {"reason", "unknown or already finished"}});
    }
    it->second.cancel_requested = true;
    submitted = it->second.submitted;
  }
  if (submitted) cancel_live(request_id);
  return {{"cancelled", true}};
}

void EngineService::cancel_live(const std::string& request_id) {
  std::shared_lock lock(model_mutex_);
  if (model_) model_->scheduler().cancel(scheduler_request_id(request_id));
}

void EngineService::cancel_all() {
  std::vector<std::string> submitted;
  {
    std::lock_guard lock(live_mutex_);
    for (auto& [id, live] : live_) {
      live.cancel_requested = true;
      if (live.submitted) submitted.push_back(id);
    }
  }
  for (const auto& id : submitted) cancel_live(id);
}

void EngineService::begin_drain(double timeout_s, std::function<void()> before_drain,
                                std::function<void()> on_drained) {
  if (draining_.exchange(true)) return;
  control_->post([this, timeout_s, before_drain = std::move(before_drain),
                  on_drained = std::move(on_drained)] {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    try {
      if (before_drain) before_drain();
      if (model_) model_->scheduler().drain(timeout_s);
      std::unique_lock lock(live_mutex_);
      if (!live_changed_.wait_until(lock, deadline + std::chrono::seconds(1),
                                    [&] { return live_.empty(); })) {
        lock.unlock();
        spdlog::warn("{} request(s) still running after the {} s grace period: cancelling them",
                     live_requests(), timeout_s);
        cancel_all();
        lock.lock();
        live_changed_.wait_for(lock, std::chrono::seconds(5), [&] { return live_.empty(); });
      }
      lock.unlock();
      if (model_) model_->engine().kv_cache().flush();
    } catch (const std::exception& e) {
      spdlog::error("draining: {}", e.what());
    }
    if (on_drained) on_drained();
  });
}

// --- reports ---------------------------------------------------------------------------------

json EngineService::memory_report() {
  ModelContext& context = require_model();
  Engine& engine = context.engine();
  const Model& model = engine.model();
  const KVLayout& layout = engine.pool().layout();
  const uint64_t kv_bytes_per_layer = layout.block_bytes() /
                                      static_cast<uint64_t>(layout.n_layers) *
                                      static_cast<uint64_t>(engine.pool().capacity());
  json layers = json::array();
  for (size_t i = 0; i < model.layers.size(); ++i) {
    layers.push_back({{"index", i},
                      {"weights_bytes", model.layers[i].bytes()},
                      {"kv_bytes", kv_bytes_per_layer}});
  }
  uint64_t weights = model.weights_bytes(), kv = engine.pool().bytes(),
           runtime = engine.runner().workspace_bytes();
  return {{"model", context.name()},
          {"total_bytes", weights + kv + runtime},
          {"weights_bytes", weights},
          {"kv_bytes", kv},
          {"runtime_bytes", runtime},
          {"embedding_bytes", model.embedding_bytes()},
          {"kv_dtype", std::string(dtype_name(layout.dtype))},
          {"kv_blocks", engine.pool().capacity()},
          {"block_tokens", layout.block_tokens},
          {"context_length", context.context_length()},
          {"layers", std::move(layers)},
          {"tiers", tiers_json(engine.kv_cache())}};
}

json EngineService::cache_stats() {
  return tiers_json(require_model().engine().kv_cache());
}

json EngineService::cache_clear(const json& params) {
  Params p(params);
  auto name = p.opt_string("tier");
  ModelContext& context = require_model();
  if (!name || *name == "all")
    return {{"cleared_blocks", context.engine().kv_cache().clear(nullptr)}};
  for (Tier t : {Tier::Working, Tier::Ram, Tier::Ssd}) {
    if (*name == tier_name(t)) return {{"cleared_blocks", context.engine().kv_cache().clear(&t)}};
  }
  throw_invalid_param("tier", fmt::format("'{}' is not a tier (working, ram, ssd or all)", *name));
}

json EngineService::bench(const json& params) {
  Params p(params);
  std::string workload = p.opt_string("workload").value_or("model");
  if (workload != "model" && workload != "agent-loop") {
    throw_invalid_param("workload",
                        fmt::format("'{}' is not a workload (model, agent-loop)", workload));
  }
  ModelContext& context = require_model();
  // The benches drive engines directly and measure time: nothing else may run meanwhile.
  if (pinned_)
    throw RpcError(kBusy, "bench is refused while the engine serves HTTP",
                   {{"reason", "engine busy"}});
  SchedulerStats stats = context.scheduler().stats();
  if (live_requests() > 0 || stats.running > 0 || stats.queued > 0) {
    throw RpcError(kBusy, "bench needs an idle engine; requests are running",
                   {{"reason", "engine busy"},
                    {"running", stats.running + static_cast<int64_t>(live_requests())}});
  }
  json report =
      workload == "model" ? bench_model_workload(p, context) : bench_agent_loop_workload(p);
  report["workload"] = workload;
  return report;
}

// `hwledger bench model` on the loaded engine.
json EngineService::bench_model_workload(const Params& p, ModelContext& context) {
  const int64_t context_length = context.context_length();
  ModelBenchOptions opts;
  opts.prompt_tokens =
      p.opt_integer("prompt_tokens", 1, context_length).value_or(opts.prompt_tokens);
  opts.gen_tokens = p.opt_integer("gen_tokens", 1, context_length).value_or(opts.gen_tokens);
  opts.repeats = static_cast<int>(p.opt_integer("repeats", 1, 100).value_or(opts.repeats));
  opts.seed = p.opt_unsigned("seed").value_or(opts.seed);
  if (opts.prompt_tokens + opts.gen_tokens > context_length) {
    throw_invalid_param(
        "gen_tokens", fmt::format("prompt_tokens + gen_tokens ({}) exceeds the context length ({})",
                                  opts.prompt_tokens + opts.gen_tokens, context_length));
  }
  return bench_model(context.engine(), opts).to_json();
}

// `hwledger bench agent-loop` with the loaded model's folder and options. It builds engines of
// its own, one per cache mode, with their SSD tiers in a temporary folder (never --cache-dir).
json EngineService::bench_agent_loop_workload(const Params& p) {
  AgentLoopOptions opts;
  opts.model_dir = options_.resolve_model ? options_.resolve_model(model_spec_) : model_spec_;
  opts.engine = model_options_;
  opts.prefix_tokens = p.opt_integer("prefix_tokens", 1, 1 << 20).value_or(opts.prefix_tokens);
  opts.sessions = p.opt_integer("sessions", 1, 64).value_or(opts.sessions);
  opts.turns = p.opt_integer("turns", 1, 1000).value_or(opts.turns);
  opts.append_tokens = p.opt_integer("append_tokens", 1, 1 << 16).value_or(opts.append_tokens);
  opts.gen_tokens = p.opt_integer("gen_tokens", 1, 4096).value_or(opts.gen_tokens);
  opts.seed = p.opt_unsigned("seed").value_or(opts.seed);
  if (const json* modes = p.find("modes")) {
    if (!modes->is_array() || modes->empty())
      throw_invalid_param("modes", "must be a non-empty array of mode names");
    opts.modes.clear();
    for (size_t i = 0; i < modes->size(); ++i) {
      const json& m = (*modes)[i];
      std::string field = fmt::format("modes[{}]", i);
      if (!m.is_string()) throw_invalid_param(field, "must be one of off, ram, ram+ssd, ssd-cold");
      try {
        opts.modes.push_back(parse_agent_loop_mode(m.get<std::string>()));
      } catch (const InputError& e) {
        throw_invalid_param(field, e.what());
      }
    }
  }
  return run_agent_loop(opts).to_json();
}

}  // namespace hwledger::rpc
