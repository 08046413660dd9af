#include "serve/metrics.h"

#include <sstream>

#include "serve/engine.h"

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

std::string Metrics::render(const EngineStats& engine) const {
  std::string out =
      "# HELP lmforge_requests_total HTTP requests answered, by route and status.\n"
      "# TYPE lmforge_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, n] : requests_)
      out += "lmforge_requests_total{route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
             std::to_string(n) + "\n";
  }
  // One unlabelled sample with its HELP and TYPE lines.
  auto sample = [&out](const char* name, const char* type, const char* help, uint64_t value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " +
           std::to_string(value) + "\n";
  };
  sample("lmforge_prompt_tokens_total", "counter", "Prompt tokens of completed requests.", prompt_tokens_.load());
  sample("lmforge_completion_tokens_total", "counter", "Tokens generated.", completion_tokens_.load());
  sample("lmforge_cancelled_requests_total", "counter",
         "Completions stopped early: client gone or server shutting down.", cancelled_.load());
  sample("lmforge_queue_length", "gauge", "Completion requests waiting for the engine.", engine.queue_length);
  sample("lmforge_running_requests", "gauge", "Completion requests being decoded.", engine.running);
  sample("lmforge_batch_rows", "gauge", "Sequences in the last batched model step (batch occupancy).", engine.step_rows);
  sample("lmforge_batch_steps_total", "counter", "Batched model steps run.", engine.steps);
  sample("lmforge_batch_rows_total", "counter",
         "Sequences summed over the batched steps (divided by the steps: mean occupancy).", engine.step_rows_total);
  sample("lmforge_kv_cache_blocks_used", "gauge", "KV-cache blocks held by running requests.", engine.kv_blocks_used);
  sample("lmforge_kv_cache_blocks", "gauge", "KV-cache blocks in all (16 positions each).", engine.kv_blocks_total);
  ttft_.render(out, "lmforge_time_to_first_token_seconds", "Time from a request's arrival to its first generated token.");
  tpot_.render(out, "lmforge_time_per_output_token_seconds", "Time between consecutive generated tokens.");
  return out;
}

}  // namespace lmforge::serve
