// LoRA training-step benchmark on a checkpoint folder (e.g. the GPT-J-6B-shaped random checkpoint
// of make_random_checkpoint): the frozen base held in each --base_dtype, LoRA r on --targets, one
// optimizer step = forward_backward_lora + AdamW over the adapter.
//
//   bench_lora --dir DIR [--base_dtype bfloat16,int8] [--r 8] [--targets q_proj,v_proj]
//              [--batch 1] [--seq 256] [--steps 2] [--gradient_checkpointing 0|1] [--threads N]
//
// Each base type runs in a child process of its own, so its peak RSS (getrusage, what
// /usr/bin/time -v reports as "Maximum resident set size") is its own. Per type: load seconds,
// seconds per optimizer step (after one warm-up step; best and median), tokens/s, peak RSS and
// the step's compute floor. The floor counts the matmul FLOPs of one step: forward 2·N per token
// (N = the base's matrix parameters, lm_head included), the input gradient through every frozen
// matrix 2·N (no weight gradient), with gradient checkpointing one more forward 2·N; plus
// attention (4·T·E per token and layer, forward; twice that backward). It is divided by the sgemm
// rate this process measures on a [B·T, E] × [E, E] product (the shape of the step's GEMMs) with
// the same threads: "of floor" = floor time / measured step time.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/lora.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/backprop.h"
#include "lmforge/train/optimizer.h"

using namespace lmforge;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string dir;
  std::vector<std::string> types = {"bfloat16", "int8"};
  std::vector<std::string> targets = {"q_proj", "v_proj"};
  int r = 8, batch = 1, seq = 256, steps = 2, threads = 0;
  bool checkpointing = true;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double peak_rss_gb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0 / 1024.0;
}

// GFLOP/s of sgemm on an [M, K] × [K, N] product, best of three.
double sgemm_gflops(int M, int N, int K) {
  std::vector<float> a(static_cast<size_t>(M) * K, 0.01f), b(static_cast<size_t>(K) * N, 0.02f),
      c(static_cast<size_t>(M) * N);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(), N);
    best = std::max(best, 2.0 * M * N * K / seconds_since(t0) / 1e9);
  }
  return best;
}

// Matrix parameters of the base (every block linear and the lm_head).
double matrix_params(const ModelConfig& c) {
  const double E = c.n_embd, I = c.inner_dim();
  return c.n_layer * (3 * E * E + E * E + 2 * E * I) + static_cast<double>(c.vocab_size) * E;
}

void run_type(const Options& o, const std::string& type_name) {
  const auto type = kernels::weight_type_from_string(type_name);
  if (!type) throw Error("--base_dtype: unknown type '" + type_name + "'");
  const ModelConfig cfg = load_model_config(std::filesystem::path(o.dir) / "config.json");
  auto t0 = Clock::now();
  ModelWeights w = allocate_weights(cfg, MatrixTypes(*type));
  load_weights(Checkpoint::open(o.dir), cfg, w);
  const double load_s = seconds_since(t0);
  LoraConfig lc;
  lc.r = o.r;
  lc.lora_alpha = 2.0 * o.r;
  lc.target_modules = o.targets;
  LoraAdapter a = make_lora_adapter(cfg, lc);
  init_lora_weights(a, 1);
  // B starts at zero; give it values so the step does real work in every product.
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.01f);
  for (auto& m : a.modules)
    for (size_t i = 0; i < static_cast<size_t>(m.rows) * o.r; ++i) a.B(m)[i] = nd(rng);

  TrainBatch b;
  b.B = o.batch, b.T = o.seq;
  for (int i = 0; i < o.batch * o.seq; ++i) b.input_ids.push_back(static_cast<int32_t>(rng() % cfg.vocab_size));
  b.labels = b.input_ids;
  TrainWorkspace ws(TrainOptions{false, o.checkpointing});
  AdamW opt(a.params.size(), {1e-4, 0.9, 0.999, 1e-8, 0.0});
  std::vector<float> grads(a.params.size());
  std::vector<double> times;
  float loss = 0;
  for (int s = 0; s <= o.steps; ++s) {  // step 0 warms up
    t0 = Clock::now();
    std::fill(grads.begin(), grads.end(), 0.0f);
    loss = forward_backward_lora(cfg, w, a, b, grads, ws, 1.0f, s);
    opt.step(a.params.data(), grads.data());
    if (s > 0) times.push_back(seconds_since(t0));
    std::fprintf(stderr, "  %s step %d: %.1f s, loss %.4f\n", type_name.c_str(), s, seconds_since(t0), loss);
  }
  std::sort(times.begin(), times.end());
  const double best = times.front(), median = times[times.size() / 2];
  const double tokens = static_cast<double>(o.batch) * o.seq;
  const double N = matrix_params(cfg);
  const double attn = 4.0 * o.seq * cfg.n_embd * cfg.n_layer;  // per token, forward
  const double passes = o.checkpointing ? 3 : 2;                // forward, dX, recomputed forward
  const double flop_per_token = passes * 2 * N + (o.checkpointing ? 4 : 3) * attn;
  const double gflops = sgemm_gflops(static_cast<int>(tokens), cfg.n_embd, cfg.n_embd);
  const double floor_s = flop_per_token * tokens / (gflops * 1e9);
  std::printf(
      "| %s | %zu | %.1f | %.1f / %.1f | %.2f | %.1f | %.1f | %.0f | %.1f s | %.0f %% | %.2f GB |\n",
      type_name.c_str(), a.params.size(), load_s, best, median, tokens / median, flop_per_token / 1e9,
      flop_per_token * tokens / median / 1e9, gflops, floor_s, 100.0 * floor_s / median, peak_rss_gb());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    for (bench::FlagReader f(argc, argv); f.next();) {
      if (f.is("--dir")) o.dir = f.value();
      else if (f.is("--base_dtype")) o.types = bench::split(f.value());
      else if (f.is("--targets")) o.targets = bench::split(f.value());
      else if (f.is("--r")) o.r = f.integer();
      else if (f.is("--batch")) o.batch = f.integer();
      else if (f.is("--seq")) o.seq = f.integer();
      else if (f.is("--steps")) o.steps = f.integer();
      else if (f.is("--threads")) o.threads = f.integer();
      else if (f.is("--gradient_checkpointing")) o.checkpointing = f.integer() != 0;
      else throw Error("unknown flag " + f.flag());
    }
    if (o.dir.empty()) throw Error("--dir: the checkpoint folder is required");
    if (o.threads > 0) kernels::set_num_threads(o.threads);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_lora: %s\n", e.what());
    return 2;
  }
  std::printf("bench_lora: %s, r %d on %zu target names, batch %d x seq %d, gradient checkpointing %s, "
              "kernels %s, load average %s\n\n",
              o.dir.c_str(), o.r, o.targets.size(), o.batch, o.seq, o.checkpointing ? "on" : "off",
              kernels::isa_description().c_str(), bench::load_average().c_str());
  std::printf("| base | adapter params | load s | step s (best / median) | tokens/s | GFLOP/token | GFLOP/s | "
              "sgemm GFLOP/s | floor | of floor | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  int failed = 0;
  for (const auto& type : o.types) {
    const pid_t pid = fork();
    if (pid == 0) {
      try {
        run_type(o, type);
        _exit(0);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_lora: %s: %s\n", type.c_str(), e.what());
        _exit(1);
      }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::printf("\nload average after: %s\n", bench::load_average().c_str());
  return failed ? 1 : 0;
}
