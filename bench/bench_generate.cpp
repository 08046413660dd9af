// Inference benchmark on a GPT-2-shaped model with random weights written by the project itself
// (same HF-folder loader path as real checkpoints). See docs/PERFORMANCE.md.
//
//   bench_generate [--preset gpt2|gpt2-medium] [--dir DIR] [--prefill 512] [--decode 128] [--prompt 16]
//                  [--threads N] [--reps 5] [--dtype float32|bfloat16|float16|int8] [--sweep]
//
// Reports: prefill tokens/s, decode tokens/s at batch 1 and 16, peak RSS, one GEMV pass over all
// the weights (how close the decode kernel gets to the memory), the read bandwidth of a STREAM-like
// sum over a 512 MiB array with all threads, and the bandwidth floor of batch-1 decode (weight
// bytes per token / that bandwidth). Every figure is the best of --reps runs; the load average of
// the machine is printed so noisy runs can be told apart. --sweep instead times one pass over
// all the weights at 1..32 activation rows, matmul_wt against plain OpenBLAS sgemm.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>

#include "lmforge/kernels/kernels.h"
#include "lmforge/model/model.h"
#include "lmforge/model/save.h"
#include "lmforge/model/weights.h"

using namespace lmforge;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// CPU time the other processes of the machine used while we ran: busy time from /proc/stat minus
// our own (getrusage), as a fraction of all CPUs over the interval. Linux only (else 0).
class OtherCpuUse {
 public:
  OtherCpuUse() : start_(sample()), t0_(Clock::now()) {}
  double fraction() const {
    const Sample now = sample();
    const double wall = seconds_since(t0_) * std::max(1u, std::thread::hardware_concurrency());
    const double other = (now.busy - start_.busy) - (now.self - start_.self);
    return wall > 0 ? std::clamp(other / wall, 0.0, 1.0) : 0.0;
  }

 private:
  struct Sample {
    double busy = 0, self = 0;  // seconds
  };
  static Sample sample() {
    Sample s;
    std::ifstream f("/proc/stat");
    std::string cpu;
    double v[8] = {};
    if (f >> cpu >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7])
      s.busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / sysconf(_SC_CLK_TCK);
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    s.self = u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
    return s;
  }
  Sample start_;
  Clock::time_point t0_;
};

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// Resident set size now (VmRSS), MB.
double rss_now_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

// Sum of a[0..n) with 4 independent 8-wide accumulators: loads are the only bottleneck.
__attribute__((target("avx2"))) float sum_avx2(const float* a, size_t n) {
  typedef float v8 __attribute__((vector_size(32)));
  v8 s0{}, s1{}, s2{}, s3{};
  for (size_t i = 0; i + 32 <= n; i += 32) {
    v8 a0, a1, a2, a3;
    __builtin_memcpy(&a0, a + i, 32);
    __builtin_memcpy(&a1, a + i + 8, 32);
    __builtin_memcpy(&a2, a + i + 16, 32);
    __builtin_memcpy(&a3, a + i + 24, 32);
    s0 += a0, s1 += a1, s2 += a2, s3 += a3;
  }
  v8 s = (s0 + s1) + (s2 + s3);
  float t = 0;
  for (int j = 0; j < 8; ++j) t += s[j];
  return t;
}

float sum_portable(const float* a, size_t n) {
  float s[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j];
  float t = 0;
  for (float v : s) t += v;
  return t;
}

// Read bandwidth (GB/s), STREAM-like: each kernel thread sums its own contiguous part of a
// 512 MiB array (far larger than the caches), best of `reps`.
double measure_bandwidth(int reps) {
  const size_t n = (512ull << 20) / sizeof(float);
  std::vector<float> a(n);
  const int parts = kernels::num_threads();
  auto part = [&](int t) { return std::pair<size_t, size_t>(n / parts * t / 32 * 32, t + 1 == parts ? n : n / parts * (t + 1) / 32 * 32); };
  kernels::parallel_for(parts, [&](int t) { std::fill(a.data() + part(t).first, a.data() + part(t).second, 1.0f); });
  std::vector<float> sums(parts);
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = Clock::now();
    kernels::parallel_for(parts, [&](int t) {
      const auto [i0, i1] = part(t);
      sums[t] = kernels::using_avx2() ? sum_avx2(a.data() + i0, i1 - i0) : sum_portable(a.data() + i0, i1 - i0);
    });
    const double t = seconds_since(t0);
    float total = 0;
    for (float v : sums) total += v;
    if (total != static_cast<float>(n)) std::printf("(bandwidth sum %g, expected %zu)\n", total, n);
    best = std::max(best, n * sizeof(float) / t / 1e9);
  }
  return best;
}

// Bytes a decode step reads for one weight matrix in its storage type (int8: and its row scales).
double matrix_bytes(const LinearWeights& l) {
  const kernels::WeightMatrix m = l.matrix();
  return static_cast<double>(m.N) * m.K * kernels::weight_type_size(m.type) + (m.scales ? 4.0 * m.N : 0.0);
}

// The weight matrices in decode order: every block's, then the head (the embedding when tied).
std::vector<const LinearWeights*> decode_matrices(const ModelWeights& w) {
  std::vector<const LinearWeights*> mats;
  for (const auto& b : w.blocks)
    for (const LinearWeights* l : {&b.qkv, &b.attn_out, &b.fc_in, &b.fc_out}) mats.push_back(l);
  mats.push_back(&w.lm_head);
  return mats;
}

// GB/s of one matmul_wt(M = 1) pass over every weight matrix in decode order (blocks, then the
// head): the decode GEMV alone, without attention, norms or the rest of the forward.
double gemv_pass_rate(const Model& m) {
  const std::vector<const LinearWeights*> mats = decode_matrices(m.weights());
  double bytes = 0;
  size_t widest = 0;
  for (auto* l : mats) {
    bytes += matrix_bytes(*l);
    widest = std::max<size_t>(widest, std::max(l->in, l->out));
  }
  std::vector<float> x(widest, 0.01f), y(widest);
  auto t0 = Clock::now();
  for (auto* l : mats) kernels::matmul_wt(x.data(), 1, l->matrix(), l->b, y.data());
  return bytes / seconds_since(t0) / 1e9;
}

// --sweep: ms and GFLOP/s of one pass over every weight matrix at M activation rows, through
// matmul_wt (the engine's choice) and through OpenBLAS sgemm, weights cold (read from memory).
void gemv_sweep(const Model& m, int reps) {
  const std::vector<const LinearWeights*> mats = decode_matrices(m.weights());
  double macs = 0;
  size_t widest = 0;
  for (auto* l : mats) {
    macs += static_cast<double>(l->in) * l->out;
    widest = std::max<size_t>(widest, std::max(l->in, l->out));
  }
  std::printf("%4s  %22s  %22s\n", "M", "matmul_wt ms (GFLOP/s)", "sgemm ms (GFLOP/s)");
  for (int M : {1, 2, 3, 4, 6, 8, 12, 16, 24, 32}) {
    std::vector<float> x(static_cast<size_t>(M) * widest, 0.01f), y(static_cast<size_t>(M) * widest);
    double best[2] = {1e9, 1e9};
    for (int blas = 0; blas < 2; ++blas)
      for (int r = 0; r < reps; ++r) {
        // OpenBLAS's own OpenMP threads spin for a while after a call: let them sleep first.
        if (!blas) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        auto t0 = Clock::now();
        for (auto* l : mats) {
          if (blas)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, l->out, l->in, 1.0f, x.data(), l->in, l->w, l->in,
                        0.0f, y.data(), l->out);
          else
            kernels::matmul_wt(x.data(), M, l->in, l->w, l->out, nullptr, y.data());
        }
        best[blas] = std::min(best[blas], seconds_since(t0));
      }
    std::printf("%4d  %10.1f (%7.1f)    %10.1f (%7.1f)\n", M, 1e3 * best[0], 2 * macs * M / best[0] / 1e9, 1e3 * best[1],
                2 * macs * M / best[1] / 1e9);
  }
}

// tokens/s of `steps` single-token forwards on `rows` rows after a `prompt`-token prefill.
double decode_rate(const Model& m, int rows, int prompt, int steps) {
  auto s = m.start(rows, prompt + steps);
  const int V = m.vocab_size();
  std::vector<float> logits(static_cast<size_t>(rows) * V);
  std::vector<int32_t> tok(static_cast<size_t>(rows) * prompt), pos(tok.size());
  std::vector<uint8_t> mask(tok.size(), 1);
  for (size_t i = 0; i < tok.size(); ++i)
    tok[i] = static_cast<int32_t>((i * 7919) % V), pos[i] = static_cast<int32_t>(i % prompt);
  s->forward(prompt, tok.data(), pos.data(), mask.data(), logits.data());
  std::vector<int32_t> t1(rows), p1(rows);
  std::vector<uint8_t> m1(rows, 1);
  auto t0 = Clock::now();
  for (int k = 0; k < steps; ++k) {
    for (int r = 0; r < rows; ++r) t1[r] = static_cast<int32_t>((k * 31 + r) % V), p1[r] = prompt + k;
    s->forward(1, t1.data(), p1.data(), m1.data(), logits.data());
  }
  return rows * steps / seconds_since(t0);
}

// tokens/s of one forward over a T-token prompt (last-position logits, as generation does).
double prefill_rate(const Model& m, int T) {
  auto s = m.start(1, T);
  std::vector<int32_t> tok(T), pos(T);
  std::vector<uint8_t> mask(T, 1);
  for (int i = 0; i < T; ++i) tok[i] = (i * 7919) % m.vocab_size(), pos[i] = i;
  std::vector<float> logits(m.vocab_size());
  auto t0 = Clock::now();
  s->forward(T, tok.data(), pos.data(), mask.data(), logits.data());
  return T / seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string preset = "gpt2", dir;
  kernels::WeightType dtype = kernels::WeightType::F32;
  int prefill = 512, decode = 128, prompt = 16, threads = 0, reps = 5;
  bool sweep = false;
  for (int i = 1; i < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--sweep") {
      sweep = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) { std::fprintf(stderr, "option %s needs a value\n", k.c_str()); return 2; }
    std::string v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--dir") dir = v;
    else if (k == "--prefill") prefill = std::stoi(v);
    else if (k == "--decode") decode = std::stoi(v);
    else if (k == "--prompt") prompt = std::stoi(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--dtype") {
      const auto type = kernels::weight_type_from_string(v);
      if (!type) { std::fprintf(stderr, "unknown --dtype %s (float32, bfloat16, float16, int8)\n", v.c_str()); return 2; }
      dtype = *type;
    }
    else { std::fprintf(stderr, "unknown option %s\n", k.c_str()); return 2; }
  }
  if (preset != "gpt2" && preset != "gpt2-medium") {
    std::fprintf(stderr, "unknown preset %s (gpt2, gpt2-medium)\n", preset.c_str());
    return 2;
  }
  if (threads > 0) kernels::set_num_threads(threads);
  if (dir.empty()) dir = "/tmp/lmforge-bench-" + preset;
  if (!std::filesystem::exists(std::filesystem::path(dir) / "model.safetensors")) {
    ModelConfig c;
    if (preset == "gpt2-medium") c.n_layer = 24, c.n_head = 16, c.n_embd = 1024;
    c.bos_token_id = c.eos_token_id = 50256;
    ModelWeights w = allocate_weights(c);
    init_random_weights(c, w, 1);
    save_pretrained(dir, c, w);
  }
  const std::string load_before = load_average();
  auto model = Model::load(dir, dtype);
  const OtherCpuUse other;
  if (sweep) {
    if (dtype != kernels::WeightType::F32) {
      std::fprintf(stderr, "--sweep compares with OpenBLAS sgemm: float32 only\n");
      return 2;
    }
    std::printf("load average     %s\n", load_before.c_str());
    gemv_sweep(*model, reps);
    return 0;
  }
  const ModelConfig& c = model->config();
  const ModelWeights& w = model->weights();
  // Batch-1 decode streams every matrix once per token in its storage type (wte as the tied head)
  // plus the fp32 biases and norms; of wpe it reads one row (negligible).
  double matrix_elems = 0, bytes_of_matrices = 0;
  for (const LinearWeights* l : decode_matrices(w)) {
    matrix_elems += static_cast<double>(l->in) * l->out;
    bytes_of_matrices += matrix_bytes(*l);
  }
  const double wpe = c.arch == Arch::GPT2 ? static_cast<double>(c.n_positions) * c.n_embd : 0.0;
  const double fp32_rest = static_cast<double>(w.params.size()) -
                           (w.matrix_type == kernels::WeightType::F32 ? matrix_elems : 0.0) - wpe;
  const double params = matrix_elems + fp32_rest + wpe;
  const double weight_bytes = bytes_of_matrices + 4.0 * fp32_rest;

  auto best = [&](auto fn) {
    double b = 0;
    for (int r = 0; r < reps; ++r) b = std::max(b, fn());
    return b;
  };
  const double pf = best([&] { return prefill_rate(*model, prefill); });
  // Batch 1 and batch 16 alternate, so that both see the same machine (its bandwidth drifts).
  double d1 = 0, d16 = 0;
  for (int r = 0; r < reps; ++r) {
    d1 = std::max(d1, decode_rate(*model, 1, prompt, decode));
    d16 = std::max(d16, decode_rate(*model, 16, prompt, std::max(1, decode / 2)));
  }
  const double gemv_bw = best([&] { return gemv_pass_rate(*model); });
  const double rss = peak_rss_mb(), rss_now = rss_now_mb();  // before the bandwidth array
  const double bw = measure_bandwidth(reps);
  const double floor = bw * 1e9 / weight_bytes;

  std::printf("model            %s shape, %.1fM parameters, %s weight matrices, %d threads, avx2 %s\n", preset.c_str(),
              params / 1e6, kernels::to_string(w.matrix_type),
              kernels::num_threads(), kernels::using_avx2() ? "on" : "off");
  std::printf("machine          load average %s (start) / %s (end); other processes used %.0f%% of the CPUs\n",
              load_before.c_str(), load_average().c_str(), 100 * other.fraction());
  std::printf("bandwidth        %.1f GB/s (read, 512 MiB, all threads, best of %d)\n", bw, reps);
  std::printf("decode floor     %.1f tok/s (%.0f MB of weights per token)\n", floor, weight_bytes / 1e6);
  std::printf("gemv pass        %.1f GB/s (all weights once at M=1, %.1f ms = %.0f%% of bandwidth)\n", gemv_bw,
              1e3 * weight_bytes / gemv_bw / 1e9, 100 * gemv_bw / bw);
  std::printf("prefill          %.1f tok/s (%d-token prompt)\n", pf, prefill);
  std::printf("decode batch 1   %.1f tok/s (%.0f%% of floor; %d steps after a %d-token prompt)\n", d1, 100 * d1 / floor,
              decode, prompt);
  // Batch 16 is compute-bound (2 flops per weight per row), batch 1 memory-bound: their ratio moves
  // with the machine's bandwidth at the moment, so both the ratio and the GFLOP/s are printed.
  std::printf("decode batch 16  %.1f tok/s (%.1fx batch 1; %.0f GFLOP/s in the matrix products)\n", d16, d16 / d1,
              2.0 * matrix_elems * d16 / 1e9);
  std::printf("peak RSS         %.0f MB (before the bandwidth probe; %.0f MB resident after the runs)\n", rss, rss_now);
  return 0;
}
