#pragma once
// oneDNN's (libdnnl) row-major GEMMs, for the compute-bound products on the AVX-512 level:
// prefill and batches. Called from a kernels::parallel_for task they run on that thread alone
// (oneDNN's OpenMP runtime reads the thread's OpenMP thread count, which tasks hold at 1).
// Their kernels are oneDNN's own JIT, chosen for the CPU at run time; callers use them only where
// kernels::isa() is the AVX-512 level (the lower levels keep their own paths, as the tests force).
#include <cstdint>
#include <string>

namespace lmforge::kernels::onednn {

// cblas_sgemm's row-major product, C[M,N] = alpha · op(A) · op(B) + beta · C (op(X) = Xᵀ when
// trans), on oneDNN's sgemm (fp32; the summation order is oneDNN's).
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc);

// c[m * ldc + n] = Σ_k x[m * ldx + k] * w[n * ldw + k], m < M, n < N: int8 × int8 summed
// exactly in int32 (no saturation: call only on a CPU with AVX-512 VNNI, whose vpdpbusd adds its
// products without the 16-bit intermediate of vpmaddubsw, and with 127 * 128 * K < 2^31).
void gemm_s8_nt(int M, int N, int K, const int8_t* x, int ldx, const int8_t* w, int ldw, int32_t* c, int ldc);

// C[m * ldc + n] = Σ_k A(m, k) * B(k, n) + beta * C[m * ldc + n] (beta 0 or 1), A and B bf16 (raw
// bits) with A(m, k) at a[m * lda + k] (a[k * lda + m] when a_trans), B(k, n) at b[k * ldb + n]
// (b[n * ldb + k] when b_trans); the products are exact in fp32 and summed in fp32. oneDNN's matmul
// primitive (AVX-512 BF16 vdpbf16ps where the CPU has it), on the calling thread's OpenMP threads;
// one primitive per layout, made on first use and kept. Call only where the CPU has AVX-512 BF16.
void gemm_bf16(int M, int N, int K, const uint16_t* a, int lda, bool a_trans, const uint16_t* b, int ldb, bool b_trans,
               float beta, float* c, int ldc);

// "oneDNN 2.6.3" (the library this process loaded).
std::string version();

}  // namespace lmforge::kernels::onednn
