#pragma once
// Counters for GET /metrics in Prometheus' text format. Thread-safe: the HTTP threads count
// requests, the engine's worker counts tokens and latencies.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace lmforge::serve {

struct EngineStats;  // engine.h

// A Prometheus histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
  void observe(double v);
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative; rendered cumulative)
  uint64_t count_ = 0;
  double sum_ = 0;
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& route, int status);
  void add_tokens(int prompt, int completion) {
    prompt_tokens_ += prompt;
    completion_tokens_ += completion;
  }
  void count_cancelled() { ++cancelled_; }
  Histogram& time_to_first_token() { return ttft_; }
  Histogram& time_per_token() { return tpot_; }
  // Prometheus text; the engine's gauges are read at render time.
  std::string render(const EngineStats& engine) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::atomic<uint64_t> prompt_tokens_{0}, completion_tokens_{0}, cancelled_{0};
  Histogram ttft_, tpot_;
};

}  // namespace lmforge::serve
