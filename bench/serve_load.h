#pragma once
// A load generator for lmforge serve (header-only; used by bench/bench_serve.cpp and by the CI
// load test tests/serve/load_test.cpp): `clients` threads, each sending streamed completions one
// after the other to a running server for `seconds`, measuring time to first token, tokens
// received and the server's resident memory. At the deadline the requests still running are
// abandoned (the clients hang up, which the server sees as a cancellation) and only completed
// requests count toward the tokens.
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmforge::bench {

struct LoadOptions {
  int port = 0;
  pid_t server_pid = 0;           // whose VmRSS is sampled (0: none)
  int clients = 64;
  double seconds = 60;
  double warmup = 10;             // TTFT and RSS statistics leave out requests started earlier
  int max_tokens = 64;
  std::vector<std::string> prompts = {"The"};  // client c's k-th request uses prompts[(c + k) % size]
  double temperature = 0.8;
};

struct LoadReport {
  int ok = 0, failed = 0, abandoned = 0;
  std::string first_failure;
  int64_t tokens = 0;                 // completion tokens of completed requests
  bool tokens_from_chunks = false;    // the server sent no usage: tokens counted as stream chunks
  double seconds = 0;                 // the measured window
  std::vector<double> ttft;           // seconds, requests started after the warm-up
  std::vector<std::pair<double, long>> rss_kb;  // (seconds since start, VmRSS)
  double tokens_per_second() const { return seconds > 0 ? tokens / seconds : 0; }
  double ttft_quantile(double q) const {
    if (ttft.empty()) return 0;
    std::vector<double> v = ttft;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
  }
  // VmRSS at the end of the warm-up, and the largest after it.
  long rss_after_warmup_kb(double warmup) const {
    for (const auto& [t, kb] : rss_kb)
      if (t >= warmup) return kb;
    return rss_kb.empty() ? 0 : rss_kb.back().second;
  }
  long rss_max_after_kb(double warmup) const {
    long m = 0;
    for (const auto& [t, kb] : rss_kb)
      if (t >= warmup) m = std::max(m, kb);
    return m;
  }
};

inline long vm_rss_kb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

inline LoadReport run_load(const LoadOptions& o) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  auto since = [&](Clock::time_point t) { return std::chrono::duration<double>(t - start).count(); };
  LoadReport report;
  std::mutex mu;
  std::atomic<bool> done{false};
  std::thread sampler([&] {
    while (!done && o.server_pid > 0) {
      const long kb = vm_rss_kb(o.server_pid);
      {
        std::lock_guard<std::mutex> lock(mu);
        report.rss_kb.emplace_back(since(Clock::now()), kb);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  // One connection per client; at the deadline each is shut down from here, so a request still
  // waiting in the server's queue (no chunk yet to notice the deadline with) is abandoned too.
  std::vector<std::unique_ptr<httplib::Client>> connections;
  for (int c = 0; c < o.clients; ++c) {
    connections.push_back(std::make_unique<httplib::Client>("127.0.0.1", o.port));
    connections.back()->set_read_timeout(600, 0);
  }
  std::thread closer([&] {
    while (!done && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (auto& conn : connections) conn->stop();
  });
  std::vector<std::thread> clients;
  for (int c = 0; c < o.clients; ++c)
    clients.emplace_back([&, c] {
      httplib::Client& client = *connections[c];
      for (int k = 0; Clock::now() < deadline; ++k) {
        const nlohmann::json body{{"prompt", o.prompts[(c + k) % o.prompts.size()]},
                                  {"max_tokens", o.max_tokens},
                                  {"temperature", o.temperature},
                                  {"seed", c * 1000 + k},
                                  {"stream", true},
                                  {"stream_options", {{"include_usage", true}}}};
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/completions";
        req.set_header("Content-Type", "application/json");
        req.body = body.dump();
        const auto sent = Clock::now();
        double first = -1;
        int64_t tokens = -1, chunks = 0;  // chunks: for a server whose stream carries no usage
        bool saw_done = false, past_deadline = false;
        std::string buffer;
        req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
          buffer.append(data, n);
          for (size_t end; (end = buffer.find("\n\n")) != std::string::npos; buffer.erase(0, end + 2)) {
            const std::string event = buffer.substr(0, end);
            if (event == "data: [DONE]") {
              saw_done = true;
              continue;
            }
            if (event.rfind("data: ", 0) != 0) continue;
            const auto j = nlohmann::json::parse(event.substr(6), nullptr, false);
            if (j.is_discarded()) continue;
            if (j.contains("choices") && !j["choices"].empty()) {
              if (first < 0) first = since(Clock::now()) - since(sent);
              ++chunks;
            }
            if (j.contains("usage") && j["usage"].is_object()) tokens = j["usage"]["completion_tokens"].get<int64_t>();
          }
          if (Clock::now() >= deadline) past_deadline = true;
          return !past_deadline;  // at the deadline: hang up
        };
        auto res = client.send(req);
        std::lock_guard<std::mutex> lock(mu);
        if (tokens < 0 && saw_done) {  // no usage chunk (llama-server): one token per chunk
          tokens = chunks;
          report.tokens_from_chunks = true;
        }
        if (!past_deadline && res && res->status == 200 && saw_done && tokens >= 0) {
          ++report.ok;
          report.tokens += tokens;
          if (since(sent) >= o.warmup && first >= 0) report.ttft.push_back(first);
        } else if (past_deadline || Clock::now() >= deadline) {
          ++report.abandoned;  // cut off by the deadline, not a failure
          break;
        } else {
          ++report.failed;
          if (report.first_failure.empty())
            report.first_failure = res ? "status " + std::to_string(res->status) + ": " + res->body
                                       : "no answer: " + httplib::to_string(res.error());
        }
      }
    });
  for (auto& t : clients) t.join();
  done = true;
  closer.join();
  sampler.join();
  report.seconds = std::min(o.seconds, since(Clock::now()));
  return report;
}

}  // namespace lmforge::bench
