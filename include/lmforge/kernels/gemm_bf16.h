#pragma once
// bf16 matrix products of the training pass (TrainOptions::bf16) and of inference's
// WeightType::BF16_COMPUTE (matmul_wt): operands given in fp32 or bf16 (raw uint16_t bits),
// multiplied as bf16 values (an fp32 operand, e.g. a gradient or an activation, is rounded to
// nearest even as lmforge::float_to_bf16 while it is packed, as torch's bf16 autocast has it in
// bf16), fp32 accumulation and output.
//
// With AVX-512 BF16 (using_avx512_bf16(): the avx512 level on such a CPU) the products run on
// oneDNN's bf16 matmul (vdpbf16ps: twice the multiply-adds of an fp32 FMA per instruction), fp32
// operands rounded to bf16 buffers first. Otherwise the gain is memory traffic: bf16 operands are
// widened in registers (bf16 → fp32 is a 16-bit shift) while being packed into small
// cache-resident fp32 panels (KC x 16 and MC x KC floats, the usual GEMM packing), never into fp32
// copies of whole tensors. The two paths sum in other orders (last-bit differences). OpenBLAS 0.3.21 as Debian ships it declares cblas_sbgemm in
// <cblas.h> but is built without BUILD_BFLOAT16, so the library has no such symbol: this GEMM is
// our own (6x16 AVX2/FMA micro-kernel, OpenMP over column panels; a portable path without AVX2).
// Called from inside a kernels::parallel_for task it runs on that thread alone (OpenMP on the
// calling thread's OpenMP threads otherwise).
#include <cstddef>
#include <cstdint>

namespace lmforge::kernels {

// A matrix operand: exactly one of f32 / bf16 is set. Element (r, c) of the LOGICAL matrix is at
// index r * ld + c, or c * ld + r when trans.
struct MatRef {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  int ld = 0;
  bool trans = false;
};

inline MatRef mat(const float* p, int ld, bool trans = false) { return {p, nullptr, ld, trans}; }
inline MatRef mat(const uint16_t* p, int ld, bool trans = false) { return {nullptr, p, ld, trans}; }

// C[M,N] (row stride ldc) = A[M,K] · B[K,N] + beta * C, beta 0 or 1 (with 0, C is not read).
// Deterministic for a given level and thread count (below the AVX-512 BF16 path, every element's
// sum runs over k in the same order whatever the thread count).
void gemm_mixed(int M, int N, int K, const MatRef& A, const MatRef& B, float beta, float* C, int ldc);

namespace avx512 {
// 12 independent vdpbf16ps chains for `iters` rounds (bf16_dot_peak_gflops' probe).
float bf16_dot_probe(long iters);
}  // namespace avx512

// Whether gemm_mixed multiplies on vdpbf16ps (oneDNN) now: the AVX-512 level on a CPU with AVX-512
// BF16.
bool using_avx512_bf16();

// The bf16 multiply-add peak of vdpbf16ps on num_threads() threads in GFLOP/s (each instruction:
// 16 lanes x 2 multiply-adds = 64 FLOP), measured now as fma_peak_gflops; 0 where the kernels do
// not use it (no AVX-512 BF16, or a lower LMFORGE_ISA level).
double bf16_dot_peak_gflops();

// dst[i] = bf16(src[i]) for i < n, round-to-nearest-even (NaN → 0x7FC0), OpenMP when n is large.
void to_bf16(uint16_t* dst, const float* src, size_t n);

}  // namespace lmforge::kernels
