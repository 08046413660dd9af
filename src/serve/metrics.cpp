#include "serve/metrics.h"

#include <sstream>

namespace lmforge::serve {

void Histogram::observe(double v) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < bounds_.size(); ++i)
    if (v <= bounds_[i]) {
      ++counts_[i];
      break;
    }
  ++count_;
  sum_ += v;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream os;
  os << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    os << name << "_bucket{le=\"" << bounds_[i] << "\"} " << cumulative << "\n";
  }
  os << name << "_bucket{le=\"+Inf\"} " << count_ << "\n" << name << "_sum " << sum_ << "\n" << name << "_count " << count_ << "\n";
  out += os.str();
}

Metrics::Metrics()
    : ttft_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}) {}

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{route, status}];
}

std::string Metrics::render(int queue_length) const {
  std::string out =
      "# HELP lmforge_requests_total HTTP requests answered, by route and status.\n"
      "# TYPE lmforge_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, n] : requests_)
      out += "lmforge_requests_total{route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
             std::to_string(n) + "\n";
  }
  out += "# HELP lmforge_prompt_tokens_total Prompt tokens of completed requests.\n"
         "# TYPE lmforge_prompt_tokens_total counter\n"
         "lmforge_prompt_tokens_total " + std::to_string(prompt_tokens_.load()) + "\n"
         "# HELP lmforge_completion_tokens_total Tokens generated.\n"
         "# TYPE lmforge_completion_tokens_total counter\n"
         "lmforge_completion_tokens_total " + std::to_string(completion_tokens_.load()) + "\n"
         "# HELP lmforge_cancelled_requests_total Completions stopped early: client gone or server shutting down.\n"
         "# TYPE lmforge_cancelled_requests_total counter\n"
         "lmforge_cancelled_requests_total " + std::to_string(cancelled_.load()) + "\n"
         "# HELP lmforge_queue_length Completion requests waiting for the engine.\n"
         "# TYPE lmforge_queue_length gauge\n"
         "lmforge_queue_length " + std::to_string(queue_length) + "\n";
  ttft_.render(out, "lmforge_time_to_first_token_seconds", "Time from a request's arrival to its first generated token.");
  tpot_.render(out, "lmforge_time_per_output_token_seconds", "Time between consecutive generated tokens.");
  return out;
}

}  // namespace lmforge::serve
