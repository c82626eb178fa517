#include "supervisor/restart_policy.h"

#include <algorithm>
#include <cmath>

namespace hwledger::supervisor {

std::optional<double> RestartPolicy::on_failure(double now, std::optional<double> ready_since) {
  if (ready_since && now - *ready_since >= options_.stable_after_s) consecutive_ = 0;
  failures_.push_back(now);
  while (!failures_.empty() && failures_.front() < now - options_.failure_window_s)
    failures_.pop_front();
  if (static_cast<int>(failures_.size()) >= options_.max_failures) return std::nullopt;
  double delay = options_.initial_backoff_s * std::ldexp(1.0, std::min(consecutive_, 30));
  ++consecutive_;
  return std::min(delay, options_.max_backoff_s);
}

}  // namespace hwledger::supervisor
