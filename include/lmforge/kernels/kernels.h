#pragma once
// Numeric kernels used by the model. The only ISA-specific code of the project lives behind these
// functions (src/kernels/*_avx2.cpp, *_avx512.cpp), selected at run time (isa()) with a portable
// fallback.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "lmforge/model/config.h"

namespace lmforge::kernels {

// How the elements of a weight matrix are stored. Low-precision weights are widened to fp32 in
// registers and multiplied with fp32 accumulation (the activations stay fp32: a bf16 checkpoint
// held in bf16 gives HF's fp32 results, so what low precision saves is memory traffic) -- except
// I8_DYNAMIC, which multiplies int8 by int8 with integer dot products (AVX2 vpmaddubsw or AVX-512
// VNNI vpdpbusd): widening each int8 weight to fp32 takes longer than loading it, so weight-only
// I8 is compute-bound even at batch 1; and BF16_COMPUTE, which multiplies bf16 by bf16.
enum class WeightType : uint8_t {
  F32,
  BF16,  // the top 16 bits of an fp32
  F16,   // IEEE half
  I8,    // symmetric per output row: w[n, k] = q[n, k] * scales[n]
  // Stored as I8 (int8 [N, K] + fp32 scales[N], w[n, k] = q[n, k] * scales[n]), but matmul_wt
  // quantizes every activation row on the fly (quantize_activation_row_int8: s_x[m], q_x[m, k])
  // and computes, with S[m, n] = Σ_k q_x[m, k] * q[n, k] summed exactly in int32,
  //   y[m, n] = fma(float(S[m, n]), s_x[m] * scales[n], bias[n])
  // (s_x[m] * scales[n] rounded to fp32 first, then one rounding for the multiply-add; bias 0 when
  // null). Any int8 weight, -128 included. The AVX2 and portable paths give bit-identical
  // results. Needs K <= 131072 (the int32 sums).
  I8_DYNAMIC,
  // Stored as BF16, but matmul_wt rounds every activation to bf16 (round to nearest even, as
  // float_to_bf16) before it is multiplied, so each product is bf16 x bf16 (exact in fp32), summed
  // in fp32; the output stays fp32:  y[m, n] = Σ_k bf16(x[m, k]) * w[n, k] (+ bias[n]).
  // That lets prefill and batches (M > 16) run on AVX-512 BF16's vdpbf16ps (gemm_bf16.h), twice
  // the multiply-adds of an fp32 FMA, where the CPU has it (which, unlike the other paths, treats
  // subnormal inputs as zero); elsewhere the rounded rows go through the BF16 kernels. Opt-in
  // ("bfloat16_compute"): logits move by about 1 % of their range against BF16. Only products
  // with a weight matrix round; attention and the element-wise layers stay fp32.
  BF16_COMPUTE,
};

size_t weight_type_size(WeightType t);
const char* to_string(WeightType t);
// "float32" (or fp32), "bfloat16" (bf16), "float16" (fp16, half), "int8", "int8_dynamic",
// "bfloat16_compute"; nullopt for anything else.
std::optional<WeightType> weight_type_from_string(std::string_view name);
// The widest input (K) the I8_DYNAMIC products take: 127 * 127 * K must fit an int32 sum.
constexpr int kMaxInt8DynamicK = 131072;

// Both int8 storages (same data and scales; they differ only in how matmul_wt multiplies).
inline bool is_int8(WeightType t) { return t == WeightType::I8 || t == WeightType::I8_DYNAMIC; }
// Both bf16 storages (same data; they differ only in how matmul_wt multiplies).
inline bool is_bf16(WeightType t) { return t == WeightType::BF16 || t == WeightType::BF16_COMPUTE; }

// A row-major [N, K] weight matrix ([out, in]) in any storage type. `scales` ([N]) only for int8.
struct WeightMatrix {
  WeightType type = WeightType::F32;
  const void* data = nullptr;
  const float* scales = nullptr;
  int N = 0, K = 0;
};

// y[M,N] = x[M,K] · wᵀ (+ bias[N] when non-null) for any weight type: the GEMV path for M ≤ 16,
// else sgemm (kernels::sgemm) on slabs of 64 weight rows widened to fp32 one slab at a time (never
// the whole matrix); fp32 weights on the AVX-512 level take matmul_wt_rows' tiles from 2 to 64
// rows. I8_DYNAMIC: int8 × int8 integer dot products for every M (see WeightType), each thread
// streaming one contiguous slab of weight rows as the GEMV does, or from 32 rows on a CPU with
// AVX-512 VNNI oneDNN's int8 GEMM (the same exact sums). BF16_COMPUTE: bf16-rounded rows; on a CPU
// with AVX-512 BF16, vdpbf16ps: matmul_wt_rows' kernel up to 16 rows, oneDNN (gemm_mixed) on
// column slabs beyond.
void matmul_wt(const float* x, int M, const WeightMatrix& w, const float* bias, float* y);

// matmul_wt whose output row m depends on x row m alone: the same bits whatever M is and whatever
// the other rows hold (continuous batching: a request must get the same result alone or among 63
// others). Each output is one fma chain over k in order (s = fma(x[m,k], w[n,k], s), then the
// int8 scale and the bias), computed with activation rows in the vector lanes (src/kernels/
// rows_kernel.h), so the bits are also the same on every ISA level. I8_DYNAMIC: matmul_wt's exact
// integer sums. BF16_COMPUTE: the rows rounded to bf16, then BF16's chain; except on the AVX-512
// level of a CPU with AVX-512 BF16, where it runs on vdpbf16ps: lane l (of 16) of output (m, n)
// chains the pairs of k l, l + 16, l + 32, ... in order, each pair as s = fma(x[k+1], w[k+1], s)
// then s = fma(x[k], w[k], s) (denormal inputs and results flushed to zero), and the 16 lanes are
// summed in a fixed tree (lane i + lane i+8, then +4, +2, +1) before the bias: the same bits
// whatever M is, but not the lower levels' bits. M = 0 does nothing.
void matmul_wt_rows(const float* x, int M, const WeightMatrix& w, const float* bias, float* y);

// out[(n - n0) * K + k] = w[n, k] widened to fp32 (int8 times its row scale) for n in [n0, n1).
void widen_rows(const WeightMatrix& w, int n0, int n1, float* out);

// (fp32 <-> bf16 / fp16 conversions: lmforge/io/tensor.h.)
// Symmetric per-row int8: scales[n] = max_k |w[n, k]| / 127 (1 for an all-zero row) and
// q[n, k] = round(w[n, k] / scales[n]), so |q| <= 127.
void quantize_rows_int8(const float* w, int N, int K, int8_t* q, float* scales);
// Dynamic per-token quantization of one activation row (the I8_DYNAMIC path): returns
// s = max_k |x[k]| / 127 (fp32 division) and sets q[k] = x[k] / s (fp32 division) clamped to
// [-127, 127] and rounded half to even, for k < K. A row whose s is 0 (all zeros, or so tiny that
// max/127 underflows) gives s = 0 and q = 0, so its outputs are exactly the bias. NaN entries are
// ignored by the max and give q = -127 (deterministic, not meaningful). The same bits on the
// AVX2 and the portable path.
float quantize_activation_row_int8(const float* x, int K, int8_t* q);

// y[M,N] = x[M,K] · w[N,K]ᵀ (+ bias[N] when non-null). w is row-major [out, in], the layout
// every weight matrix has after loading. Up to 16 rows (decode, batch decode) stream w once through
// a register-tiled kernel, each thread reading one contiguous slab of w; more rows use sgemm
// (kernels::sgemm), split by columns into parallel_for tasks.
void matmul_wt(const float* x, int M, int K, const float* w, int N, const float* bias, float* y);

// C[M,N] = alpha · op(A) · op(B) + beta · C, row-major, op(X) = Xᵀ when trans (cblas_sgemm's
// arguments): oneDNN's sgemm on the AVX-512 level, OpenBLAS's below it. Threads: the calling
// thread's OpenMP thread count (1 inside a parallel_for task).
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc);

// y[M,E] = (x - mean) / sqrt(var + eps) * gamma + beta, per row (biased variance, as torch).
void layer_norm(const float* x, int M, int E, const float* gamma, const float* beta, float eps, float* y);

// In-place activation with HF's definition of each name.
void activate(Activation act, float* x, size_t n);

// Numerically stable in-place softmax of n values. Entries equal to -inf get exactly 0 (masks).
void softmax(float* x, int n);

// scores[j] = scale * (q · row j) for j < rows, row j = keys[j*ld .. j*ld + n) (attention scores
// of one query against the cached keys of one head).
void dot_rows(const float* q, const float* keys, size_t ld, int rows, int n, float scale, float* scores);
// y[0..n) = Σ_j p[j] · values[j*ld .. j*ld + n), rows with p[j] == 0 skipped (attention output).
void weighted_rows_sum(const float* p, const float* values, size_t ld, int rows, int n, float* y);

float dot(const float* a, const float* b, int n);
// y += a * x
void axpy(float a, const float* x, float* y, int n);

// A borrowed reference to a callable `void(int task)`: no allocation, no ownership (the callable
// must outlive the call it is passed to).
class TaskRef {
 public:
  template <class F>
  TaskRef(const F& f) : obj_(&f), call_([](const void* o, int t) { (*static_cast<const F*>(o))(t); }) {}
  void operator()(int t) const { call_(obj_, t); }

 private:
  const void* obj_;
  void (*call_)(const void*, int);
};

// Runs fn(t) for every t in [0, tasks) on the kernel threads, the calling thread included, and
// returns when all are done. Threads claim tasks one at a time, so a thread the OS preempts holds
// up at most the task it is running; idle threads spin briefly, then sleep. Called from inside a
// task, it runs the tasks serially on that thread. tasks < 2^20.
void parallel_for(int tasks, TaskRef fn);

// The instruction-set level the kernels run at. One binary holds every level and picks the best
// the CPU has at start-up:
//   Avx512: AVX-512 F/BW/VL/DQ (plus FMA/F16C): 16-lane GEMV tiles; with AVX-512 VNNI also the
//           vpdpbusd int8 kernel (the same bits as AVX2's), and the AVX-512 BF16 flag is reported.
//   Avx2:   AVX2 + FMA + F16C.
//   Portable: plain C++.
// The environment variable LMFORGE_ISA=portable|avx2|avx512 lowers the level (it never raises it
// past the CPU's); LMFORGE_NO_AVX2=1 is the older spelling of portable. Within one level a row's
// result never depends on the batch (matmul_wt_rows); across levels the last bits of the other
// products differ (other summation orders), so a process runs one level throughout.
// matmul_wt_rows gives the same bits on every level.
enum class Isa : uint8_t { Portable, Avx2, Avx512 };
Isa isa();
// The best level this CPU supports, whatever LMFORGE_ISA says.
Isa detected_isa();
const char* to_string(Isa level);  // "portable", "avx2", "avx512"
std::optional<Isa> isa_from_string(std::string_view name);
bool cpu_has_avx512_vnni();
bool cpu_has_avx512_bf16();
// One line for --version and benchmarks, e.g. "avx512 (AVX-512F/BW/VL/DQ, VNNI, BF16)", plus
// "(forced by LMFORGE_ISA; the CPU has avx512)" when lowered.
std::string isa_description();
// The LMFORGE_ISA value when it is not one of the names (the kernels then use the best level), so
// that a front-end can refuse it with one clear line; empty when fine.
std::string isa_env_error();
// Tests and benchmarks: run at `level` (clamped to detected_isa()). Not while kernels run.
void set_isa(Isa level);
// isa() >= Isa::Avx2.
bool using_avx2();
// The fp32 multiply-add peak of the current level on num_threads() threads, in GFLOP/s (2 per
// FMA lane), measured now by independent FMA chains in registers (best of 5 runs of ~20 ms):
// the ceiling benchmarks compare compute-bound figures with.
double fma_peak_gflops();
// (bf16_dot_peak_gflops: lmforge/kernels/gemm_bf16.h.)
// Threads of parallel_for (default: OMP_NUM_THREADS, else the CPUs this process may use).
// OpenBLAS runs single-threaded inside our tasks. Set it before running a model, not while
// kernels run.
int num_threads();
void set_num_threads(int n);

}  // namespace lmforge::kernels
