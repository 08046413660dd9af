// Inference benchmark on a GPT-2-124M-shaped model with random weights written by the project
// itself (same HF-folder loader path as real checkpoints).
//
//   bench_generate [--preset gpt2] [--dir /tmp/lmforge-bench-gpt2] [--prefill 512] [--decode 128] [--threads 2]
//
// Reports: measured memory read bandwidth, prefill tokens/s, decode tokens/s at batch 1 and 16,
// peak RSS, and the bandwidth floor of batch-1 decode (weight bytes per token / bandwidth).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include <omp.h>

#include "lmforge/kernels/kernels.h"
#include "lmforge/model/model.h"
#include "lmforge/model/save.h"
#include "lmforge/model/weights.h"

using namespace lmforge;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Read bandwidth (GB/s): summing a 1 GiB array with all threads, best of 5.
double measure_bandwidth() {
  const size_t n = (1ull << 30) / sizeof(float);
  std::vector<float> a(n, 1.0f);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
    float total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (size_t i = 0; i < n; i += 8) {
      float s = 0;
      for (int j = 0; j < 8; ++j) s += a[i + j];
      total += s;
    }
    const double t = seconds_since(t0);
    if (total < 0) std::printf("impossible\n");
    best = std::max(best, n * sizeof(float) / t / 1e9);
  }
  return best;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// tokens/s of `steps` single-token forwards on `rows` rows after a `prompt`-token prefill.
double decode_rate(const Model& m, int rows, int prompt, int steps) {
  auto s = m.start(rows, prompt + steps);
  const int V = m.vocab_size();
  std::vector<float> logits(static_cast<size_t>(rows) * V);
  std::vector<int32_t> tok(static_cast<size_t>(rows) * prompt), pos(tok.size());
  std::vector<uint8_t> mask(tok.size(), 1);
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>((i * 7919) % V), pos[i] = static_cast<int32_t>(i % prompt);
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
  int prefill = 512, decode = 128, threads = 0, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--dir") dir = v;
    else if (k == "--prefill") prefill = std::stoi(v);
    else if (k == "--decode") decode = std::stoi(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else { std::fprintf(stderr, "unknown option %s\n", k.c_str()); return 2; }
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
  auto model = Model::load(dir);
  const double params = static_cast<double>(model->weights().num_parameters());
  // Batch-1 decode streams every matrix once per token (wte as the tied head; wpe rows are negligible).
  const ModelConfig& c = model->config();
  const double weight_bytes = (params - static_cast<double>(c.n_positions) * c.n_embd) * sizeof(float);
  const double bw = measure_bandwidth();
  const double floor = bw * 1e9 / weight_bytes;

  auto best = [&](auto fn) {
    double b = 0;
    for (int r = 0; r < reps; ++r) b = std::max(b, fn());
    return b;
  };
  const double pf = best([&] { return prefill_rate(*model, prefill); });
  const double d1 = best([&] { return decode_rate(*model, 1, 16, decode); });
  const double d16 = best([&] { return decode_rate(*model, 16, 16, decode / 2); });

  std::printf("model            %s shape, %.1fM parameters, fp32, %d threads, avx2 %s\n", preset.c_str(), params / 1e6,
              kernels::num_threads(), kernels::using_avx2() ? "on" : "off");
  std::printf("bandwidth        %.1f GB/s (read, measured)\n", bw);
  std::printf("decode floor     %.1f tok/s (%.0f MB of weights per token)\n", floor, weight_bytes / 1e6);
  std::printf("prefill          %.1f tok/s (%d-token prompt)\n", pf, prefill);
  std::printf("decode batch 1   %.1f tok/s (%.0f%% of floor)\n", d1, 100 * d1 / floor);
  std::printf("decode batch 16  %.1f tok/s (%.1fx batch 1)\n", d16, d16 / d1);
  std::printf("peak RSS         %.0f MB\n", peak_rss_mb());
  return 0;
}
