// Portable kernels, the run-time choice between them and the AVX2 versions (kernels/isa.h), and
// how each is split into parallel_for tasks (kernels/thread_pool.cpp).
#include "lmforge/kernels/kernels.h"

#include <cblas.h>
#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/isa.h"
#include "kernels/onednn.h"
#include "lmforge/io/tensor.h"
#include "lmforge/kernels/gemm_bf16.h"

namespace lmforge::kernels {
namespace {

struct CpuLevel {
  Isa best = Isa::Portable;
  bool vnni = false, bf16 = false;
};

// F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c".
bool cpu_has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1u);
}

CpuLevel detect_cpu() {
  __builtin_cpu_init();
  CpuLevel c;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c()) {
    c.best = Isa::Avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq")) {
      c.best = Isa::Avx512;
      c.vnni = __builtin_cpu_supports("avx512vnni");
      c.bf16 = __builtin_cpu_supports("avx512bf16");
    }
  }
  return c;
}
const CpuLevel kCpu = detect_cpu();

// LMFORGE_ISA (or LMFORGE_NO_AVX2=1, meaning portable) lowers the level; an unknown name is kept
// for isa_env_error() and ignored.
std::string g_isa_env_error;
Isa initial_isa() {
  Isa level = kCpu.best;
  const char* off = std::getenv("LMFORGE_NO_AVX2");
  if (off && *off && std::strcmp(off, "0") != 0) level = Isa::Portable;
  if (const char* name = std::getenv("LMFORGE_ISA"); name && *name) {
    if (const auto want = isa_from_string(name))
      level = std::min(level, *want);
    else
      g_isa_env_error = name;
  }
  return level;
}
Isa g_isa = initial_isa();
bool g_vnni = g_isa == Isa::Avx512 && kCpu.vnni;

inline bool avx2_on() { return g_isa >= Isa::Avx2; }
inline bool avx512_on() { return g_isa == Isa::Avx512; }

// Rows up to this count go through the weight-streaming GEMV (each weight read once from memory
// per call, whatever M); beyond it sgemm's cache blocking wins.
constexpr int kGemvMaxRows = avx2::kMaxGemvRows;
// Below this many multiply-adds a parallel region costs more than it saves.
constexpr long kParallelMinWork = 1L << 16;

// Weight n*K + k of `w` as fp32 (int8 without its scale).
float weight_at(const WeightMatrix& w, size_t i) {
  switch (w.type) {
    case WeightType::F32: return static_cast<const float*>(w.data)[i];
    case WeightType::BF16:
    case WeightType::BF16_COMPUTE: return bf16_to_float(static_cast<const uint16_t*>(w.data)[i]);
    case WeightType::F16: return fp16_to_float(static_cast<const uint16_t*>(w.data)[i]);
    case WeightType::I8:
    case WeightType::I8_DYNAMIC: return static_cast<const int8_t*>(w.data)[i];
  }
  return 0.0f;
}

void gemv_rows_portable(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y,
                        int ldy) {
  const int K = w.K;
  std::vector<float> row(K);
  for (int n = n0; n < n1; ++n) {
    for (int k = 0; k < K; ++k) row[k] = weight_at(w, static_cast<size_t>(n) * K + k);
    for (int m = 0; m < M; ++m) {
      const float* xr = x + static_cast<long>(m) * K;
      float s = 0.f;
      for (int k = 0; k < K; ++k) s += xr[k] * row[k];
      if (w.scales) s *= w.scales[n];
      y[static_cast<long>(m) * ldy + n] = s + (bias ? bias[n] : 0.0f);
    }
  }
}

void gemv_range(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y) {
  if (avx512_on())
    avx512::gemv_rows(x, M, w, bias, n0, n1, y, w.N);
  else if (avx2_on())
    avx2::gemv_rows(x, M, w, bias, n0, n1, y, w.N);
  else
    gemv_rows_portable(x, M, w, bias, n0, n1, y, w.N);
}


// Splits n items into `tasks` contiguous ranges whose bounds are multiples of `align`.
struct Split {
  int n, tasks, align;
  int begin(int t) const { return std::min(n, static_cast<int>(static_cast<long>((n + align - 1) / align) * t / tasks) * align); }
  int end(int t) const { return begin(t + 1); }
};

// Tasks for `work` multiply-adds over `items` independent items: one when small, else
// `per_thread` per thread (several, so a thread the OS preempts holds up little of the work) but
// never fewer than `min_items` items each.
int task_count(long work, int items, int min_items, int per_thread = 4) {
  if (work < kParallelMinWork) return 1;
  return std::max(1, std::min(per_thread * num_threads(), items / min_items));
}

// y[M,N] = x w^T + bias for M <= kGemvMaxRows. Each task takes one contiguous range of output
// columns (weight rows), so it streams one contiguous slab of w; bounds are multiples of 12 rows
// (the AVX2 kernel's column blocks are 3 or 4 rows).
void gemv(const float* x, int M, const WeightMatrix& w, const float* bias, float* y) {
  const Split split{w.N, task_count(static_cast<long>(w.N) * w.K * M, w.N, 48), 12};
  parallel_for(split.tasks, [&](int t) { gemv_range(x, M, w, bias, split.begin(t), split.end(t), y); });
}

// matmul_wt_rows: task bounds are multiples of every tile's width (rows_avx2.cpp, rows_avx512.cpp:
// 6 or 8 weight rows in a register tile, 8 or 16 in the few-row kernels), so only a task's last
// columns fall to the tails.
constexpr int kRowsAlign = 48;

// matmul_wt_rows, portable: the chain of rows_kernel.h with std::fma (the same bits as the vector
// levels: one rounding per step, in the same order).
void gemm_rows_portable(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y,
                        int ldy) {
  const int K = w.K;
  std::vector<float> row(K);
  for (int n = n0; n < n1; ++n) {
    for (int k = 0; k < K; ++k) row[k] = weight_at(w, static_cast<size_t>(n) * K + k);
    const float b = bias ? bias[n] : 0.0f;
    for (int m = 0; m < M; ++m) {
      const float* xr = x + static_cast<long>(m) * K;
      float s = 0.0f;
      for (int k = 0; k < K; ++k) s = std::fma(xr[k], row[k], s);
      y[static_cast<long>(m) * ldy + n] = w.scales ? std::fma(s, w.scales[n], b) : s + b;
    }
  }
}

// x [M, K] as P panels of L rows for the vector gemm_rows, the panels of one k side by side:
// xp[(k * P + p) * L + l] = x[p * L + l, k], zeros for rows past M; here only panels p0 .. p1-1.
// (AVX-512: avx512::pack_rows, the same layout through register transposes.)
void pack_row_panels(const float* x, int M, int K, int L, int P, int p0, int p1, float* xp) {
  for (int p = p0; p < p1; ++p) {
    const int r0 = p * L, rows = std::min(L, M - r0);
    for (int l = 0; l < L; ++l) {
      float* out = xp + static_cast<long>(p) * L + l;
      const long stride = static_cast<long>(P) * L;
      if (l < rows) {
        const float* xr = x + static_cast<long>(r0 + l) * K;
        for (int k = 0; k < K; ++k) out[k * stride] = xr[k];
      } else {
        for (int k = 0; k < K; ++k) out[k * stride] = 0.0f;
      }
    }
  }
}

// I8_DYNAMIC, portable: the same integer sums and the same final fma as avx2::gemm_i8_dynamic
// (exact int32 sums, so the two give the same bits).
void gemm_i8_dynamic_portable(const int8_t* qx, size_t ldq, const float* sx, int M, const WeightMatrix& w,
                              const float* bias, int n0, int n1, float* y, int ldy) {
  const int K = w.K;
  for (int n = n0; n < n1; ++n) {
    const int8_t* wr = static_cast<const int8_t*>(w.data) + static_cast<size_t>(n) * K;
    for (int m = 0; m < M; ++m) {
      const int8_t* xr = qx + m * ldq;
      int32_t sum = 0;
      for (int k = 0; k < K; ++k) sum += static_cast<int32_t>(xr[k]) * wr[k];
      y[static_cast<long>(m) * ldy + n] = std::fma(static_cast<float>(sum), sx[m] * w.scales[n], bias ? bias[n] : 0.0f);
    }
  }
}

// Activation rows of I8_DYNAMIC are padded to a multiple of this many int8 (with zeros, which add
// nothing to the sums), so the AVX2 kernel reads them as whole 32-byte vectors.
constexpr size_t kQuantRowAlign = 32;

// y[M, N] = x w^T + bias by single-threaded products on column slabs of y (bounds multiples of
// `align`), one parallel task each: slab(n0, n1, beta) must add x w^T to columns [n0, n1) with
// that beta, which start as the bias (beta 1), or are not to be read (beta 0, no bias).
template <class Slab>
void column_slabs(int M, const WeightMatrix& w, const float* bias, float* y, int align, const Slab& slab) {
  const int N = w.N;
  const Split split{N, task_count(static_cast<long>(N) * w.K * M, N, 64, 2), align};
  parallel_for(split.tasks, [&](int t) {
    const int n0 = split.begin(t), n1 = split.end(t);
    if (n0 == n1) return;
    if (bias)
      for (int m = 0; m < M; ++m) std::memcpy(y + static_cast<long>(m) * N + n0, bias + n0, (n1 - n0) * sizeof(float));
    slab(n0, n1, bias ? 1.0f : 0.0f);
  });
}

// I8_DYNAMIC on oneDNN's VNNI GEMM (dnnl_gemm_s8s8s32) from this many rows: its cache blocking
// beats the weight-streaming kernel once each weight is used by enough rows. Measured on the 124M
// shape (AMD EPYC, 2 threads, interleaved with the kernel alone): 512-token prefill 1453-1603 ->
// 2484-2918 tok/s, batch-48 decode 946-1102 -> 1247-1292; even at 24 and 32 rows, slower at 17
// (752-812 against 904-1060).
constexpr int kOnednnMinRowsI8 = 32;

// avx512::gemm_i8_dynamic's result from oneDNN's exact int32 sums (the same integers, then the
// same fma, vectorized by avx512::scale_i8_sums: the same bits) on column slabs of y. The bias is
// added by that fma, not by column_slabs.
void i8_dynamic_onednn(const int8_t* qx, size_t ldq, const float* sx, int M, const WeightMatrix& w, const float* bias,
                       float* y) {
  const int N = w.N, K = w.K;
  column_slabs(M, w, nullptr, y, 16, [&](int n0, int n1, float) {
    const int cols = n1 - n0;
    thread_local std::vector<int32_t> sums;
    sums.resize(static_cast<size_t>(M) * cols);
    onednn::gemm_s8_nt(M, cols, K, qx, static_cast<int>(ldq), static_cast<const int8_t*>(w.data) + static_cast<long>(n0) * K,
                       K, sums.data(), cols);
    avx512::scale_i8_sums(sums.data(), cols, sx, M, w, bias, n0, n1, y, N);
  });
}

// y[M,N] = x w^T + bias for I8_DYNAMIC weights, every M: the activation rows are quantized once
// (split by rows when there are many), then the weight rows are split into contiguous slabs as in
// gemv; for many rows each task loops over row blocks of its slab (avx2::gemm_i8_dynamic).
void matmul_i8_dynamic(const float* x, int M, const WeightMatrix& w, const float* bias, float* y) {
  const int K = w.K;
  const size_t ldq = (K + kQuantRowAlign - 1) / kQuantRowAlign * kQuantRowAlign;
  std::vector<int8_t> qx(M * ldq);  // zero-initialized: the padding
  std::vector<float> sx(M);
  auto quantize = [&](int m0, int m1) {
    for (int m = m0; m < m1; ++m)
      sx[m] = quantize_activation_row_int8(x + static_cast<long>(m) * K, K, qx.data() + m * ldq);
  };
  const Split rows{M, task_count(static_cast<long>(M) * K, M, 4), 1};
  if (rows.tasks == 1)
    quantize(0, M);  // decode: not worth waking the threads
  else
    parallel_for(rows.tasks, [&](int t) { quantize(rows.begin(t), rows.end(t)); });
  if (g_vnni && M >= kOnednnMinRowsI8 && K <= avx512::kMaxVnniK)
    return i8_dynamic_onednn(qx.data(), ldq, sx.data(), M, w, bias, y);
  const Split split{w.N, task_count(static_cast<long>(w.N) * K * M, w.N, 48), 12};
  parallel_for(split.tasks, [&](int t) {
    const int n0 = split.begin(t), n1 = split.end(t);
    if (g_vnni)
      avx512::gemm_i8_dynamic(qx.data(), ldq, sx.data(), M, w, bias, n0, n1, y, w.N);
    else if (avx2_on())
      avx2::gemm_i8_dynamic(qx.data(), ldq, sx.data(), M, w, bias, n0, n1, y, w.N);
    else
      gemm_i8_dynamic_portable(qx.data(), ldq, sx.data(), M, w, bias, n0, n1, y, w.N);
  });
}

// y[M,N] = x w^T + bias for larger M: single-threaded sgemm calls on column slabs of y (each
// packs its own part of w once; x is small next to w). Two slabs per thread: one was 2 % faster
// on an idle machine, four 2 % slower; OpenBLAS's own threads instead of ours cost 10 % of the
// 512-token prefill (its OpenMP threads keep spinning into our attention tasks).
// Low-precision weights for sgemm: slabs of this many rows are widened to fp32 in a per-task
// buffer (64 rows x K floats stays in L2 for K up to 4096) just before they are multiplied.
constexpr int kWidenRows = 64;

}  // namespace

// oneDNN's sgemm on the AVX-512 level: its AVX-512 JIT kernels whatever OPENBLAS_CORETYPE pins.
// Measured against OpenBLAS on the 124M shape (AMD EPYC, 2 threads, interleaved): 512-token
// prefill +4 % (-1..+8), batch-96 decode +6..13 %, fp32 training +4..7 %.
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc) {
  if (avx512_on())
    return onednn::sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              A, lda, B, ldb, beta, C, ldc);
}

namespace {

void sgemm_columns(const float* x, int M, const WeightMatrix& w, const float* bias, float* y) {
  const int N = w.N, K = w.K;
  column_slabs(M, w, bias, y, 16, [&](int n0, int n1, float beta) {
    if (w.type == WeightType::F32)
      return sgemm(false, true, M, n1 - n0, K, 1.0f, x, K, static_cast<const float*>(w.data) + static_cast<long>(n0) * K, K,
                   beta, y + n0, N);
    std::vector<float> slab(static_cast<size_t>(kWidenRows) * K);
    for (int s0 = n0; s0 < n1; s0 += kWidenRows) {
      const int s1 = std::min(n1, s0 + kWidenRows);
      widen_rows(w, s0, s1, slab.data());
      sgemm(false, true, M, s1 - s0, K, 1.0f, x, K, slab.data(), K, beta, y + s0, N);
    }
  });
}

float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

void activate_serial(Activation act, float* x, size_t n) {
  switch (act) {
    case Activation::GeluNew:
    case Activation::GeluFast:
    case Activation::GeluPytorchTanh:
      if (avx2_on()) return avx2::gelu_tanh(x, n);
      for (size_t i = 0; i < n; ++i) x[i] = gelu_tanh(x[i]);
      break;
    case Activation::Gelu:
      for (size_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.7071067811865476f));
      break;
    case Activation::Relu:
      for (size_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.0f);
      break;
    case Activation::QuickGelu:
      if (avx2_on()) return avx2::mul_sigmoid(x, n, 1.702f);
      for (size_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
      break;
    case Activation::Silu:
      if (avx2_on()) return avx2::mul_sigmoid(x, n, 1.0f);
      for (size_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
      break;
  }
}

void layer_norm_row(const float* xr, int E, const float* gamma, const float* beta, float eps, float* yr) {
  if (avx2_on()) return avx2::layer_norm_row(xr, E, gamma, beta, eps, yr);
  double sum = 0.0;
  for (int i = 0; i < E; ++i) sum += xr[i];
  const float mean = static_cast<float>(sum / E);
  double var = 0.0;
  for (int i = 0; i < E; ++i) {
    const double d = xr[i] - mean;
    var += d * d;
  }
  const float rstd = 1.0f / std::sqrt(static_cast<float>(var / E) + eps);
  for (int i = 0; i < E; ++i) yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
}

}  // namespace

bool using_avx2() { return avx2_on(); }
Isa isa() { return g_isa; }
Isa detected_isa() { return kCpu.best; }
bool cpu_has_avx512_vnni() { return kCpu.vnni; }
bool cpu_has_avx512_bf16() { return kCpu.bf16; }
bool using_avx512_bf16() { return avx512_on() && kCpu.bf16; }
std::string isa_env_error() { return g_isa_env_error; }
void set_isa(Isa level) {
  g_isa = std::min(level, kCpu.best);
  g_vnni = g_isa == Isa::Avx512 && kCpu.vnni;
}

namespace {

// GFLOP/s of `probe` (12 chains x `iters` rounds of `flop_per_op` FLOP) on every thread, best of 5.
// The pool's tasks go to whichever thread claims them first, so a worker that has not run yet (in
// a process just started, the scheduler may keep it waiting on its parent's core) leaves both
// probes to the caller: a reading of half the peak (seen in 2 of 10 bench_train rows). So every
// thread first checks in and waits (up to 0.2 s) until all of them run at once.
template <class Probe>
double probe_gflops(long iters, double flop_per_op, const Probe& probe) {
  const int threads = num_threads();
  std::vector<float> sink(threads);
  std::atomic<int> arrived{0};
  parallel_for(threads, [&](int) {
    arrived.fetch_add(1);
    const auto t0 = std::chrono::steady_clock::now();
    while (arrived.load() < threads && std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(200)) {
    }
  });
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(threads, [&](int t) { sink[t] = probe(); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flop_per_op * 12 * iters * threads / s / 1e9);
  }
  return best;
}

}  // namespace

double bf16_dot_peak_gflops() {
  if (!using_avx512_bf16()) return 0.0;
  const long iters = 500'000;
  return probe_gflops(iters, 64.0, [&] { return avx512::bf16_dot_probe(iters); });
}

double fma_peak_gflops() {
  const int lanes = isa() == Isa::Avx512 ? 16 : isa() == Isa::Avx2 ? 8 : 1;
  const long iters = isa() == Isa::Portable ? 2'000'000 : 8'000'000 / lanes * 8;
  return probe_gflops(iters, 2.0 * lanes, [&] {
    if (isa() == Isa::Avx512) return avx512::fma_probe(iters);
    if (isa() == Isa::Avx2) return avx2::fma_probe(iters);
    float acc[12];  // 12 scalar chains of multiply + add, as the vector probes
    for (int i = 0; i < 12; ++i) acc[i] = 0.001f * i;
    for (long it = 0; it < iters; ++it)
      for (float& a : acc) a = a * 0.999999f + 1e-7f;
    return acc[0] + acc[11];
  });
}

const char* to_string(Isa level) {
  switch (level) {
    case Isa::Portable: return "portable";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

std::optional<Isa> isa_from_string(std::string_view name) {
  for (Isa level : {Isa::Portable, Isa::Avx2, Isa::Avx512})
    if (name == to_string(level)) return level;
  return std::nullopt;
}

std::string isa_description() {
  std::string d = to_string(g_isa);
  if (g_isa == Isa::Avx2) d += " (AVX2, FMA, F16C)";
  if (g_isa == Isa::Avx512) {
    d += " (AVX-512F/BW/VL/DQ";
    if (kCpu.vnni) d += ", VNNI";
    if (kCpu.bf16) d += ", BF16";
    d += "; " + onednn::version() + " GEMMs";
    d += ")";
  }
  if (g_isa != kCpu.best) d += std::string(" (lowered by LMFORGE_ISA; the CPU has ") + to_string(kCpu.best) + ")";
  return d;
}

namespace {

// fp32 weights on the AVX-512 level: from 2 to 64 rows (batched decode) matmul_wt_rows' register
// tiles. From 9 rows up they beat both the GEMV (which reloads x for every group of weight rows)
// and OpenBLAS sgemm (packing costs more than it saves at so few rows); from 2 to 8 they are as
// fast as the GEMV, and taking them there too keeps rows 2..64 at the same bits whatever the batch
// (as the GEMV's rows 2..16 were). Measured on the 124M shape (AMD EPYC, 2 threads, interleaved):
// decode at batch 8 314-337 -> 338-344 tok/s, batch 16 540 -> 626-710, batch 48 430-454 ->
// 701-774. One row stays on the GEMV (75 and 55 against 84 and 85 tok/s at the memory floor), and
// a 128- or 512-token prompt is as fast or faster with sgemm. Not for low-precision weights:
// widening their rows again for every 16 rows made bf16 batch-16 decode 20-30 % slower; nor on
// AVX2, where it was not measured faster.
constexpr int kRowsMinRowsF32 = 2, kRowsMaxRowsF32 = 64;

// f(i0, i1) over [0, n) in ranges of whole 1024-element chunks, two per thread (one call when n
// is small).
template <class F>
void for_element_ranges(size_t n, const F& f) {
  if (n < static_cast<size_t>(kParallelMinWork)) return f(size_t{0}, n);
  const Split split{static_cast<int>((n + 1023) / 1024), 2 * num_threads(), 1};
  parallel_for(split.tasks, [&](int t) {
    const size_t i0 = static_cast<size_t>(split.begin(t)) * 1024;
    const size_t i1 = std::min(n, static_cast<size_t>(split.end(t)) * 1024);
    if (i0 < i1) f(i0, i1);
  });
}

// x[0, n) rounded to bf16 (raw bits) in a per-thread buffer, valid until this thread's next call.
const uint16_t* as_bf16_bits(const float* x, size_t n) {
  thread_local std::vector<uint16_t> x16;
  x16.resize(n);
  uint16_t* xb = x16.data();  // tasks run on other threads: not the thread_local itself
  for_element_ranges(n, [&](size_t i0, size_t i1) { to_bf16(xb + i0, x + i0, i1 - i0); });
  return xb;
}

// BF16_COMPUTE: vdpbf16ps (kernels::gemm_mixed: oneDNN's bf16 matmul) on column slabs of y, one
// single-threaded call per task as sgemm_columns, bounds multiples of 64 columns.
void bf16_columns(const float* x, int M, const WeightMatrix& w, const float* bias, float* y) {
  const int N = w.N, K = w.K;
  const uint16_t* xb = as_bf16_bits(x, static_cast<size_t>(M) * K);  // once for all the slabs
  column_slabs(M, w, bias, y, 64, [&](int n0, int n1, float beta) {
    const auto* wb = static_cast<const uint16_t*>(w.data) + static_cast<long>(n0) * K;
    gemm_mixed(M, n1 - n0, K, mat(xb, K), mat(wb, K, /*trans=*/true), beta, y + n0, N);
  });
}

// out[i] = x[i] rounded to bf16 and back (float_to_bf16's rounding: to nearest even, NaN → quiet
// NaN). Integer operations only, which the compiler vectorizes.
void round_to_bf16(const float* x, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], sizeof u);
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    u = nan ? 0x7fc00000u : (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    std::memcpy(&out[i], &u, sizeof u);
  }
}

// BF16_COMPUTE's activation rows, rounded once per call into a per-thread buffer (x itself is the
// caller's and is not changed).
const float* bf16_rounded(const float* x, size_t n) {
  thread_local std::vector<float> rounded;
  rounded.resize(n);
  float* out = rounded.data();  // tasks run on other threads: not the thread_local itself
  for_element_ranges(n, [&](size_t i0, size_t i1) { round_to_bf16(x + i0, i1 - i0, out + i0); });
  return out;
}

WeightMatrix as_bf16(const WeightMatrix& w) { return {WeightType::BF16, w.data, nullptr, w.N, w.K}; }

// BF16_COMPUTE on vdpbf16ps for up to 16 rows (batched decode) and for matmul_wt_rows
// (avx512::gemm_bf16_rows, weight rows streamed as by the GEMV): x rounded to bf16 once, then
// contiguous column ranges, one per task. Measured on the 124M shape (all matrices once, AMD EPYC,
// 2 threads, interleaved) against the GEMV on bf16-rounded rows: 1 to 4 rows the same
// (memory-bound), 8 rows 1.4-1.6x, 16 rows 1.4-1.9x; against matmul_wt_rows' fp32 row tiles
// (what serve ran before) 1.5-3x at 1 to 256 rows.
void bf16_rows(const float* x, int M, const WeightMatrix& w, const float* bias, float* y) {
  const int K = w.K, N = w.N;
  const uint16_t* xb = as_bf16_bits(x, static_cast<size_t>(M) * K);
  const Split split{N, task_count(static_cast<long>(N) * K * M, N, 48), 12};
  const auto* wb = static_cast<const uint16_t*>(w.data);
  parallel_for(split.tasks, [&](int t) {
    const int n0 = split.begin(t), n1 = split.end(t);
    if (n0 < n1) avx512::gemm_bf16_rows(xb, K, M, wb, K, bias, n0, n1, y, N);
  });
}

}  // namespace

void matmul_wt(const float* x, int M, const WeightMatrix& w, const float* bias, float* y) {
  if (w.type == WeightType::BF16_COMPUTE) {
    if (using_avx512_bf16()) return M > kGemvMaxRows ? bf16_columns(x, M, w, bias, y) : bf16_rows(x, M, w, bias, y);
    return matmul_wt(bf16_rounded(x, static_cast<size_t>(M) * w.K), M, as_bf16(w), bias, y);
  }
  if (w.type == WeightType::I8_DYNAMIC)
    matmul_i8_dynamic(x, M, w, bias, y);
  else if (avx512_on() && w.type == WeightType::F32 && M >= kRowsMinRowsF32 && M <= kRowsMaxRowsF32)
    matmul_wt_rows(x, M, w, bias, y);
  else if (M <= kGemvMaxRows)
    gemv(x, M, w, bias, y);
  else
    sgemm_columns(x, M, w, bias, y);
}

namespace {

constexpr int kRowsGroupAvx2 = 64;

// matmul_wt_rows for rows x [M, K] -> y [M, N] on the vector levels: pack, then the panel kernel.
void rows_group(const float* x, int M, const WeightMatrix& w, const float* bias, const Split& split, float* y) {
  const int K = w.K, N = w.N;
  const int L = avx512_on() ? avx512::kRowLanes : avx2::kRowLanes;
  const int P = (M + L - 1) / L;
  thread_local std::vector<float> buffer;
  buffer.resize(static_cast<size_t>(P) * K * L);
  float* xp = buffer.data();  // the tasks below run on other threads: not the thread_local itself
  auto pack = [&](int p0, int p1) {
    if (avx512_on())
      avx512::pack_rows(x, M, K, P, p0, p1, xp);
    else
      pack_row_panels(x, M, K, L, P, p0, p1, xp);
  };
  if (P == 1 || static_cast<long>(M) * K < kParallelMinWork)
    pack(0, P);
  else
    parallel_for(P, [&](int p) { pack(p, p + 1); });
  parallel_for(split.tasks, [&](int t) {
    const int n0 = split.begin(t), n1 = split.end(t);
    if (n0 == n1) return;
    if (avx512_on())
      avx512::gemm_rows(xp, M, w, bias, n0, n1, y, N);
    else
      avx2::gemm_rows(xp, M, w, bias, n0, n1, y, N);
  });
}

}  // namespace

void matmul_wt_rows(const float* x, int M, const WeightMatrix& w, const float* bias, float* y) {
  // I8_DYNAMIC: exact int32 sums and a per-row scale, so every M gives a row the same bits.
  if (w.type == WeightType::I8_DYNAMIC) return matmul_i8_dynamic(x, M, w, bias, y);
  if (M <= 0) return;  // (the few-row kernels have no case for zero rows)
  if (w.type == WeightType::BF16_COMPUTE) {
    if (using_avx512_bf16()) return bf16_rows(x, M, w, bias, y);
    return matmul_wt_rows(bf16_rounded(x, static_cast<size_t>(M) * w.K), M, as_bf16(w), bias, y);
  }
  const int K = w.K, N = w.N;
  const Split split{N, task_count(static_cast<long>(N) * K * M, N, 48), kRowsAlign};
  if (!avx2_on()) {
    parallel_for(split.tasks, [&](int t) { gemm_rows_portable(x, M, w, bias, split.begin(t), split.end(t), y, N); });
    return;
  }
  if (M <= (avx512_on() ? avx512::kFewRows : avx2::kFewRows)) {
    parallel_for(split.tasks, [&](int t) {
      if (avx512_on())
        avx512::gemm_few_rows(x, M, w, bias, split.begin(t), split.end(t), y, N);
      else
        avx2::gemm_few_rows(x, M, w, bias, split.begin(t), split.end(t), y, N);
    });
    return;
  }
  // AVX2: groups of at most 64 rows (the bits do not depend on the grouping): at 96 rows in one
  // piece the AVX2 tiles ran 25 % slower than as 64 + 32 (AMD EPYC, cause not found).
  const int group = avx512_on() ? M : kRowsGroupAvx2;
  for (int m0 = 0; m0 < M; m0 += group)
    rows_group(x + static_cast<long>(m0) * K, std::min(group, M - m0), w, bias, split, y + static_cast<long>(m0) * N);
}

void matmul_wt(const float* x, int M, int K, const float* w, int N, const float* bias, float* y) {
  matmul_wt(x, M, WeightMatrix{WeightType::F32, w, nullptr, N, K}, bias, y);
}

size_t weight_type_size(WeightType t) {
  switch (t) {
    case WeightType::F32: return 4;
    case WeightType::BF16:
    case WeightType::F16:
    case WeightType::BF16_COMPUTE: return 2;
    case WeightType::I8:
    case WeightType::I8_DYNAMIC: return 1;
  }
  return 4;
}

const char* to_string(WeightType t) {
  switch (t) {
    case WeightType::F32: return "float32";
    case WeightType::BF16: return "bfloat16";
    case WeightType::F16: return "float16";
    case WeightType::I8: return "int8";
    case WeightType::I8_DYNAMIC: return "int8_dynamic";
    case WeightType::BF16_COMPUTE: return "bfloat16_compute";
  }
  return "?";
}

std::optional<WeightType> weight_type_from_string(std::string_view name) {
  static const std::pair<std::string_view, WeightType> names[] = {
      {"float32", WeightType::F32}, {"fp32", WeightType::F32},  {"bfloat16", WeightType::BF16}, {"bf16", WeightType::BF16},
      {"float16", WeightType::F16}, {"fp16", WeightType::F16},  {"half", WeightType::F16},      {"int8", WeightType::I8},
      {"int8_dynamic", WeightType::I8_DYNAMIC}, {"bfloat16_compute", WeightType::BF16_COMPUTE}};
  for (const auto& [n, type] : names)
    if (name == n) return type;
  return std::nullopt;
}

void widen_rows(const WeightMatrix& w, int n0, int n1, float* out) {
  const size_t K = w.K, count = (n1 - n0) * K;
  const size_t first = n0 * K;
  if (avx2_on()) {
    avx2::to_float(w.type, static_cast<const char*>(w.data) + first * weight_type_size(w.type), count, out);
  } else {
    for (size_t i = 0; i < count; ++i) out[i] = weight_at(w, first + i);
  }
  if (w.scales)
    for (int n = n0; n < n1; ++n)
      for (size_t k = 0; k < K; ++k) out[(n - n0) * K + k] *= w.scales[n];
}

void layer_norm(const float* x, int M, int E, const float* gamma, const float* beta, float eps, float* y) {
  const Split split{M, task_count(static_cast<long>(M) * E, M, 4), 1};
  parallel_for(split.tasks, [&](int t) {
    for (int m = split.begin(t); m < split.end(t); ++m)
      layer_norm_row(x + static_cast<long>(m) * E, E, gamma, beta, eps, y + static_cast<long>(m) * E);
  });
}

void activate(Activation act, float* x, size_t n) {
  // Chunks of whole vectors, so the AVX2 tail path only runs at the very end. An activation costs
  // ~20 multiply-adds' time: batch-16 decode (16 x 3072 values) is already worth two threads.
  constexpr size_t kChunk = 4096;
  const int chunks = static_cast<int>((n + kChunk - 1) / kChunk);
  const int tasks = n < static_cast<size_t>(kParallelMinWork / 8) ? 1 : chunks;
  parallel_for(tasks, [&](int t) {
    const size_t i0 = static_cast<size_t>(t) * kChunk;
    activate_serial(act, x + i0, tasks == 1 ? n : std::min(kChunk, n - i0));
  });
}

void softmax(float* x, int n) {
  if (avx2_on()) return avx2::softmax(x, n);
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void dot_rows(const float* q, const float* keys, size_t ld, int rows, int n, float scale, float* scores) {
  if (avx2_on()) return avx2::dot_rows(q, keys, ld, rows, n, scale, scores);
  for (int j = 0; j < rows; ++j) scores[j] = dot(q, keys + j * ld, n) * scale;
}

void weighted_rows_sum(const float* p, const float* values, size_t ld, int rows, int n, float* y) {
  if (avx2_on()) return avx2::weighted_rows_sum(p, values, ld, rows, n, y);
  for (int d = 0; d < n; ++d) y[d] = 0.0f;
  for (int j = 0; j < rows; ++j)
    if (p[j] != 0.0f) axpy(p[j], values + j * ld, y, n);
}

float dot(const float* a, const float* b, int n) {
  if (avx2_on()) return avx2::dot(a, b, n);
  float s = 0.f;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float a, const float* x, float* y, int n) {
  if (avx2_on()) return avx2::axpy(a, x, y, n);
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace lmforge::kernels
