// Counters and histograms for GET /metrics (Prometheus text format, version 0.0.4).
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "kv/kv_cache.h"
#include "sched/scheduler.h"

namespace hwledger::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; one more for +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();

  void count_request(const std::string& route, int status);
  void count_tokens(int64_t prompt, int64_t cached, int64_t generated);
  void count_finish(const std::string& reason);  // "stop", "length", "cancelled", ...

  Histogram time_to_first_token;  // seconds from request arrival to the first token
  Histogram inter_token_latency;  // seconds between consecutive tokens of one request
  Histogram request_duration;     // seconds from arrival to the last event of a generation

  std::atomic<int64_t> client_disconnects{0};  // generations cancelled because the client left
  std::atomic<int64_t> request_timeouts{0};
  std::atomic<int64_t> queue_rejections{0};  // 503/529 for a full scheduler queue
  std::atomic<int64_t> connections_open{0};
  std::atomic<int64_t> connections_rejected{0};  // beyond max_connections
  std::atomic<int64_t> generations_active{0};

  std::string render(const SchedulerStats& sched, const std::vector<TierStats>& kv,
                     double uptime_s) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, uint64_t> finishes_;
  uint64_t prompt_tokens_ = 0, cached_tokens_ = 0, generated_tokens_ = 0;
};

}  // namespace hwledger::server
