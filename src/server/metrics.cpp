#include "server/metrics.h"

#include <fmt/format.h>

namespace hwledger::server {

namespace {

std::string number(double v) {
  return fmt::format("{}", v);
}

void header(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void sample(std::string& out, const std::string& name, double value,
            const std::string& labels = {}) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += " " + number(value) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  std::lock_guard lock(mu_);
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard lock(mu_);
  header(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, number(bounds_[i]), cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, count_);
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, number(sum_), name, count_);
}

Metrics::Metrics()
    : time_to_first_token({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}),
      inter_token_latency({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      request_duration({0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}) {}

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{route, status}];
}

void Metrics::count_tokens(int64_t prompt, int64_t cached, int64_t generated) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += static_cast<uint64_t>(std::max<int64_t>(prompt, 0));
  cached_tokens_ += static_cast<uint64_t>(std::max<int64_t>(cached, 0));
  generated_tokens_ += static_cast<uint64_t>(std::max<int64_t>(generated, 0));
}

void Metrics::count_finish(const std::string& reason) {
  std::lock_guard lock(mu_);
  ++finishes_[reason];
}

std::string Metrics::render(const SchedulerStats& sched, const std::vector<TierStats>& kv,
                            double uptime_s) const {
  std::string out;
  {
    std::lock_guard lock(mu_);
    header(out, "hwledger_http_requests_total", "counter",
           "HTTP requests answered, by route and status");
    for (const auto& [key, n] : requests_)
      sample(out, "hwledger_http_requests_total", static_cast<double>(n),
             fmt::format("route=\"{}\",status=\"{}\"", key.first, key.second));
    header(out, "hwledger_prompt_tokens_total", "counter", "prompt tokens of finished generations");
    sample(out, "hwledger_prompt_tokens_total", static_cast<double>(prompt_tokens_));
    header(out, "hwledger_cached_prompt_tokens_total", "counter",
           "prompt tokens restored from the KV cache instead of computed");
    sample(out, "hwledger_cached_prompt_tokens_total", static_cast<double>(cached_tokens_));
    header(out, "hwledger_generated_tokens_total", "counter",
           "tokens generated for finished generations");
    sample(out, "hwledger_generated_tokens_total", static_cast<double>(generated_tokens_));
    header(out, "hwledger_generations_finished_total", "counter",
           "finished generations by finish reason");
    for (const auto& [reason, n] : finishes_)
      sample(out, "hwledger_generations_finished_total", static_cast<double>(n),
             fmt::format("reason=\"{}\"", reason));
  }
  time_to_first_token.render(out, "hwledger_time_to_first_token_seconds",
                             "time from request arrival to the first generated token");
  inter_token_latency.render(out, "hwledger_inter_token_latency_seconds",
                             "time between consecutive generated tokens of a request");
  request_duration.render(out, "hwledger_request_duration_seconds",
                          "time from request arrival to its last token");

  header(out, "hwledger_client_disconnects_total", "counter",
         "generations cancelled because the client went away");
  sample(out, "hwledger_client_disconnects_total", static_cast<double>(client_disconnects.load()));
  header(out, "hwledger_request_timeouts_total", "counter",
         "generations cancelled by the request timeout");
  sample(out, "hwledger_request_timeouts_total", static_cast<double>(request_timeouts.load()));
  header(out, "hwledger_queue_rejections_total", "counter",
         "requests refused because the scheduler queue was full");
  sample(out, "hwledger_queue_rejections_total", static_cast<double>(queue_rejections.load()));
  header(out, "hwledger_http_connections", "gauge", "open HTTP connections");
  sample(out, "hwledger_http_connections", static_cast<double>(connections_open.load()));
  header(out, "hwledger_http_connections_rejected_total", "counter",
         "connections refused beyond the connection cap");
  sample(out, "hwledger_http_connections_rejected_total",
         static_cast<double>(connections_rejected.load()));
  header(out, "hwledger_http_generations_active", "gauge",
         "generations the HTTP server is waiting on");
  sample(out, "hwledger_http_generations_active", static_cast<double>(generations_active.load()));

  header(out, "hwledger_queue_depth", "gauge", "requests waiting for a scheduler slot");
  sample(out, "hwledger_queue_depth", static_cast<double>(sched.queued));
  header(out, "hwledger_running_sequences", "gauge", "sequences in the running batch");
  sample(out, "hwledger_running_sequences", static_cast<double>(sched.running));
  header(out, "hwledger_scheduler_requests_total", "counter", "requests the scheduler admitted");
  sample(out, "hwledger_scheduler_requests_total", static_cast<double>(sched.requests_total));
  header(out, "hwledger_scheduler_requests_rejected_total", "counter",
         "requests the scheduler refused");
  sample(out, "hwledger_scheduler_requests_rejected_total",
         static_cast<double>(sched.requests_rejected));

  static const char* const kTiers[] = {"working", "ram", "ssd"};
  struct Field {
    const char* name;
    const char* type;
    const char* help;
    double (*get)(const TierStats&);
  };
  static const Field kFields[] = {
      {"hwledger_kv_cache_blocks", "gauge", "KV blocks held, per tier",
       [](const TierStats& t) { return static_cast<double>(t.blocks); }},
      {"hwledger_kv_cache_bytes", "gauge", "KV bytes held, per tier",
       [](const TierStats& t) { return static_cast<double>(t.bytes); }},
      {"hwledger_kv_cache_capacity_bytes", "gauge", "KV capacity, per tier",
       [](const TierStats& t) { return static_cast<double>(t.capacity_bytes); }},
      {"hwledger_kv_cache_hits_total", "counter", "prefix-cache block hits, per tier",
       [](const TierStats& t) { return static_cast<double>(t.hits); }},
      {"hwledger_kv_cache_misses_total", "counter", "prefix-cache block misses, per tier",
       [](const TierStats& t) { return static_cast<double>(t.misses); }},
      {"hwledger_kv_cache_evictions_total", "counter", "blocks evicted, per tier",
       [](const TierStats& t) { return static_cast<double>(t.evictions); }},
      {"hwledger_kv_cache_rejected_total", "counter", "blocks refused (failed checks), per tier",
       [](const TierStats& t) { return static_cast<double>(t.rejected); }},
      {"hwledger_kv_cache_read_bytes_total", "counter", "bytes read back, per tier",
       [](const TierStats& t) { return static_cast<double>(t.bytes_read); }},
      {"hwledger_kv_cache_written_bytes_total", "counter", "bytes written, per tier",
       [](const TierStats& t) { return static_cast<double>(t.bytes_written); }},
      {"hwledger_kv_cache_write_errors_total", "counter", "failed writes, per tier",
       [](const TierStats& t) { return static_cast<double>(t.write_errors); }},
  };
  if (!kv.empty()) {
    for (const Field& f : kFields) {
      header(out, f.name, f.type, f.help);
      for (size_t t = 0; t < kv.size() && t < 3; ++t)
        sample(out, f.name, f.get(kv[t]), fmt::format("tier=\"{}\"", kTiers[t]));
    }
  }
  header(out, "hwledger_uptime_seconds", "gauge", "seconds since the server started");
  sample(out, "hwledger_uptime_seconds", uptime_s);
  return out;
}

}  // namespace hwledger::server
