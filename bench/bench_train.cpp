// Training-step benchmark on GPT-2 124M shapes with random weights (HF's initialisation): one step
// = zero the gradients, forward + backward (forward_backward), gradient norm + clip folded into
// one AdamW update (wd 0.01).
//
//   bench_train [--shapes 4x64,8x128] [--steps 3] [--threads N] [--model gpt2] [--layers 12]
//               [--precision fp32,bf16]
//
// --model gpt2 (124M: 12 layers, 768 wide, 12 heads) or gpt2-medium (355M: 24 layers, 1024 wide,
// 16 heads); --layers overrides the preset's layer count.
//
// For each B x T: tokens/s of the whole step (best and median of --steps after one warm-up
// step), the split forward (evaluate_loss) / backward (forward_backward minus forward) /
// optimizer, the model FLOPs rate (6 N per token for the matmuls plus attention), and peak RSS
// (getrusage). Each (shape, precision) row runs in a child process of its own, so its peak RSS is
// its own and not the maximum over the rows before it. bf16 rows (TrainOptions::bf16: bf16
// weight copy and matmul inputs, fp32 accumulation and master weights) also give the time of the
// per-pass fp32 → bf16 weight conversion, which is included in their step and forward times.
// The fp32 rows use OpenBLAS sgemm, which picks its kernels by CPU (OPENBLAS_CORETYPE=Haswell
// forces the AVX2 ones); the bf16 GEMM is our own AVX2/FMA one. The load average is printed
// before and after: the machine may be shared.
#include <sys/wait.h>
#include <unistd.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/save.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/backprop.h"
#include "lmforge/train/openmp_env.h"
#include "lmforge/train/optimizer.h"
#include "lmforge/kernels/gemm_bf16.h"

using namespace lmforge;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

TrainBatch random_batch(int B, int T, int V, uint32_t seed) {
  std::mt19937 rng(seed);
  TrainBatch b{B, T, {}, {}, {}, {}};
  for (int i = 0; i < B * T; ++i) b.input_ids.push_back(static_cast<int32_t>(rng() % V));
  b.labels = b.input_ids;
  return b;
}

// Model FLOPs of one step (2 per multiply-add; attention's recomputation in backward not
// counted): every matmul three times (forward, dX, dW), the head only for rows with a target;
// attention's q·k and p·v over the causal pairs, also three times.
double step_flops(const ModelConfig& c, int B, int T) {
  const double E = c.n_embd, I = c.inner_dim(), V = c.vocab_size, M = static_cast<double>(B) * T;
  const double block = M * (3 * E * E + E * E + 2 * E * I);
  const double head = B * (T - 1.0) * V * E;
  const double attention = 2.0 * B * (T * (T + 1) / 2.0) * E;
  return 2.0 * 3.0 * (c.n_layer * (block + attention) + head);
}

struct Shape {
  int B, T;
};

std::vector<Shape> parse_shapes(const std::string& s) {
  std::vector<Shape> out;
  size_t at = 0;
  while (at < s.size()) {
    const size_t comma = s.find(',', at);
    const std::string item = s.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    const size_t x = item.find('x');
    out.push_back({std::stoi(item.substr(0, x)), std::stoi(item.substr(x + 1))});
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run_shape(const ModelConfig& c, ModelWeights& w, Shape s, int steps, bool bf16, double peak) {
  const TrainBatch batch = random_batch(s.B, s.T, c.vocab_size, 1234 + s.B * 1000 + s.T);
  TrainWorkspace ws(TrainOptions{bf16});
  std::vector<float> grads(w.params.size(), 0.0f);
  AdamW opt(w.params.size(), {6e-4, 0.9, 0.999, 1e-8, 0.01});
  opt.set_decay_ranges(hf_decay_ranges(w));
  std::vector<double> step_s, fwd_s, fb_s, opt_s;
  float loss = 0.0f;
  for (int i = 0; i <= steps; ++i) {  // step 0 warms up (allocations, page faults)
    auto t0 = Clock::now();
    float* g = grads.data();
    const long n = static_cast<long>(grads.size());
#pragma omp parallel for schedule(static)
    for (long j = 0; j < n; ++j) g[j] = 0.0f;
    loss = forward_backward(c, w, batch, grads, ws);
    const double fb = seconds_since(t0);
    auto t1 = Clock::now();
    const double norm = grad_norm(grads.data(), grads.size());
    opt.step(w.params.data(), grads.data(), -1.0, clip_coefficient(norm, 1.0));
    const double o = seconds_since(t1);
    const double total = seconds_since(t0);
    t0 = Clock::now();
    evaluate_loss(c, w, batch, ws);  // the forward alone, for the split (not part of a step)
    const double f = seconds_since(t0);
    if (i == 0) continue;
    step_s.push_back(total);
    fb_s.push_back(fb);
    opt_s.push_back(o);
    fwd_s.push_back(f);
  }
  const double tokens = static_cast<double>(s.B) * s.T;
  const double best = *std::min_element(step_s.begin(), step_s.end()), med = median(step_s);
  std::printf("%s B=%d T=%d: step best %.3f s (%.1f tokens/s), median %.3f s (%.1f tokens/s); loss %.3f\n",
              bf16 ? "bf16" : "fp32", s.B, s.T, best, tokens / best, med, tokens / med, loss);
  std::printf(
      "   split (median): forward %.3f s, backward %.3f s, optimizer (zero+norm+AdamW) %.3f s; "
      "%.1f GFLOP/s model FLOPs over the step (%.0f%% of the FMA peak); workspace %.0f MiB; peak RSS %.0f MiB\n",
      median(fwd_s), median(fb_s) - median(fwd_s), median(opt_s), step_flops(c, s.B, s.T) / best / 1e9,
      100 * step_flops(c, s.B, s.T) / best / 1e9 / peak,
      ws.bytes() / 1048576.0, peak_rss_mb());
  if (bf16) {
    std::vector<uint16_t> w16(w.params.size());
    std::vector<double> conv;
    for (int i = 0; i < 3; ++i) {
      const auto t0 = Clock::now();
      kernels::to_bf16(w16.data(), w.params.data(), w.params.size());
      conv.push_back(seconds_since(t0));
    }
    std::printf("   bf16 weight conversion (once per pass): %.3f s\n", median(conv));
  }
  std::fflush(stdout);
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= s.size()) {
    const size_t comma = s.find(',', at);
    out.push_back(s.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  prefer_passive_openmp_wait(argv);  // as the CLI does (may re-exec; OMP_WAIT_POLICY=... overrides)
  std::string shapes = "4x64,8x128";
  std::string precisions = "fp32,bf16";
  std::string model = "gpt2";
  int steps = 3, threads = 0, layers = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--shapes")
      shapes = argv[i + 1];
    else if (a == "--steps")
      steps = std::atoi(argv[i + 1]);
    else if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--model")
      model = argv[i + 1];
    else if (a == "--layers")
      layers = std::atoi(argv[i + 1]);
    else if (a == "--precision")
      precisions = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  ModelConfig c;  // defaults: GPT-2 124M (12 layers, 768 wide, 50257 tokens, gelu_new, tied head)
  if (model == "gpt2-medium") {
    c.n_layer = 24;
    c.n_embd = 1024;
    c.n_head = 16;
  } else if (model != "gpt2") {
    std::fprintf(stderr, "--model: gpt2 or gpt2-medium, not %s\n", model.c_str());
    return 2;
  }
  if (layers > 0) c.n_layer = layers;
  std::printf("%s shape, %d layers, %d wide; OPENBLAS_CORETYPE %s; OMP_WAIT_POLICY %s; load average %s\n",
              model.c_str(), c.n_layer, c.n_embd,
              std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "(auto)", openmp_wait_policy(),
              bench::load_average().c_str());
  std::fflush(stdout);
  for (const Shape s : parse_shapes(shapes))
    for (const std::string& p : split_commas(precisions)) {
      if (p != "fp32" && p != "bf16") {
        std::fprintf(stderr, "--precision: fp32 or bf16, not %s\n", p.c_str());
        return 2;
      }
      // A child per row (forked before this process starts any OpenMP thread): its own peak RSS.
      const pid_t pid = fork();
      if (pid == 0) {
        if (threads > 0) kernels::set_num_threads(threads);
        ModelWeights w = allocate_weights(c);
        init_random_weights(c, w, 42);
        const double peak = kernels::fma_peak_gflops();
        std::printf("[%.1fM parameters; %d threads; kernels %s; fp32 FMA peak %.0f GFLOP/s]\n", w.params.size() / 1e6,
                    kernels::num_threads(), kernels::isa_description().c_str(), peak);
        run_shape(c, w, s, steps, p == "bf16", peak);
        _exit(0);
      }
      int status = 0;
      waitpid(pid, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "row %s %dx%d failed\n", p.c_str(), s.B, s.T);
        return 1;
      }
    }
  std::printf("load average after: %s\n", bench::load_average().c_str());
  return 0;
}
