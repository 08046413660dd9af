#pragma once
// Declarations of the ISA-specific implementations: avx2:: (files *_avx2.cpp, compiled with -mavx2
// -mfma -mf16c; call only when kernels::isa() >= Isa::Avx2) and avx512:: (files *_avx512.cpp,
// compiled with AVX-512 F/BW/VL/DQ + VNNI + BF16; call only when kernels::isa() == Isa::Avx512, and
// the VNNI kernel only when cpu_has_avx512_vnni()). Each has a portable twin in kernels.cpp.
#include <cstddef>
#include <cstdint>

#include "lmforge/kernels/kernels.h"

namespace lmforge::kernels {

// Storage of one low-precision weight (bit patterns; see WeightType).
struct Bf16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};

}  // namespace lmforge::kernels

namespace lmforge::kernels::avx2 {

// Largest M matmul_wt sends to gemv_rows (beyond it sgemm is faster); gemv_rows itself takes any
// M >= 1.
constexpr int kMaxGemvRows = 16;

// y[m*ldy + n] = sum_k x[m*w.K + k] * w[n, k] (+ bias[n] when non-null), w widened to fp32 (and
// times its row scale for int8), for n in [n0, n1), m in [0, M).
void gemv_rows(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy);
// matmul_wt_rows's product (rows_kernel.h) for n in [n0, n1), m in [0, M), from x packed in panels
// of kRowLanes rows, P = ceil(M / kRowLanes) per k (xp[(k * P + p) * kRowLanes + l] =
// x[p * kRowLanes + l, k], zero past M):
// each output one fma chain over k in order, the same bits on every level and for every M.
constexpr int kRowLanes = 8;
void gemm_rows(const float* xp, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy);
// The same products for M <= kFewRows from x itself (not packed), weight rows in the lanes: the
// same bits again (see rows_avx2.cpp).
constexpr int kFewRows = 4;
void gemm_few_rows(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy);
// I8_DYNAMIC (see kernels.h for the math): y[m*ldy + n] for n in [n0, n1), m in [0, M), any M,
// from activation rows already quantized (quantize_activation_row_int8): row m's int8 values at
// qx + m*ldq, zero-padded to ldq, a multiple of 32 (so every activation load is a whole vector),
// and its scale sx[m]. w.data/w.scales are the int8 weights and their row scales.
void gemm_i8_dynamic(const int8_t* qx, size_t ldq, const float* sx, int M, const WeightMatrix& w, const float* bias,
                     int n0, int n1, float* y, int ldy);
// quantize_activation_row_int8, vectorized (the same bits).
float quantize_activation_row(const float* x, int K, int8_t* q);
// out[0..n) = the n weights at `data` widened to fp32 (int8: the raw values, no scale).
void to_float(WeightType type, const void* data, size_t n, float* out);
void dot_rows(const float* q, const float* keys, size_t ld, int rows, int n, float scale, float* scores);
void weighted_rows_sum(const float* p, const float* values, size_t ld, int rows, int n, float* y);
float dot(const float* a, const float* b, int n);
void axpy(float a, const float* x, float* y, int n);

// x = x * sigmoid(2 * sqrt(2/pi) * (x + 0.044715 x^3)), which equals HF's tanh form
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) without its cancellation near x << 0.
void gelu_tanh(float* x, size_t n);
// x = x * sigmoid(a * x) (quick_gelu: a = 1.702, silu: a = 1).
void mul_sigmoid(float* x, size_t n, float a);
// In-place softmax of n values; exp of -inf is exactly 0 (masked entries).
void softmax(float* x, int n);
// One row of layer norm (biased variance).
void layer_norm_row(const float* x, int E, const float* gamma, const float* beta, float eps, float* y);
// 12 independent chains of `iters` 8-lane FMAs (kernels::fma_peak_gflops); the result defeats
// dead-code elimination.
float fma_probe(long iters);

}  // namespace lmforge::kernels::avx2

namespace lmforge::kernels::avx512 {

// The widest K of the VNNI kernel (its offset sums must fit an int32); wider goes to avx2::.
constexpr int kMaxVnniK = 65536;

// avx2::gemv_rows with 16-lane vectors for M >= 2 (M = 1: avx2::gemv_rows itself); its bits
// differ from the AVX2 path's but, as there, do not depend on M for M >= 2.
void gemv_rows(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy);
// avx2::gemm_rows over panels of 16 rows: the same bits.
constexpr int kRowLanes = 16;
// The panels p0 .. p1-1 of gemm_rows's xp from x [M, K] (P panels in all).
void pack_rows(const float* x, int M, int K, int P, int p0, int p1, float* xp);
void gemm_rows(const float* xp, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy);
// avx2::gemm_few_rows with 16 weight rows in the lanes, for M <= kFewRows.
constexpr int kFewRows = 8;
void gemm_few_rows(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy);
// I8_DYNAMIC's output from exact int32 sums computed elsewhere (oneDNN's GEMM):
// y[m*ldy + n] = fma(float(sums[m*lds + n - n0]), sx[m] * w.scales[n], bias[n] or 0), the formula
// of gemm_i8_dynamic (kernels.h), vectorized: the same bits.
void scale_i8_sums(const int32_t* sums, int lds, const float* sx, int M, const WeightMatrix& w, const float* bias,
                   int n0, int n1, float* y, int ldy);
// avx2::gemm_i8_dynamic with VNNI: the same exact sums, the same bits.
void gemm_i8_dynamic(const int8_t* qx, size_t ldq, const float* sx, int M, const WeightMatrix& w, const float* bias,
                     int n0, int n1, float* y, int ldy);
// avx2::fma_probe with 16-lane FMAs.
float fma_probe(long iters);
// BF16_COMPUTE on vdpbf16ps (call only when cpu_has_avx512_bf16()): y[m*ldy + n] for n in [n0, n1),
// m < M, from activation rows already rounded to bf16 (row m: K values at xb + m*ldx) and bf16
// weights w [N, K], + bias[n]: matmul_wt_rows' vdpbf16ps contract (kernels.h: 16 lanes of pair
// chains over k in order, then a fixed tree), so the same bits whatever M is (gemm_bf16_avx512.cpp).
void gemm_bf16_rows(const uint16_t* xb, int ldx, int M, const uint16_t* w, int K, const float* bias, int n0, int n1,
                    float* y, int ldy);

}  // namespace lmforge::kernels::avx512
