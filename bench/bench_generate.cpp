// Inference benchmark: decode and prefill speed of a GPT-2 / GPT-J checkpoint next to the memory
// bandwidth floor, in one or several weight types. Without --dir it runs on a GPT-2-shaped model
// with random weights that it writes once through save_pretrained (same HF-folder loader path as
// real checkpoints); --dir loads an existing folder as is (e.g. one written by
// make_random_checkpoint --preset gpt-j-6b). See docs/PERFORMANCE.md.
//
//   bench_generate [--preset gpt2|gpt2-medium] [--dir DIR]
//                  [--dtype float32|bfloat16|float16|int8|int8_dynamic|bfloat16_compute|LIST|all]
//                  [--batch 12] [--prefill 512] [--decode 128] [--prompt 16] [--threads N] [--reps 5]
//                  [--max_rss_gb X] [--sweep]
//
// Reports: load time and memory (peak RSS as getrusage's ru_maxrss, VmHWM/VmRSS of /proc/self/status,
// and the sampled peaks of its anonymous and file-backed parts: mmap'd checkpoint pages count as
// file-backed), prefill tokens/s (--prefill 0 skips it), decode tokens/s at batch 1 and at the
// micro-batch --batch (12, seed 002's; 16 is the GEMV kernel's widest), one GEMV pass over all the
// weights (how close the decode kernel gets to the memory), the read bandwidth of a STREAM-like sum
// over a 512 MiB array with all threads, and the bandwidth floor of batch-1 decode (bytes read per
// token: the weights in their type and the run's average KV-cache reads, / that bandwidth). Every
// figure is the best of --reps runs; the load average of the machine is printed so noisy runs can
// be told apart. As the host's bandwidth drifts, every batch-1 run is also paired with a plain read
// of the weights taken just before it ("paired floor": the median of the runs' ratios; the KV-cache
// bytes counted at that read's rate), and every micro-batch run with the batch-1 run just before
// it ("paired ratio").
//
// --dtype takes a comma-separated list (or "all" = float32,bfloat16,int8,int8_dynamic,
// bfloat16_compute): each type then runs in its own process (/proc/self/exe again), so each gets
// its own load time and peak RSS, and a table of all of them closes the run. A type this build
// does not know (int8_dynamic before it exists) is reported as skipped; so is one whose estimated
// memory does not fit in MemAvailable (or in --max_rss_gb), e.g. float32 GPT-J-6B (24 GB) on a
// 24 GB machine. bfloat16_compute's prefill (and batches over 16) are compared with the measured
// vdpbf16ps peak where the CPU has AVX-512 BF16.
// --max_rss_gb X also aborts a run whose VmRSS passes X GB (checked every 20 ms).
//
// Models over 2 GB of weights per token default to --decode 8 --prefill 64 --prompt 1 --reps 2
// (a batch-12 decode step of GPT-J-6B is ≈ 150 GFLOP); flags given explicitly win.
//
// --sweep instead times one pass over all the weights at 1..32 activation rows, matmul_wt against
// plain OpenBLAS sgemm (float32 only).
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>

#include "bench_util.h"
#include "lmforge/error.h"
#include "lmforge/kernels/gemm_bf16.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/config.h"
#include "lmforge/model/model.h"
#include "lmforge/model/save.h"
#include "lmforge/model/weights.h"

extern char** environ;

using namespace lmforge;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

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

// Sum of the 32-bit words of n bytes, read in whole 128-byte steps (a shorter tail is skipped), as
// integers: weight bytes read as floats could be denormals or NaNs, which some CPUs add slowly.
__attribute__((target("avx2"))) uint32_t sum_words_avx2(const void* p, size_t n) {
  typedef uint32_t v8 __attribute__((vector_size(32)));
  const char* a = static_cast<const char*>(p);
  v8 s0{}, s1{}, s2{}, s3{};
  for (size_t i = 0; i + 128 <= n; i += 128) {
    v8 a0, a1, a2, a3;
    __builtin_memcpy(&a0, a + i, 32);
    __builtin_memcpy(&a1, a + i + 32, 32);
    __builtin_memcpy(&a2, a + i + 64, 32);
    __builtin_memcpy(&a3, a + i + 96, 32);
    s0 += a0, s1 += a1, s2 += a2, s3 += a3;
  }
  v8 s = (s0 + s1) + (s2 + s3);
  uint32_t t = 0;
  for (int j = 0; j < 8; ++j) t += s[j];
  return t;
}

// The same in whole 32-byte steps, for CPUs without AVX2.
uint32_t sum_words_portable(const void* p, size_t n) {
  const char* a = static_cast<const char*>(p);
  uint32_t s[8] = {};
  for (size_t i = 0; i + 32 <= n; i += 32)
    for (int j = 0; j < 8; ++j) {
      uint32_t v;
      std::memcpy(&v, a + i + 4 * j, 4);
      s[j] += v;
    }
  uint32_t t = 0;
  for (uint32_t v : s) t += v;
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
  std::vector<uint32_t> sums(parts);
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = Clock::now();
    kernels::parallel_for(parts, [&](int t) {
      const auto [i0, i1] = part(t);
      const float* p = a.data() + i0;
      const size_t bytes = (i1 - i0) * sizeof(float);
      sums[t] = kernels::using_avx2() ? sum_words_avx2(p, bytes) : sum_words_portable(p, bytes);
    });
    const double t = seconds_since(t0);
    uint32_t total = 0;
    for (uint32_t v : sums) total += v;
    uint32_t one;  // every word is 1.0f: the sum is n copies of its bits (mod 2^32)
    const float f = 1.0f;
    std::memcpy(&one, &f, sizeof one);
    if (total != static_cast<uint32_t>(n * one)) std::printf("(bandwidth sum %u, expected %u)\n", total, static_cast<uint32_t>(n * one));
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

// GB/s of one plain read of the bytes a batch-1 decode step streams (every weight matrix in decode
// order): the bandwidth floor of this moment on these very pages. One parallel region: each thread
// reads its share of every matrix in turn, with no barrier between matrices (the decode has one
// after each). The host's bandwidth drifts by ±20-50 % from minute to minute, so each decode run
// is compared with such a read taken just before it as well as with the 512 MiB probe.
double weights_read_rate(const Model& m) {
  std::vector<std::pair<const char*, size_t>> spans;  // each matrix's bytes
  double bytes = 0;
  for (const LinearWeights* l : decode_matrices(m.weights())) {
    const kernels::WeightMatrix w = l->matrix();
    spans.emplace_back(static_cast<const char*>(w.data), static_cast<size_t>(w.N) * w.K * kernels::weight_type_size(w.type));
    bytes += spans.back().second;
  }
  const int parts = kernels::num_threads();
  std::vector<uint32_t> sums(parts);
  const auto t0 = Clock::now();
  kernels::parallel_for(parts, [&](int t) {
    for (const auto& [data, n] : spans) {
      const size_t i0 = n / parts * t / 128 * 128, i1 = t + 1 == parts ? n : n / parts * (t + 1) / 128 * 128;
      sums[t] += kernels::using_avx2() ? sum_words_avx2(data + i0, i1 - i0) : sum_words_portable(data + i0, i1 - i0);
    }
  });
  const double rate = bytes / seconds_since(t0) / 1e9;
  volatile uint32_t sink = 0;  // keeps the reads
  for (uint32_t v : sums) sink = sink + v;
  return rate;
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

// Fields of /proc/self/status in MB (VmRSS, VmHWM, RssAnon, RssFile, ...); 0 when absent.
std::map<std::string, double> proc_status_mb() {
  std::map<std::string, double> m;
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos || line.find(" kB") == std::string::npos) continue;
    try {
      m[line.substr(0, colon)] = std::stod(line.substr(colon + 1)) / 1024.0;
    } catch (...) {
    }
  }
  return m;
}

double mem_available_gb() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb / 1024.0 / 1024.0;
  return 0;
}

// Samples VmRSS, RssAnon and RssFile every 20 ms and keeps their peaks (the anonymous and the
// file-backed part peak at different moments of a load); with a limit, ends the process when
// VmRSS passes it.
class RssWatch {
 public:
  explicit RssWatch(double limit_mb) : limit_mb_(limit_mb), thread_([this] { loop(); }) {}
  ~RssWatch() {
    stop_ = true;
    thread_.join();
  }
  double peak_anon() const { return anon_; }
  double peak_file() const { return file_; }
  double peak_rss() const { return rss_; }
  void sample() {
    auto m = proc_status_mb();
    rss_ = std::max(rss_.load(), m["VmRSS"]);
    anon_ = std::max(anon_.load(), m["RssAnon"]);
    file_ = std::max(file_.load(), m["RssFile"]);
    if (limit_mb_ > 0 && m["VmRSS"] > limit_mb_) {
      std::fprintf(stderr, "bench_generate: aborting: VmRSS %.0f MB passed --max_rss_gb (%.0f MB): RssAnon %.0f MB, RssFile %.0f MB\n",
                   m["VmRSS"], limit_mb_, m["RssAnon"], m["RssFile"]);
      std::fflush(stderr);
      std::_Exit(3);
    }
  }

 private:
  void loop() {
    while (!stop_) {
      sample();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  double limit_mb_;
  std::atomic<bool> stop_{false};
  std::atomic<double> rss_{0}, anon_{0}, file_{0};
  std::thread thread_;
};

// Parameter counts of a config without allocating it: the weight matrices (and wte), which a
// low-precision load keeps in that type, and the rest (biases, norms, wpe), kept in fp32.
struct ParamCounts {
  double matrices = 0, rest = 0, matrix_rows = 0, largest = 0;
};
ParamCounts count_params(const ModelConfig& c) {
  const double E = c.n_embd, I = c.inner_dim(), V = c.vocab_size, P = c.n_positions, L = c.n_layer;
  const bool untied = !c.tie_word_embeddings;
  ParamCounts n;
  n.matrices = V * E + L * (4 * E * E + 2 * I * E) + (untied ? V * E : 0);
  n.matrix_rows = V + L * (4 * E + I + E) + (untied ? V : 0);
  if (c.arch == Arch::GPT2)
    n.rest = P * E + L * (9 * E + I) + 2 * E;
  else
    n.rest = L * (3 * E + I) + 2 * E + (untied ? V : 0);
  n.largest = std::max({V * E, I * E, 3 * E * E});
  return n;
}

// Bytes of anonymous memory a load in `type` needs at its peak: the weights in that type (int8:
// and a scale per row), the fp32 rest, and one fp32 tensor (two for GPT-2's transposed Conv1D)
// of conversion scratch.
double load_bytes_estimate(const ModelConfig& c, kernels::WeightType type) {
  const ParamCounts n = count_params(c);
  const size_t size = kernels::weight_type_size(type);
  if (size == 4) return 4 * (n.matrices + n.rest);
  return n.matrices * size + (size == 1 ? 4 * n.matrix_rows : 0) + 4 * n.rest + 4 * n.largest * (c.arch == Arch::GPT2 ? 2 : 1);
}

double dir_bytes(const fs::path& dir) {
  double b = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    if (e.is_regular_file() && (f.ends_with(".safetensors") || f.ends_with(".bin"))) b += e.file_size();
  }
  return b;
}

struct Options {
  std::string preset = "gpt2", dir;
  std::vector<std::string> dtypes = {"float32"};
  int prefill = 512, decode = 128, prompt = 16, threads = 0, reps = 5, batch = 12;
  bool prefill_set = false, decode_set = false, prompt_set = false, reps_set = false;
  double max_rss_gb = 0;
  bool dir_given = false;
  bool sweep = false;
  int result_fd = -1;  // internal: where a child of a --dtype list reports its figures
};

// One line of "key value" pairs for the parent of a --dtype list.
void report_result(const Options& o, const std::map<std::string, std::string>& r) {
  if (o.result_fd < 0) return;
  std::string line;
  for (const auto& [k, v] : r) line += k + " " + v + " ";
  line += "\n";
  if (::write(o.result_fd, line.data(), line.size()) < 0) std::perror("bench_generate: result pipe");
}

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// "91 / 88 / 95 %" and "7.1 / 8.3x": every run's figure, in run order.
std::string joined(const std::vector<double>& v, const char* fmt, double scale, const char* unit) {
  std::string out;
  char b[32];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(b, sizeof b, fmt, scale * v[i]);
    out += (i ? " / " : "") + std::string(b);
  }
  return out + unit;
}
std::string percents(const std::vector<double>& v) { return joined(v, "%.0f", 100, " %"); }
std::string times(const std::vector<double>& v) { return joined(v, "%.1f", 1, "x"); }

int run_one(Options o, const std::string& dtype_name) {
  std::map<std::string, std::string> result{{"dtype", dtype_name}};
  const auto type = kernels::weight_type_from_string(dtype_name);
  if (!type) {
    std::printf("dtype %s: not available in this build (skipped)\n", dtype_name.c_str());
    result["status"] = "unknown-dtype";
    report_result(o, result);
    return 0;
  }
  const ModelConfig cfg = load_model_config(fs::path(o.dir) / "config.json");
  const double need_gb = load_bytes_estimate(cfg, *type) / 1e9, avail_gb = mem_available_gb();
  if (need_gb > 0.9 * avail_gb || (o.max_rss_gb > 0 && need_gb > o.max_rss_gb)) {
    std::printf("dtype %s: skipped: a load needs ≈ %.1f GB of memory, %.1f GB available%s\n", dtype_name.c_str(), need_gb,
                avail_gb, o.max_rss_gb > 0 ? (", --max_rss_gb " + num(o.max_rss_gb)).c_str() : "");
    result["status"] = "too-big";
    char need[32];
    std::snprintf(need, sizeof need, "%.1f", need_gb);
    result["need_gb"] = need;
    report_result(o, result);
    return 0;
  }
  if (o.sweep && *type != kernels::WeightType::F32) {
    std::fprintf(stderr, "--sweep compares with OpenBLAS sgemm: float32 only\n");
    return 2;
  }
  // Big models: few steps unless asked otherwise (a batch-12 step of GPT-J-6B is ≈ 150 GFLOP).
  const ParamCounts pc = count_params(cfg);
  const bool big = pc.matrices * kernels::weight_type_size(*type) > 2e9;
  if (big) {
    if (!o.decode_set) o.decode = 8;
    if (!o.prefill_set) o.prefill = 64;
    if (!o.prompt_set) o.prompt = 1;
    if (!o.reps_set) o.reps = 2;
  }

  RssWatch watch(o.max_rss_gb * 1024);
  const std::string load_before = bench::load_average();
  const double avail_before = avail_gb;
  const auto t_load = Clock::now();
  auto model = Model::load(o.dir, *type);
  const double load_s = seconds_since(t_load);
  watch.sample();
  auto st = proc_status_mb();
  const double rss_load = peak_rss_mb();
  std::printf("load             %.1f s (%s, %.2f GB of checkpoint files, %.2f GB/s; %.1f GB available before)\n", load_s,
              o.dir.c_str(), dir_bytes(o.dir) / 1e9, dir_bytes(o.dir) / 1e9 / load_s, avail_before);
  std::printf("memory at load   peak RSS %.0f MB (ru_maxrss), VmHWM %.0f MB, VmRSS %.0f MB now (anon %.0f + file %.0f); "
              "sampled peaks: anon %.0f MB, file-backed %.0f MB\n",
              rss_load, st["VmHWM"], st["VmRSS"], st["RssAnon"], st["RssFile"], watch.peak_anon(), watch.peak_file());
  std::fflush(stdout);

  const OtherCpuUse other;
  if (o.sweep) {
    std::printf("load average     %s\n", load_before.c_str());
    gemv_sweep(*model, o.reps);
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
  // (An untied token embedding, GPT-J's, is not streamed either: one row per token.)
  const double wpe = c.arch == Arch::GPT2 ? static_cast<double>(c.n_positions) * c.n_embd : 0.0;
  const ParamCounts counts = count_params(c);
  const double params = counts.matrices + counts.rest;
  const double weight_bytes = bytes_of_matrices + 4.0 * (counts.rest - wpe);
  // Each step also reads every earlier key and value of its row from the fp32 KV cache (all
  // layers): the token at position p attends to p + 1 of them, so a run of --decode steps after a
  // --prompt-token prompt reads prompt + (decode + 1) / 2 positions per step on average. Part of
  // the floor: at the defaults (16 + 64.5 positions of 124M) ~5 % of int8's weight bytes, 1 % of
  // fp32's.
  const double kv_bytes = 2.0 * c.n_layer * c.n_embd * sizeof(float) * (o.prompt + (o.decode + 1) / 2.0);
  const double step_bytes = weight_bytes + kv_bytes;

  auto best = [&](auto fn) {
    double b = 0;
    for (int r = 0; r < o.reps; ++r) b = std::max(b, fn());
    return b;
  };
  const double pf = o.prefill > 0 ? best([&] { return prefill_rate(*model, o.prefill); }) : 0.0;
  // Batch 1 and the micro-batch alternate, so that both see the same machine (its bandwidth drifts),
  // each batch-1 run right after a plain read of the weights (its floor at that moment).
  double d1 = 0, dn = 0;
  std::vector<double> paired_floor, paired_ratio;  // per run: batch 1 ÷ its floor, batch n ÷ batch 1
  const int steps_n = std::max(1, o.decode / 2);
  for (int r = 0; r < o.reps; ++r) {
    const double read = weights_read_rate(*model);
    const double r1 = decode_rate(*model, 1, o.prompt, o.decode);
    const double rn = decode_rate(*model, o.batch, o.prompt, steps_n);
    d1 = std::max(d1, r1);
    dn = std::max(dn, rn);
    paired_floor.push_back(r1 / (read * 1e9 / step_bytes));
    paired_ratio.push_back(rn / r1);
  }
  const double gemv_bw = best([&] { return gemv_pass_rate(*model); });
  watch.sample();
  const double rss = peak_rss_mb(), rss_now = rss_now_mb();  // before the bandwidth array
  st = proc_status_mb();
  const double peak_anon = watch.peak_anon(), peak_file = watch.peak_file();  // (the probe's array left out)
  const double bw = measure_bandwidth(o.reps);
  const double fma_peak = kernels::fma_peak_gflops();
  // bfloat16_compute multiplies on vdpbf16ps from 17 rows up (prefill, batches over 16) where the
  // CPU has it: those figures are then compared with its peak instead.
  const double dot_peak = w.matrix_type == kernels::WeightType::BF16_COMPUTE ? kernels::bf16_dot_peak_gflops() : 0.0;
  const double peak = dot_peak > 0 ? dot_peak : fma_peak;
  const char* peak_name = dot_peak > 0 ? "vdpbf16ps peak" : "FMA peak";
  const int gemv_max_rows = 16;  // matmul_wt's GEMV path (lmforge/kernels/kernels.h)
  const double batch_peak = o.batch > gemv_max_rows ? peak : fma_peak;
  const char* batch_peak_name = o.batch > gemv_max_rows ? peak_name : "FMA peak";
  // Prefill: every matrix once per token except the head (the last position's logits only), plus
  // attention (QKᵀ and PV over on average half the prompt: 2 · T · E multiply-adds per token and layer).
  const double head_elems = static_cast<double>(c.vocab_size) * c.n_embd;
  const double prefill_flops = 2.0 * (matrix_elems - head_elems) + 4.0 * o.prefill * c.n_embd * c.n_layer;
  const double floor = bw * 1e9 / step_bytes;
  const std::string label = o.dir_given ? fs::path(o.dir).filename().string() + " (" + c.model_type + ")" : o.preset;

  std::printf("model            %s shape, %.1fM parameters, %s weight matrices, %d threads\n", label.c_str(),
              params / 1e6, kernels::to_string(w.matrix_type), kernels::num_threads());
  std::printf("kernels          %s; fp32 FMA peak %.0f GFLOP/s on %d threads (measured now)",
              kernels::isa_description().c_str(), fma_peak, kernels::num_threads());
  if (dot_peak > 0) std::printf("; bf16 vdpbf16ps peak %.0f GFLOP/s", dot_peak);
  std::printf("\n");
  std::printf("machine          load average %s (start) / %s (end); other processes used %.0f%% of the CPUs\n",
              load_before.c_str(), bench::load_average().c_str(), 100 * other.fraction());
  std::printf("bandwidth        %.1f GB/s (read, 512 MiB, all threads, best of %d)\n", bw, o.reps);
  std::printf("decode floor     %.1f tok/s (%.1f MB per token: %.1f MB of weights, %.1f MB of KV cache on average)\n",
              floor, step_bytes / 1e6, weight_bytes / 1e6, kv_bytes / 1e6);
  std::printf("gemv pass        %.1f GB/s (all weights once at M=1, %.1f ms = %.0f%% of bandwidth)\n", gemv_bw,
              1e3 * weight_bytes / gemv_bw / 1e9, 100 * gemv_bw / bw);
  if (o.prefill > 0)
    std::printf("prefill          %.1f tok/s (%d-token prompt; %.0f GFLOP/s = %.0f%% of the %s)\n", pf, o.prefill,
                prefill_flops * pf / 1e9, 100 * prefill_flops * pf / 1e9 / peak, peak_name);
  std::printf("decode batch 1   %.2f tok/s (%.0f%% of floor; %d steps after a %d-token prompt)\n", d1, 100 * d1 / floor,
              o.decode, o.prompt);
  std::printf("  paired floor   median %.0f%% (each run ÷ a plain read of the weights just before it, at that rate for "
              "weights and KV cache: %s)\n",
              100 * median(paired_floor), percents(paired_floor).c_str());
  // The micro-batch is compute-bound (2 flops per weight per row), batch 1 memory-bound: their
  // ratio moves with the machine's bandwidth at the moment, so both the ratio and the GFLOP/s are
  // printed.
  std::printf("decode batch %-3d %.2f tok/s (%.1fx batch 1; %.0f GFLOP/s in the matrix products = %.0f%% of the %s; "
              "%d steps)\n",
              o.batch, dn, dn / d1, 2.0 * matrix_elems * dn / 1e9, 100 * 2.0 * matrix_elems * dn / 1e9 / batch_peak,
              batch_peak_name, steps_n);
  std::printf("  paired ratio   median %.1fx (each run ÷ the batch-1 run just before it: %s)\n", median(paired_ratio),
              times(paired_ratio).c_str());
  std::printf("peak RSS         %.0f MB (ru_maxrss before the bandwidth probe; %.0f MB after loading; VmHWM %.0f MB; "
              "%.0f MB resident after the runs; sampled peaks anon %.0f MB, file-backed %.0f MB)\n",
              rss, rss_load, st["VmHWM"], rss_now, peak_anon, peak_file);
  std::fflush(stdout);

  result.insert({{"status", "ok"}, {"bytes", num(step_bytes)}, {"bw", num(bw)}, {"floor", num(floor)},
                 {"paired_floor", num(median(paired_floor))},
                 {"d1", num(d1)}, {"dn", num(dn)}, {"pf", num(pf)}, {"load_s", num(load_s)}, {"maxrss", num(rss)},
                 {"hwm", num(st["VmHWM"])}, {"anon", num(peak_anon)}, {"file", num(peak_file)},
                 {"load", load_before}, {"params", num(params)}});
  for (auto& [k, v] : result) std::replace(v.begin(), v.end(), ' ', '/');
  report_result(o, result);
  return 0;
}

// A --dtype list: every type in its own process (fresh peak RSS, no pages of the previous load),
// then one table.
int run_list(const Options& o, int argc, char** argv) {
  std::vector<std::map<std::string, std::string>> results;
  for (const std::string& d : o.dtypes) {
    std::vector<std::string> args = {"bench_generate"};
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--dtype") {
        ++i;
        continue;
      }
      args.push_back(a);
    }
    int fds[2];
    if (::pipe(fds) != 0) throw Error("pipe failed");
    args.insert(args.end(), {"--dtype", d, "--result_fd", std::to_string(fds[1])});
    std::vector<char*> cargv;
    for (auto& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::printf("\n=== %s ===\n", d.c_str());
    std::fflush(stdout);
    pid_t pid;
    const int err = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    std::string text;
    if (err == 0) {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fds[0], buf, sizeof buf)) > 0) text.append(buf, n);
    }
    ::close(fds[0]);
    int status = 0;
    if (err == 0) ::waitpid(pid, &status, 0);
    std::map<std::string, std::string> r{{"dtype", d}};
    std::istringstream in(text);
    std::string k, v;
    while (in >> k >> v) r[k] = v;
    if (err != 0)
      r["status"] = "spawn-failed";
    else if (!r.count("status"))
      r["status"] = WIFEXITED(status) ? "failed (exit " + std::to_string(WEXITSTATUS(status)) + ")"
                                     : "killed (signal " + std::to_string(WTERMSIG(status)) + ")";
    results.push_back(r);
  }
  auto get = [](const std::map<std::string, std::string>& r, const char* k) {
    auto it = r.find(k);
    return it == r.end() ? 0.0 : std::atof(it->second.c_str());
  };
  double fp32_d1 = 0;
  for (const auto& r : results)
    if (r.at("status") == "ok" && r.at("dtype") == "float32") fp32_d1 = get(r, "d1");
  std::printf("\nsummary (each type in its own process, one after the other; %s)\n", o.dir.c_str());
  std::printf("%-16s %9s %9s %10s %10s %7s %8s %7s %11s %10s %8s %10s %16s  %s\n", "weights", "MB/token", "GB/s", "floor",
              "batch 1", "floor%", "paired%", "/fp32", ("batch " + std::to_string(o.batch)).c_str(), "prefill", "load s", "peak RSS",
              "anon/file peak", "load average");
  for (const auto& r : results) {
    if (r.at("status") != "ok") {
      std::printf("%-16s %s%s\n", r.at("dtype").c_str(), r.at("status").c_str(),
                  r.count("need_gb") ? (" (needs ≈ " + r.at("need_gb") + " GB)").c_str() : "");
      continue;
    }
    std::string load = r.count("load") ? r.at("load") : "";
    std::replace(load.begin(), load.end(), '/', ' ');
    const double d1 = get(r, "d1");
    char ratio[16] = "-";
    if (fp32_d1 > 0) std::snprintf(ratio, sizeof ratio, "%.2fx", d1 / fp32_d1);
    std::printf("%-16s %9.0f %9.1f %10.2f %10.2f %6.0f%% %7.0f%% %7s %11.2f %10.1f %8.1f %7.0f MB %7.0f/%-7.0f  %s\n",
                r.at("dtype").c_str(), get(r, "bytes") / 1e6, get(r, "bw"), get(r, "floor"), d1,
                100 * d1 / get(r, "floor"), 100 * get(r, "paired_floor"), ratio, get(r, "dn"), get(r, "pf"), get(r, "load_s"), get(r, "hwm"),
                get(r, "anon"), get(r, "file"), load.c_str());
  }
  return 0;
}

std::vector<std::string> split_list(const std::string& v) {
  if (v == "all") return {"float32", "bfloat16", "int8", "int8_dynamic", "bfloat16_compute"};
  std::vector<std::string> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      std::printf("usage: bench_generate [--preset gpt2|gpt2-medium] [--dir DIR] [--dtype TYPE|LIST|all] [--batch 12]\n"
                  "                      [--prefill 512] [--decode 128] [--prompt 16] [--threads N] [--reps 5]\n"
                  "                      [--max_rss_gb X] [--sweep]\n"
                  "TYPE: float32, bfloat16, float16, int8, int8_dynamic, bfloat16_compute. See docs/PERFORMANCE.md.\n");
      return 0;
    }
    if (k == "--sweep") {
      o.sweep = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) { std::fprintf(stderr, "option %s needs a value\n", k.c_str()); return 2; }
    std::string v = argv[i + 1];
    if (k == "--preset") o.preset = v;
    else if (k == "--dir") o.dir = v;
    else if (k == "--prefill") o.prefill = std::stoi(v), o.prefill_set = true;
    else if (k == "--decode") o.decode = std::stoi(v), o.decode_set = true;
    else if (k == "--prompt") o.prompt = std::stoi(v), o.prompt_set = true;
    else if (k == "--threads") o.threads = std::stoi(v);
    else if (k == "--reps") o.reps = std::stoi(v), o.reps_set = true;
    else if (k == "--batch") o.batch = std::stoi(v);
    else if (k == "--max_rss_gb") o.max_rss_gb = std::stod(v);
    else if (k == "--result_fd") o.result_fd = std::stoi(v);
    else if (k == "--dtype") o.dtypes = split_list(v);
    else { std::fprintf(stderr, "unknown option %s\n", k.c_str()); return 2; }
  }
  if (o.preset != "gpt2" && o.preset != "gpt2-medium") {
    std::fprintf(stderr, "unknown preset %s (gpt2, gpt2-medium; other shapes: make_random_checkpoint, then --dir)\n",
                 o.preset.c_str());
    return 2;
  }
  if (o.batch < 1 || o.decode < 1 || o.prompt < 1 || o.reps < 1 || o.prefill < 0) {
    std::fprintf(stderr, "--batch, --decode, --prompt and --reps must be positive, --prefill >= 0\n");
    return 2;
  }
  if (o.dtypes.empty()) { std::fprintf(stderr, "--dtype: empty list\n"); return 2; }
  // Names that are neither known nor the optional int8_dynamic are typos: refuse them up front.
  for (const std::string& d : o.dtypes)
    if (!kernels::weight_type_from_string(d) && d != "int8_dynamic") {
      std::fprintf(stderr,
                   "unknown --dtype %s (float32, bfloat16, float16, int8, int8_dynamic, bfloat16_compute, a comma "
                   "list, all)\n",
                   d.c_str());
      return 2;
    }
  if (o.threads > 0) kernels::set_num_threads(o.threads);
  // --dir: an existing checkpoint folder is loaded as is, never rewritten. Without --dir (or with
  // a --dir that does not exist yet or is empty) the preset's random model is written there once.
  o.dir_given = !o.dir.empty();
  if (o.dir.empty()) o.dir = "/tmp/lmforge-bench-" + o.preset;
  const fs::path dir(o.dir);
  if (!fs::exists(dir / "config.json")) {
    if (fs::exists(dir) && !fs::is_empty(dir)) {
      std::fprintf(stderr, "'%s' has no config.json (and is not empty): not a checkpoint folder\n", o.dir.c_str());
      return 2;
    }
    ModelConfig c;
    if (o.preset == "gpt2-medium") c.n_layer = 24, c.n_head = 16, c.n_embd = 1024;
    c.bos_token_id = c.eos_token_id = 50256;
    ModelWeights w = allocate_weights(c);
    init_random_weights(c, w, 1);
    save_pretrained(dir, c, w);
  }
  if (o.dtypes.size() > 1) {
    if (o.sweep) { std::fprintf(stderr, "--sweep: float32 only, not a --dtype list\n"); return 2; }
    return run_list(o, argc, argv);
  }
  return run_one(o, o.dtypes[0]);
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
