// gemm_mixed on AVX-512 BF16 (vdpbf16ps): each instruction multiplies 16 pairs of bf16 values
// and adds both products to 16 fp32 sums, twice the multiply-adds of an fp32 FMA.
//
// Same loop nest as bf16.cpp (BLIS order: column blocks of NC, depth blocks of KC, row blocks of
// MC), with operands packed as bf16 pairs: a 32-bit word holds the elements at depths k and k+1
// (low half, high half), which is what vdpbf16ps multiplies lane by lane. B's KC x NC block goes
// into 32-column panels ([KC/2][32] words), A's MC x KC block into 12-row panels ([KC/2][12]
// words; a word is broadcast to all lanes). The 12 x 32 micro-kernel keeps its C tile in 24
// registers. fp32 operands are rounded to bf16 (round to nearest even, as to_bf16) while packing,
// the semantics of every level (bf16.h); an odd depth is padded with a zero.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/transpose_avx512.h"
#include "lmforge/io/tensor.h"
#include "lmforge/kernels/gemm_bf16.h"

namespace lmforge::kernels::avx512 {
namespace {

using kernels::avx512::transpose16;

constexpr int kMR = 6, kNR = 64;
constexpr int kKC = 256, kMC = 192, kNC = 2048;  // KC even, MC a multiple of MR, NC of NR


// Element (r, c) of the logical matrix as bf16 bits.
inline uint16_t at(const MatRef& m, int r, int c) {
  const size_t i = m.trans ? static_cast<size_t>(c) * m.ld + r : static_cast<size_t>(r) * m.ld + c;
  return m.bf16 ? m.bf16[i] : float_to_bf16(m.f32[i]);
}

inline uint32_t pair(uint16_t lo, uint16_t hi) { return lo | static_cast<uint32_t>(hi) << 16; }

// 16 fp32 → 16 bf16 (round to nearest even; NaN → 0x7fc0 as float_to_bf16) in the low halves of 16
// 32-bit lanes.
inline __m512i round16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7fc0));
}
// Packing: both operands go through one routine, on a logical matrix L whose rows are depths:
// B itself, and Aᵀ for A. A panel holds W consecutive columns of L (W = 32 for B, 12 for A) for
// each pair of depths (k, k+1): word = L(k, j) | L(k+1, j) << 16.

inline MatRef transposed(const MatRef& m) { return {m.f32, m.bf16, m.ld, !m.trans}; }

// L(k, j .. j+16) for the lanes of `mask` (others 0) as bf16 in the low halves of 32-bit lanes;
// L(k, j) at k * ld + j (rows of L contiguous).
inline __m512i row16(const MatRef& L, int k, int j, __mmask16 mask) {
  const size_t i = static_cast<size_t>(k) * L.ld + j;
  if (L.bf16) return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, L.bf16 + i));
  return round16(_mm512_maskz_loadu_ps(mask, L.f32 + i));
}

// Words L(k, j+l) | L(k+1, j+l) << 16 for the lanes l of `mask` (others 0) when L(k, j) is at
// j * ld + k (columns of L contiguous, so a bf16 pair is one 32-bit load): gathers.
inline __m512i column_pairs16(const MatRef& L, int k, int j, __mmask16 mask) {
  const __m512i idx = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_add_epi32(_mm512_set1_epi32(j), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
                                                          _mm512_set1_epi32(L.ld)),
                                       _mm512_set1_epi32(k));
  if (L.bf16) return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, idx, L.bf16, 2);
  const __m512 lo = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, idx, L.f32, 4);
  const __m512 hi = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, _mm512_add_epi32(idx, _mm512_set1_epi32(1)), L.f32, 4);
  return _mm512_maskz_or_epi32(mask, round16(lo), _mm512_slli_epi32(round16(hi), 16));
}

// Columns of L contiguous (L(k, j) at j * ld + k), 16 pairs of depths from k at once: column j's
// 32 depths are one vector of 16 words, and 16 columns are transposed into 16 rows of the panel.
template <int W>
void pack_columns32(uint32_t* d, const MatRef& L, int k, int j0, int valid) {
  for (int h = 0; h < W; h += 16) {
    __m512i r[16];
    for (int l = 0; l < 16; ++l) {
      if (h + l >= valid) {
        r[l] = _mm512_setzero_si512();
      } else if (L.bf16) {
        r[l] = _mm512_loadu_si512(L.bf16 + static_cast<size_t>(j0 + h + l) * L.ld + k);
      } else {  // (cvtne2ps: the second operand gives the low 16 bf16)
        const float* src = L.f32 + static_cast<size_t>(j0 + h + l) * L.ld + k;
        r[l] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src));
      }
    }
    transpose16(r);
    const __mmask16 store = static_cast<__mmask16>(W - h >= 16 ? 0xffff : (1u << (W - h)) - 1);
    for (int q = 0; q < 16; ++q) _mm512_mask_storeu_epi32(d + static_cast<size_t>(q) * W + h, store, r[q]);
  }
}

// L's depths [k0, k0+kc) of K, columns [j0, j0+valid) of `cols` → panel [(kc+1)/2][W], zero-padded.
template <int W>
void pack_panel(uint32_t* dst, const MatRef& L, int K, int k0, int kc, int j0, int valid, int cols) {
  const int pairs = (kc + 1) / 2;
  // Gather indices are int32 element offsets.
  const bool gather_ok = static_cast<long>(cols) * L.ld + K < (1L << 31);
  int q = 0;
  if (L.trans)
    for (; 2 * q + 32 <= kc; q += 16) pack_columns32<W>(dst + static_cast<size_t>(q) * W, L, k0 + 2 * q, j0, valid);
  for (; q < pairs; ++q) {
    const int k = k0 + 2 * q;
    uint32_t* d = dst + static_cast<size_t>(q) * W;
    if (k + 1 >= K || (L.trans && !gather_ok)) {  // the odd last depth (paired with 0), or too far for a gather
      for (int j = 0; j < W; ++j) d[j] = j < valid ? pair(at(L, k, j0 + j), k + 1 < K ? at(L, k + 1, j0 + j) : 0) : 0;
      continue;
    }
    for (int h = 0; h < W; h += 16) {
      const int n = std::clamp(valid - h, 0, 16);
      const __mmask16 mask = static_cast<__mmask16>(n == 16 ? 0xffff : (1u << n) - 1);
      const __mmask16 store = static_cast<__mmask16>(W - h >= 16 ? 0xffff : (1u << (W - h)) - 1);
      __m512i v;
      if (!L.trans)
        v = _mm512_or_si512(row16(L, k, j0 + h, mask), _mm512_slli_epi32(row16(L, k + 1, j0 + h, mask), 16));
      else
        v = column_pairs16(L, k, j0 + h, mask);
      _mm512_mask_storeu_epi32(d + h, store, v);
    }
  }
}

// B's logical rows [k0, k0+kc), columns [j0, j0+nr) → panel [(kc+1)/2][32].
void pack_b(uint32_t* dst, const MatRef& B, int K, int N, int k0, int kc, int j0, int nr) {
  pack_panel<kNR>(dst, B, K, k0, kc, j0, nr, N);
}

// A's logical rows [i0, i0+mr), depths [k0, k0+kc) → panel [(kc+1)/2][12].
void pack_a(uint32_t* dst, const MatRef& A, int M, int K, int i0, int mr, int k0, int kc) {
  pack_panel<kMR>(dst, transposed(A), K, k0, kc, i0, mr, M);
}

// C tile (mr x nr valid) = A panel · B panel (+ C when beta is 1): kMR x kNR / 16 accumulators,
// each broadcast A word used kNR / 16 times.
void kernel(int pairs, const uint32_t* a, const uint32_t* b, float* c, int ldc, float beta, int mr, int nr) {
  constexpr int kNB = kNR / 16;
  __m512 acc[kMR][kNB];
  for (auto& r : acc)
    for (auto& v : r) v = _mm512_setzero_ps();
  for (int q = 0; q < pairs; ++q, a += kMR, b += kNR) {
    __m512bh bv[kNB];
#pragma GCC unroll 4
    for (int h = 0; h < kNB; ++h) bv[h] = (__m512bh)_mm512_loadu_si512(b + 16 * h);
#pragma GCC unroll 12
    for (int i = 0; i < kMR; ++i) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i]));
#pragma GCC unroll 4
      for (int h = 0; h < kNB; ++h) acc[i][h] = _mm512_dpbf16_ps(acc[i][h], x, bv[h]);
    }
  }
  __mmask16 m[kNB];
  for (int h = 0; h < kNB; ++h) {
    const int n = std::clamp(nr - 16 * h, 0, 16);
    m[h] = static_cast<__mmask16>(n == 16 ? 0xffff : (1u << n) - 1);
  }
  for (int i = 0; i < mr; ++i) {
    float* ci = c + static_cast<size_t>(i) * ldc;
    for (int h = 0; h < kNB; ++h) {
      if (!m[h]) break;
      __m512 y = acc[i][h];
      if (beta != 0.0f) y = _mm512_add_ps(_mm512_maskz_loadu_ps(m[h], ci + 16 * h), y);
      _mm512_mask_storeu_ps(ci + 16 * h, m[h], y);
    }
  }
}

struct PackBuffers {
  std::vector<uint32_t> a, b;
};

PackBuffers& pack_buffers() {
  static thread_local PackBuffers p;
  if (p.a.empty()) {
    p.a.resize(static_cast<size_t>(kMC) * kKC / 2);
    p.b.resize(static_cast<size_t>(kNC) * kKC / 2);
  }
  return p;
}

}  // namespace

float bf16_dot_probe(long iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f7f3f7f), b = (__m512bh)_mm512_set1_epi32(0x33d633d6);
  for (long it = 0; it < iters; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_cvtss_f32(s);
}

void gemm_bf16(int M, int N, int K, const MatRef& A, const MatRef& B, float beta, float* C, int ldc) {
  PackBuffers& buf = pack_buffers();
  uint32_t* Ap = buf.a.data();
  uint32_t* Bp = buf.b.data();
  const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
#pragma omp parallel num_threads(nt)
  for (int jc = 0; jc < N; jc += kNC) {
    const int nc = std::min(kNC, N - jc), npan = (nc + kNR - 1) / kNR;
    for (int pc = 0; pc < K; pc += kKC) {
      const int kc = std::min(kKC, K - pc), pairs = (kc + 1) / 2;
      const float b_eff = pc == 0 ? beta : 1.0f;
#pragma omp for schedule(static)
      for (int p = 0; p < npan; ++p)
        pack_b(Bp + static_cast<size_t>(p) * pairs * kNR, B, K, N, pc, kc, jc + p * kNR, std::min(kNR, nc - p * kNR));
      for (int ic = 0; ic < M; ic += kMC) {
        const int mc = std::min(kMC, M - ic), mpan = (mc + kMR - 1) / kMR;
#pragma omp for schedule(static)
        for (int q = 0; q < mpan; ++q)
          pack_a(Ap + static_cast<size_t>(q) * pairs * kMR, A, M, K, ic + q * kMR, std::min(kMR, mc - q * kMR), pc, kc);
#pragma omp for schedule(static)
        for (int p = 0; p < npan; ++p) {
          const uint32_t* bp = Bp + static_cast<size_t>(p) * pairs * kNR;
          const int nr = std::min(kNR, nc - p * kNR);
          for (int q = 0; q < mpan; ++q)
            kernel(pairs, Ap + static_cast<size_t>(q) * pairs * kMR, bp, C + static_cast<size_t>(ic + q * kMR) * ldc + jc + p * kNR,
                   ldc, b_eff, std::min(kMR, mc - q * kMR), nr);
        }
      }
    }
  }
}

}  // namespace lmforge::kernels::avx512
