// The sidecar's methods (SPEC "JSON-RPC over stdio"): health, load_model, unload_model,
// generate, cancel, memory_report, cache_stats, cache_clear, bench, shutdown.
//
// Threads: the reader calls handle_line(). health, cancel and shutdown are answered right there,
// so they stay fast while a model loads or a bench runs. Every other method runs in arrival
// order on one control thread (so "load_model then generate" written back to back works);
// generate only tokenizes and submits there and returns, and its tokens and final reply are
// written by the scheduler's thread through a RequestSink. All output goes through one
// LineWriter.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "engine/engine.h"
#include "rpc/jsonrpc.h"
#include "rpc/line_writer.h"
#include "sched/scheduler.h"

namespace hwledger {
class ModelContext;
}

namespace hwledger::rpc {

struct EngineServiceOptions {
  EngineOptions engine;  // defaults for load_model (its params override KV size and dtype)
  SchedulerOptions scheduler;
  // Turns load_model's `model` into a folder ("demo" -> the built-in demo model). Identity when
  // unset.
  std::function<std::string(const std::string& model)> resolve_model;
  std::string version;
};

class EngineService {
 public:
  EngineService(EngineServiceOptions options, LineWriter& out);
  ~EngineService();  // finishes the control thread's queue, then unloads the model
  EngineService(const EngineService&) = delete;
  EngineService& operator=(const EngineService&) = delete;

  // One input line; never throws, every bad line gets an error reply.
  void handle_line(std::string_view line);
  // A line longer than the reader's limit: answered with -32600.
  void handle_overflow(size_t limit_bytes);

  // Queues loading `model` (the command line's --model). on_loaded runs on the control thread
  // once it is in (the HTTP server starts there); on_failed gets the reason.
  void load_at_start(const std::string& model, std::function<void(ModelContext&)> on_loaded,
                     std::function<void(const std::string& reason)> on_failed);
  // The HTTP server holds a reference to the loaded model: refuse to unload or replace it.
  void set_pinned(bool pinned) { pinned_ = pinned; }

  // Called (on the reader thread) after the `shutdown` method has been answered.
  void set_on_shutdown(std::function<void()> callback) { on_shutdown_ = std::move(callback); }
  // Starts draining: new generates are refused at once; after the requests queued before now,
  // the control thread runs before_drain, waits up to `timeout_s` for running requests (then
  // cancels them), flushes the KV cache's SSD writes and calls on_drained.
  void begin_drain(double timeout_s, std::function<void()> before_drain,
                   std::function<void()> on_drained);
  // Cancels every live request (second signal, or the output pipe is gone).
  void cancel_all();
  size_t live_requests() const;

 private:
  class ControlThread;
  class GenerateSink;
  friend class GenerateSink;
  struct LiveRequest {
    json rpc_id;
    bool answer = true;  // false for a notification (no id): no final reply
    bool submitted = false;
    bool cancel_requested = false;
  };
  enum class State { Empty, Loading, Ready };  // of the model

  void dispatch(Request request, std::string_view line);
  // Runs on the control thread: replies with the result or the error.
  void run_on_control(Request request, std::function<json(const Request&)> handler);
  void reply(const Request& request, json result);
  void reply_error(const Request& request, const RpcError& error);

  json health() const;
  json load_model(const json& params);
  json unload_model(const json& params);
  json cancel(const json& params);
  json memory_report();
  json cache_stats();
  json cache_clear(const json& params);
  json bench(const json& params);
  json bench_model_workload(const Params& p, ModelContext& context);
  json bench_agent_loop_workload(const Params& p);
  void start_generate(Request request,
                      std::string_view line);  // reader thread: check, register, queue
  void submit_generate(const Request& request, const struct GenerateParams& params);

  ModelContext& require_model();
  void load(const std::string& spec, const EngineOptions& engine_options);
  void unload();
  void finish_request(const std::string& request_id, const nlohmann::json& reply = nullptr);
  void cancel_live(const std::string& request_id);

  EngineServiceOptions options_;
  LineWriter& out_;
  const std::chrono::steady_clock::time_point started_;
  std::function<void()> on_shutdown_;
  std::atomic<bool> pinned_{false};
  std::atomic<State> state_{State::Empty};
  std::atomic<bool> draining_{false};

  // The loaded model: replaced only on the control thread (exclusive lock); read by the reader
  // thread (health, cancel) under a shared lock.
  mutable std::shared_mutex model_mutex_;
  std::unique_ptr<ModelContext> model_;
  std::string model_spec_;  // load_model's `model` as given
  EngineOptions model_options_;
  std::string loading_name_;

  mutable std::mutex live_mutex_;
  std::condition_variable live_changed_;
  std::map<std::string, LiveRequest> live_;  // by request_id

  std::unique_ptr<ControlThread> control_;  // last: joined first
};

// The scheduler's id for a sidecar request (HTTP requests share the scheduler).
std::string scheduler_request_id(const std::string& request_id);
// "demo" -> "demo"; "/models/Qwen3-0.6B/" -> "Qwen3-0.6B".
std::string model_display_name(const std::string& spec);

}  // namespace hwledger::rpc
