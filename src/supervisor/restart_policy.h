// When to restart a failed engine: exponential backoff, reset by a stable run, and a crash-loop
// limit after which the supervisor gives up. Times are seconds on a monotonic clock (passed in,
// so that tests need no sleeping).
#pragma once
#include <deque>
#include <optional>

namespace hwledger::supervisor {

struct RestartPolicyOptions {
  double initial_backoff_s = 0.25;  // delay before the first restart
  double max_backoff_s = 10;        // doubling stops here
  int max_failures = 5;             // this many failures within the window: give up
  double failure_window_s = 60;
  double stable_after_s = 30;  // an engine that was ready this long resets the backoff
};

class RestartPolicy {
 public:
  explicit RestartPolicy(const RestartPolicyOptions& options) : options_(options) {}

  // An engine ended unexpectedly at `now`; `ready_since` is when it became ready (none: it never
  // did). Returns the delay before starting the next one, or nothing to give up (crash loop).
  std::optional<double> on_failure(double now, std::optional<double> ready_since);
  // Failures inside the window as of the last on_failure.
  int recent_failures() const { return static_cast<int>(failures_.size()); }
  const RestartPolicyOptions& options() const { return options_; }

 private:
  RestartPolicyOptions options_;
  std::deque<double> failures_;  // times of the failures inside the window
  int consecutive_ = 0;          // failures since the last stable run
};

}  // namespace hwledger::supervisor
