// Load benchmark of lmforge serve: `--clients` concurrent streaming clients for `--seconds` against
// the real binary on a 124M-shaped model with random weights (written once through
// write_random_checkpoint, GPT-2's tokenizer copied in), twice: with continuous batching
// (--max_batch 64) and one request at a time (--max_batch 1), each its own server process.
// Reports per mode: requests completed and failed, completion tokens/s, time to first token p50 /
// p99 (requests started after the warm-up), the server's VmRSS at the end of the warm-up and its
// largest after it (flat = no growth under steady load); then the throughput ratio. Loopback only.
//
//   bench_serve [--dir DIR] [--lmforge PATH] [--clients 64] [--seconds 60] [--warmup 10]
//               [--max_tokens 64] [--threads N] [--modes batched,single] [--rounds 1] [--dtype TYPE]
//
// --dtype: the servers' --dtype (e.g. bfloat16_compute; default: theirs, float32 here).
//
// --rounds R: the modes R times over, interleaved (batched, single, batched, ...), each round's
// ratio printed and then their median: one request at a time is bound by memory bandwidth, which
// on a shared host drifts by 20 % within minutes, so a ratio is only fair between neighbours.
//   bench_serve --port P [--pid PID] [--label NAME] ...   an already running server instead (e.g.
//               llama.cpp's llama-server on the same model shape: it speaks /v1/completions too)
#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../tests/serve/serve_process.h"
#include "bench_util.h"
#include "lmforge/error.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/random_checkpoint.h"
#include "serve_load.h"

namespace fs = std::filesystem;
using namespace lmforge;

namespace {

struct Options {
  std::string dir, lmforge, dtype;
  int clients = 64, max_tokens = 64, threads = 0, rounds = 1;
  double seconds = 60, warmup = 10;
  std::vector<std::string> modes = {"batched", "single"};
  int port = 0;  // external server
  pid_t pid = 0;
  std::string label = "external";
};

// Prompts of 8 to 40 tokens' worth of words, so prefill chunks mix with decode steps.
std::vector<std::string> prompts() {
  const char* words[] = {"the", "market", "rose", "after", "a", "long", "week", "of", "talks", "in", "Paris"};
  std::vector<std::string> out;
  for (int i = 0; i < 16; ++i) {
    std::string p = "Headline " + std::to_string(i) + ":";
    for (int w = 0; w < 8 + 2 * i; ++w) p += std::string(" ") + words[(i + w) % 11];
    out.push_back(p);
  }
  return out;
}

bench::LoadOptions load_options(const Options& o, int port, pid_t pid) {
  bench::LoadOptions lo;
  lo.port = port;
  lo.server_pid = pid;
  lo.clients = o.clients;
  lo.seconds = o.seconds;
  lo.warmup = o.warmup;
  lo.max_tokens = o.max_tokens;
  lo.prompts = prompts();
  return lo;
}

bench::LoadReport run_mode(const Options& o, const std::string& mode) {
  if (mode == o.label) return bench::run_load(load_options(o, o.port, o.pid));
  std::vector<std::string> args = {"--model", o.dir, "--max_queue", "256", "--max_batch",
                                   mode == "batched" ? "64" : "1"};
  // Always explicit: ServeProcess (the tests' launcher) defaults to one thread.
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  args.insert(args.end(), {"--threads", std::to_string(threads)});
  if (!o.dtype.empty()) args.insert(args.end(), {"--dtype", o.dtype});
  test::ServeProcess server(args, o.lmforge);
  bench::LoadReport r = bench::run_load(load_options(o, server.port(), server.pid()));
  if (server.terminate() != 0) std::fprintf(stderr, "bench_serve: %s: the server did not exit 0 on SIGTERM\n", mode.c_str());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    for (bench::FlagReader f(argc, argv); f.next();) {
      if (f.is("--dir")) o.dir = f.value();
      else if (f.is("--lmforge")) o.lmforge = f.value();
      else if (f.is("--clients")) o.clients = f.integer();
      else if (f.is("--seconds")) o.seconds = std::stod(f.value());
      else if (f.is("--warmup")) o.warmup = std::stod(f.value());
      else if (f.is("--max_tokens")) o.max_tokens = f.integer();
      else if (f.is("--threads")) o.threads = f.integer();
      else if (f.is("--modes")) o.modes = bench::split(f.value());
      else if (f.is("--rounds")) o.rounds = f.integer();
      else if (f.is("--port")) o.port = f.integer();
      else if (f.is("--pid")) o.pid = f.integer();
      else if (f.is("--label")) o.label = f.value();
      else if (f.is("--dtype")) o.dtype = f.value();
      else throw Error("unknown flag " + f.flag());
    }
    if (o.clients < 1 || o.max_tokens < 1 || o.seconds <= o.warmup)
      throw Error("--clients and --max_tokens must be positive and --seconds larger than --warmup");
    if (o.port > 0) o.modes = {o.label};  // an external server: measured as it is
    for (const std::string& m : o.modes)
      if (m != "batched" && m != "single" && o.port == 0)
        throw Error("--modes: batched and/or single, not '" + m + "'");
    if (o.lmforge.empty()) o.lmforge = (fs::read_symlink("/proc/self/exe").parent_path() / "lmforge").string();
    if (o.port == 0 && !fs::exists(o.lmforge)) throw Error("--lmforge: no lmforge binary at " + o.lmforge);
    if (o.dir.empty() && o.port == 0) {
      o.dir = "/tmp/lmforge-bench-serve-gpt2";
      if (!fs::exists(fs::path(o.dir) / "config.json")) {
        RandomCheckpointOptions ro;
        ro.tokenizer = fs::path(__FILE__).parent_path() / "../tests/data/tokenizer";
        write_random_checkpoint(o.dir, random_checkpoint_config("gpt2"), ro);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_serve: %s\n", e.what());
    return 2;
  }
  std::printf("bench_serve: %s, %d streaming clients for %.0f s (warm-up %.0f s), max_tokens %d, temperature 0.8, "
              "server threads %s, kernels %s, load average %s\n\n",
              o.dir.c_str(), o.clients, o.seconds, o.warmup, o.max_tokens,
              std::to_string(o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency())).c_str(), kernels::isa_description().c_str(),
              bench::load_average().c_str());
  std::printf("| mode | completed | failed | abandoned at the end | tokens/s | TTFT p50 s | TTFT p99 s | "
              "VmRSS after warm-up MB | largest after MB |\n|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  double batched = 0, single = 0;
  int failed = 0;
  std::vector<double> ratios;
  for (int round = 0; round < std::max(o.rounds, 1); ++round)
  for (const std::string& mode : o.modes) {
    try {
      const bench::LoadReport r = run_mode(o, mode);
      std::printf("| %s | %d | %d | %d | %.1f | %.3f | %.3f | %.1f | %.1f |\n", mode.c_str(), r.ok, r.failed, r.abandoned,
                  r.tokens_per_second(), r.ttft_quantile(0.5), r.ttft_quantile(0.99),
                  r.rss_after_warmup_kb(o.warmup) / 1024.0, r.rss_max_after_kb(o.warmup) / 1024.0);
      if (!r.first_failure.empty()) std::printf("  first failure: %s\n", r.first_failure.c_str());
      if (r.tokens_from_chunks) std::printf("  (no usage in the stream: tokens counted as stream chunks)\n");
      std::fflush(stdout);
      (mode == "batched" ? batched : single) = r.tokens_per_second();
      failed += r.failed;
      if (mode == o.modes.back() && batched > 0 && single > 0) ratios.push_back(batched / single);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_serve: %s: %s\n", mode.c_str(), e.what());
      return 1;
    }
  }
  if (ratios.size() == 1) std::printf("\ncontinuous batching / one at a time: %.2fx tokens/s\n", ratios[0]);
  if (ratios.size() > 1) {
    std::printf("\ncontinuous batching / one at a time, per round:");
    for (double r : ratios) std::printf(" %.2fx", r);
    std::sort(ratios.begin(), ratios.end());
    std::printf("; median %.2fx tokens/s\n", ratios.size() % 2 ? ratios[ratios.size() / 2]
                                                                  : (ratios[ratios.size() / 2 - 1] + ratios[ratios.size() / 2]) / 2);
  }
  return failed == 0 ? 0 : 1;
}
