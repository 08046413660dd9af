// Mixed fp32/bf16 GEMM and fp32 → bf16 conversion (see bf16.h).
//
// Loop nest (BLIS order): column blocks of NC, depth blocks of KC, row blocks of MC. B's KC x NC
// block is packed once into 16-column panels ([k][16] floats), A's MC x KC block into 6-row
// panels ([k][6]); bf16 is widened to fp32 while packing, in registers. The 6x16 micro-kernel
// keeps its C tile in 12 ymm accumulators. Threads share the packing (panels split statically)
// and then split the 16-column panels, so each thread streams its own part of B from its cache.
#include "lmforge/kernels/gemm_bf16.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "lmforge/io/tensor.h"
#include "kernels/onednn.h"
#include "lmforge/kernels/kernels.h"

#define LMF_AVX2 __attribute__((target("avx2,fma")))

namespace lmforge::kernels {
namespace {

constexpr int kMR = 6, kNR = 16;
constexpr int kKC = 256, kMC = 192, kNC = 2048;  // MC multiple of MR, NC of NR

// fp32 operands are rounded to bf16 (float_to_bf16: round to nearest even, NaN → 0x7fc0) as they
// are packed: every product multiplies two bf16 values on every level, as torch's bf16 autocast does.
inline float widen(float x) { return bf16_to_float(float_to_bf16(x)); }
inline float widen(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// ---- portable packing and micro-kernel --------------------------------------------------------

// Panel [kc][W] of a logical matrix L (rows k0 .. k0+kc, columns j0 .. j0+w_valid, zero-padded to
// W), L[k][j] stored at src[k*ld + j] when `k_major`, else at src[j*ld + k].
template <int W, class T>
void pack_panel_scalar(float* dst, const T* src, int ld, bool k_major, int k0, int kc, int j0, int w_valid) {
  for (int k = 0; k < kc; ++k) {
    float* d = dst + static_cast<size_t>(k) * W;
    for (int j = 0; j < W; ++j) {
      if (j >= w_valid) {
        d[j] = 0.0f;
        continue;
      }
      const size_t idx = k_major ? static_cast<size_t>(k0 + k) * ld + (j0 + j) : static_cast<size_t>(j0 + j) * ld + (k0 + k);
      d[j] = widen(src[idx]);
    }
  }
}

// B block: logical rows [k0, k0+kc), columns [j0, j0+nr_valid) → panel [kc][16].
template <class T>
void pack_b_scalar(float* dst, const T* src, int ld, bool trans, int k0, int kc, int j0, int nr_valid) {
  pack_panel_scalar<kNR>(dst, src, ld, !trans, k0, kc, j0, nr_valid);
}

// A block: logical rows [i0, i0+mr_valid), depth [k0, k0+kc) → panel [kc][6] (Aᵀ's rows).
template <class T>
void pack_a_scalar(float* dst, const T* src, int ld, bool trans, int i0, int mr_valid, int k0, int kc) {
  pack_panel_scalar<kMR>(dst, src, ld, trans, k0, kc, i0, mr_valid);
}

// C tile (mr x nr valid) = acc + beta * C.
void store_tile(const float* acc, float* c, int ldc, float beta, int mr, int nr) {
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      float& y = c[static_cast<size_t>(i) * ldc + j];
      y = beta == 0.0f ? acc[i * kNR + j] : y + acc[i * kNR + j];
    }
}

void kernel_scalar(int kc, const float* a, const float* b, float* c, int ldc, float beta, int mr, int nr) {
  float acc[kMR * kNR] = {};
  for (int k = 0; k < kc; ++k, a += kMR, b += kNR)
    for (int i = 0; i < kMR; ++i)
      for (int j = 0; j < kNR; ++j) acc[i * kNR + j] += a[i] * b[j];
  store_tile(acc, c, ldc, beta, mr, nr);
}

// ---- AVX2 packing and micro-kernel ------------------------------------------------------------

// Eight fp32 rounded to bf16 (as widen(float)).
LMF_AVX2 inline __m256 load8(const float* p) {
  const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(p));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)),
                                     _mm256_set1_epi32(static_cast<int>(0xffff0000u)));
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  return _mm256_castsi256_ps(_mm256_blendv_epi8(r, _mm256_set1_epi32(0x7fc00000), nan));
}
LMF_AVX2 inline __m256 load8(const uint16_t* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

LMF_AVX2 inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

template <class T>
LMF_AVX2 void pack_b_avx2(float* dst, const T* src, int ld, bool trans, int k0, int kc, int j0, int nr_valid) {
  if (nr_valid < kNR) return pack_b_scalar(dst, src, ld, trans, k0, kc, j0, nr_valid);
  if (!trans) {  // rows of B are contiguous: 16 floats per k
    for (int k = 0; k < kc; ++k) {
      const T* s = src + static_cast<size_t>(k0 + k) * ld + j0;
      _mm256_storeu_ps(dst + static_cast<size_t>(k) * kNR, load8(s));
      _mm256_storeu_ps(dst + static_cast<size_t>(k) * kNR + 8, load8(s + 8));
    }
    return;
  }
  // Columns of B are contiguous: transpose 8 columns x 8 depths at a time.
  int k = 0;
  for (; k + 8 <= kc; k += 8)
    for (int h = 0; h < 2; ++h) {
      __m256 r[8];
      for (int j = 0; j < 8; ++j) r[j] = load8(src + static_cast<size_t>(j0 + 8 * h + j) * ld + (k0 + k));
      transpose8(r);
      for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + static_cast<size_t>(k + q) * kNR + 8 * h, r[q]);
    }
  if (k < kc) pack_b_scalar(dst + static_cast<size_t>(k) * kNR, src, ld, trans, k0 + k, kc - k, j0, nr_valid);
}

template <class T>
LMF_AVX2 void pack_a_avx2(float* dst, const T* src, int ld, bool trans, int i0, int mr_valid, int k0, int kc) {
  if (trans || mr_valid < kMR) return pack_a_scalar(dst, src, ld, trans, i0, mr_valid, k0, kc);
  // Rows of A are contiguous: transpose 6 rows (+2 zero) x 8 depths, store 6 lanes per depth.
  const __m256i keep6 = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
  int k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r[8];
    for (int i = 0; i < kMR; ++i) r[i] = load8(src + static_cast<size_t>(i0 + i) * ld + (k0 + k));
    r[6] = r[7] = _mm256_setzero_ps();
    transpose8(r);
    for (int q = 0; q < 8; ++q) _mm256_maskstore_ps(dst + static_cast<size_t>(k + q) * kMR, keep6, r[q]);
  }
  if (k < kc) pack_a_scalar(dst + static_cast<size_t>(k) * kMR, src, ld, trans, i0, mr_valid, k0 + k, kc - k);
}

LMF_AVX2 void kernel_avx2(int kc, const float* a, const float* b, float* c, int ldc, float beta, int mr, int nr) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int k = 0; k < kc; ++k, a += kMR, b += kNR) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 x = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  const __m256 acc[kMR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (mr == kMR && nr == kNR) {
    for (int i = 0; i < kMR; ++i) {
      float* ci = c + static_cast<size_t>(i) * ldc;
      __m256 y0 = acc[i][0], y1 = acc[i][1];
      if (beta != 0.0f) {
        y0 = _mm256_add_ps(_mm256_loadu_ps(ci), y0);
        y1 = _mm256_add_ps(_mm256_loadu_ps(ci + 8), y1);
      }
      _mm256_storeu_ps(ci, y0);
      _mm256_storeu_ps(ci + 8, y1);
    }
    return;
  }
  alignas(32) float tile[kMR * kNR];
  for (int i = 0; i < kMR; ++i) {
    _mm256_store_ps(tile + i * kNR, acc[i][0]);
    _mm256_store_ps(tile + i * kNR + 8, acc[i][1]);
  }
  store_tile(tile, c, ldc, beta, mr, nr);
}

// ---- driver -----------------------------------------------------------------------------------

template <class T>
void pack_b(bool avx2, float* dst, const T* src, int ld, bool trans, int k0, int kc, int j0, int nr_valid) {
  if (avx2) return pack_b_avx2(dst, src, ld, trans, k0, kc, j0, nr_valid);
  pack_b_scalar(dst, src, ld, trans, k0, kc, j0, nr_valid);
}

template <class T>
void pack_a(bool avx2, float* dst, const T* src, int ld, bool trans, int i0, int mr_valid, int k0, int kc) {
  if (avx2) return pack_a_avx2(dst, src, ld, trans, i0, mr_valid, k0, kc);
  pack_a_scalar(dst, src, ld, trans, i0, mr_valid, k0, kc);
}

void pack_b_ref(bool avx2, float* dst, const MatRef& B, int k0, int kc, int j0, int nr_valid) {
  if (B.bf16) return pack_b(avx2, dst, B.bf16, B.ld, B.trans, k0, kc, j0, nr_valid);
  pack_b(avx2, dst, B.f32, B.ld, B.trans, k0, kc, j0, nr_valid);
}

void pack_a_ref(bool avx2, float* dst, const MatRef& A, int i0, int mr_valid, int k0, int kc) {
  if (A.bf16) return pack_a(avx2, dst, A.bf16, A.ld, A.trans, i0, mr_valid, k0, kc);
  pack_a(avx2, dst, A.f32, A.ld, A.trans, i0, mr_valid, k0, kc);
}

// Packing buffers of the calling thread, kept between calls (no page faults per matmul).
struct PackBuffers {
  std::vector<float> a, b;
};

PackBuffers& pack_buffers() {
  static thread_local PackBuffers p;
  if (p.a.empty()) {
    p.a.resize(static_cast<size_t>(kMC) * kKC);
    p.b.resize(static_cast<size_t>(kNC) * kKC);
  }
  return p;
}

// An operand as bf16: its own bits, or the fp32 values rounded into `buffer` (the stored rows,
// `rows` x `cols` at stride ld, made dense: ld becomes cols).
MatRef as_bf16(const MatRef& m, int rows, int cols, std::vector<uint16_t>& buffer) {
  if (m.bf16) return m;
  buffer.resize(static_cast<size_t>(rows) * cols);
  if (m.ld == cols) {
    to_bf16(buffer.data(), m.f32, buffer.size());
  } else {
    for (int r = 0; r < rows; ++r) to_bf16(buffer.data() + static_cast<size_t>(r) * cols, m.f32 + static_cast<size_t>(r) * m.ld, cols);
  }
  return mat(buffer.data(), cols, m.trans);
}

// gemm_mixed on oneDNN's bf16 matmul (vdpbf16ps): fp32 operands rounded to bf16 first (to_bf16,
// the rounding of every level).
void gemm_bf16_onednn(int M, int N, int K, const MatRef& A, const MatRef& B, float beta, float* C, int ldc) {
  thread_local std::vector<uint16_t> a16, b16;
  const MatRef a = A.trans ? as_bf16(A, K, M, a16) : as_bf16(A, M, K, a16);
  const MatRef b = B.trans ? as_bf16(B, N, K, b16) : as_bf16(B, K, N, b16);
  onednn::gemm_bf16(M, N, K, a.bf16, a.ld, a.trans, b.bf16, b.ld, b.trans, beta, C, ldc);
}

}  // namespace

void gemm_mixed(int M, int N, int K, const MatRef& A, const MatRef& B, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (beta == 0.0f)
      for (int i = 0; i < M; ++i) std::fill_n(C + static_cast<size_t>(i) * ldc, N, 0.0f);
    return;
  }
  if (using_avx512_bf16()) return gemm_bf16_onednn(M, N, K, A, B, beta, C, ldc);
  const bool avx2 = kernels::using_avx2();
  PackBuffers& buf = pack_buffers();
  float* Ap = buf.a.data();
  float* Bp = buf.b.data();
  const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
#pragma omp parallel num_threads(nt)
  for (int jc = 0; jc < N; jc += kNC) {
    const int nc = std::min(kNC, N - jc), npan = (nc + kNR - 1) / kNR;
    for (int pc = 0; pc < K; pc += kKC) {
      const int kc = std::min(kKC, K - pc);
      const float b_eff = pc == 0 ? beta : 1.0f;
#pragma omp for schedule(static)
      for (int p = 0; p < npan; ++p)
        pack_b_ref(avx2, Bp + static_cast<size_t>(p) * kc * kNR, B, pc, kc, jc + p * kNR,
                   std::min(kNR, nc - p * kNR));
      for (int ic = 0; ic < M; ic += kMC) {
        const int mc = std::min(kMC, M - ic), mpan = (mc + kMR - 1) / kMR;
#pragma omp for schedule(static)
        for (int q = 0; q < mpan; ++q)
          pack_a_ref(avx2, Ap + static_cast<size_t>(q) * kc * kMR, A, ic + q * kMR, std::min(kMR, mc - q * kMR), pc,
                     kc);
#pragma omp for schedule(static)
        for (int p = 0; p < npan; ++p) {
          const float* bp = Bp + static_cast<size_t>(p) * kc * kNR;
          const int nr = std::min(kNR, nc - p * kNR);
          for (int q = 0; q < mpan; ++q) {
            float* c = C + static_cast<size_t>(ic + q * kMR) * ldc + jc + p * kNR;
            const float* ap = Ap + static_cast<size_t>(q) * kc * kMR;
            const int mr = std::min(kMR, mc - q * kMR);
            if (avx2)
              kernel_avx2(kc, ap, bp, c, ldc, b_eff, mr, nr);
            else
              kernel_scalar(kc, ap, bp, c, ldc, b_eff, mr, nr);
          }
        }
      }
    }
  }
}

// ---- fp32 → bf16 ------------------------------------------------------------------------------

namespace {

inline uint16_t to_bf16_one(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

LMF_AVX2 void to_bf16_avx2(uint16_t* dst, const float* src, size_t n) {
  const __m256i inf = _mm256_set1_epi32(0x7f800000), abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), qnan = _mm256_set1_epi32(0x7fc0);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(src + i));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
    r = _mm256_blendv_epi8(r, qnan, nan);
    const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), packed);
  }
  for (; i < n; ++i) dst[i] = to_bf16_one(src[i]);
}

void to_bf16_serial(uint16_t* dst, const float* src, size_t n, bool avx2) {
  if (avx2) return to_bf16_avx2(dst, src, n);
  for (size_t i = 0; i < n; ++i) dst[i] = to_bf16_one(src[i]);
}

}  // namespace

void to_bf16(uint16_t* dst, const float* src, size_t n) {
  const bool avx2 = kernels::using_avx2();
  constexpr size_t kChunk = size_t{1} << 16;
  const long chunks = static_cast<long>((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) if (chunks > 1 && !omp_in_parallel())
  for (long c = 0; c < chunks; ++c) {
    const size_t i0 = static_cast<size_t>(c) * kChunk;
    to_bf16_serial(dst + i0, src + i0, std::min(kChunk, n - i0), avx2);
  }
}

}  // namespace lmforge::kernels
