// AVX2/FMA matrix kernels. Decode (1..16 activation rows) is bound by the bandwidth of streaming
// the weights, so gemv_rows reads each weight row from memory once and uses it for every
// activation row: a register tile of MR activation rows × NR weight rows keeps MR·NR independent
// accumulators (enough to hide FMA latency) while the weight rows of the tile stay in L1 for the
// next MR activation rows. For M > 1 every output is one accumulator summed over k in order, then
// reduced in a fixed order, so a row gets the same bits whatever M (2..16) it was computed with;
// M = 1 has its own kernel (four accumulators per row) and may differ in the last bits.
// Weights may be fp32, bf16, fp16 or int8 (one scale per row): they are widened to fp32 in
// registers and multiplied with fp32 accumulation, the same tiles for every type.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/isa.h"

namespace lmforge::kernels::avx2 {
namespace {

// ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7)): the same order as one lane of hsum4, so a
// sum gets the same bits whichever of the two reduced it.
inline float hsum(__m256 v) {
  v = _mm256_hadd_ps(v, v);
  v = _mm256_hadd_ps(v, v);
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

// {hsum(a), hsum(b), hsum(c), hsum(d)}.
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Lanes [0, r) set, for the last K % 8 elements of a row.
inline __m256i tail_mask(int r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Eight weights widened to fp32 in registers, whatever their storage type: low-precision weights
// never go through an fp32 copy in memory.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const Bf16* p) {  // bf16 is the top half of an fp32
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline __m256 load8(const F16* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// The first r < 8 elements, the rest 0.
inline __m256 load_tail(const float* p, int r) { return _mm256_maskload_ps(p, tail_mask(r)); }
template <class W>
inline __m256 load_tail(const W* p, int r) {
  W buf[8] = {};  // all-zero bits are 0.0 in every storage type
  std::memcpy(buf, p, static_cast<size_t>(r) * sizeof(W));
  return load8(buf);
}

// Output of weight row n: the sum, times the row's scale for int8, plus the bias. One explicit fma
// for int8: left to itself the compiler contracts sum * scale + bias into an fma in some tile
// instantiations and not in others, and a row's bits would depend on the tile it fell in.
inline float finish(float sum, const float* scales, const float* bias, int n) {
  const float b = bias ? bias[n] : 0.0f;
  return scales ? std::fma(sum, scales[n], b) : sum + b;
}

// y[i*ldy + n + j] = x[i,:] · w[n + j,:] (scaled, + bias) for i < MR, j < NR.
// Prefetch: with NR rows read side by side the hardware prefetcher falls behind, so the tile also
// brings the same columns of the NR rows at `ahead` (a later column block) into L2, one cache
// line per row: the `passes` tiles over one column block (one per 4 activation rows) each take
// one contiguous share of the row's lines.
template <int MR, int NR, class W>
inline void tile(const float* x, int K, const W* w, const float* scales, const float* bias, int n, float* y, int ldy,
                 const W* ahead, int pass, int passes) {
  constexpr int kLine = 64 / sizeof(W);  // weights per cache line
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  const W* wr = w + static_cast<long>(n) * K;
  const int share = (K / kLine + passes - 1) / passes * kLine;
  const int pf0 = ahead ? pass * share : K, pf1 = std::min(K, pf0 + share);
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    if (k >= pf0 && k < pf1 && k % kLine == 0)
      for (int j = 0; j < NR; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(ahead + static_cast<long>(j) * K + k), _MM_HINT_T1);
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load8(wr + static_cast<long>(j) * K + k);
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + static_cast<long>(i) * K + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(wv[j], xv, acc[i][j]);
    }
  }
  if (k < K) {
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_tail(wr + static_cast<long>(j) * K + k, K - k);
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_maskload_ps(x + static_cast<long>(i) * K + k, tail_mask(K - k));
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(wv[j], xv, acc[i][j]);
    }
  }
  for (int j = 0; j < NR; ++j) {
    if (MR == 4) {  // the four sums of column j in one reduction
      float s[4];
      _mm_storeu_ps(s, hsum4(acc[0][j], acc[1 % MR][j], acc[2 % MR][j], acc[3 % MR][j]));
      for (int i = 0; i < 4; ++i) y[static_cast<long>(i) * ldy + n + j] = finish(s[i], scales, bias, n + j);
    } else {
      for (int i = 0; i < MR; ++i) y[static_cast<long>(i) * ldy + n + j] = finish(hsum(acc[i][j]), scales, bias, n + j);
    }
  }
}

// Column blocks ahead that the tiles prefetch (measured best of 1, 2, 4 with the L2 hint; the L1
// hint and prefetching only in the first tile were slower).
constexpr int kPrefetchBlocks = 2;

// NR weight rows starting at n against all M activation rows, MR = 4 at a time.
template <int NR, class W>
inline void column_block(const float* x, int M, int K, const W* w, const float* scales, const float* bias, int n,
                         int n_end, float* y, int ldy) {
  const W* ahead = n + (kPrefetchBlocks + 1) * NR <= n_end ? w + static_cast<long>(n + kPrefetchBlocks * NR) * K : nullptr;
  const int passes = (M + 3) / 4;
  int m = 0, pass = 0;
  for (; m + 4 <= M; m += 4, ++pass)
    tile<4, NR>(x + static_cast<long>(m) * K, K, w, scales, bias, n, y + static_cast<long>(m) * ldy, ldy, ahead, pass,
                passes);
  const float* xm = x + static_cast<long>(m) * K;
  float* ym = y + static_cast<long>(m) * ldy;
  switch (M - m) {
    case 1: tile<1, NR>(xm, K, w, scales, bias, n, ym, ldy, ahead, pass, passes); break;
    case 2: tile<2, NR>(xm, K, w, scales, bias, n, ym, ldy, ahead, pass, passes); break;
    case 3: tile<3, NR>(xm, K, w, scales, bias, n, ym, ldy, ahead, pass, passes); break;
    default: break;
  }
}

// M = 1: one weight row after the other, a single sequential stream (what the hardware
// prefetcher follows best), four accumulators to keep loads in flight, and the first line of the
// row 8 rows ahead prefetched (measured on fp32: ~3 % more tok/s than none; 2, 4, 16 rows ahead
// or the L2 hint were no better).
template <class W>
void gemv_one_row(const float* x, int K, const W* w, const float* scales, const float* bias, int n0, int n1, float* y) {
  for (int n = n0; n < n1; ++n) {
    const W* wr = w + static_cast<long>(n) * K;
    _mm_prefetch(reinterpret_cast<const char*>(wr + 8L * K), _MM_HINT_T0);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int k = 0;
    for (; k + 32 <= K; k += 32) {
      a0 = _mm256_fmadd_ps(load8(wr + k), _mm256_loadu_ps(x + k), a0);
      a1 = _mm256_fmadd_ps(load8(wr + k + 8), _mm256_loadu_ps(x + k + 8), a1);
      a2 = _mm256_fmadd_ps(load8(wr + k + 16), _mm256_loadu_ps(x + k + 16), a2);
      a3 = _mm256_fmadd_ps(load8(wr + k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(load8(wr + k), _mm256_loadu_ps(x + k), a0);
    if (k < K) a1 = _mm256_fmadd_ps(load_tail(wr + k, K - k), _mm256_maskload_ps(x + k, tail_mask(K - k)), a1);
    y[n] = finish(hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))), scales, bias, n);
  }
}

template <class W>
void gemv_rows_typed(const float* x, int M, int K, const W* w, const float* scales, const float* bias, int n0, int n1,
                     float* y, int ldy) {
  if (M == 1) return gemv_one_row(x, K, w, scales, bias, n0, n1, y);
  int n = n0;
  if (M <= 3) {  // up to 3 x 4 accumulators
    for (; n + 4 <= n1; n += 4) column_block<4>(x, M, K, w, scales, bias, n, n1, y, ldy);
  } else {  // 4 x 3 accumulators
    for (; n + 3 <= n1; n += 3) column_block<3>(x, M, K, w, scales, bias, n, n1, y, ldy);
  }
  for (; n < n1; ++n) column_block<1>(x, M, K, w, scales, bias, n, n1, y, ldy);
}

template <class W>
void to_float_typed(const W* w, size_t n, float* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(w + i));
  for (; i < n; ++i) _mm_store_ss(out + i, _mm256_castps256_ps128(load_tail(w + i, 1)));
}

}  // namespace

void gemv_rows(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  switch (w.type) {
    case WeightType::F32: return gemv_rows_typed(x, M, w.K, static_cast<const float*>(w.data), nullptr, bias, n0, n1, y, ldy);
    case WeightType::BF16:
    case WeightType::BF16_COMPUTE: return gemv_rows_typed(x, M, w.K, static_cast<const Bf16*>(w.data), nullptr, bias, n0, n1, y, ldy);
    case WeightType::F16: return gemv_rows_typed(x, M, w.K, static_cast<const F16*>(w.data), nullptr, bias, n0, n1, y, ldy);
    case WeightType::I8:
    case WeightType::I8_DYNAMIC:  // (matmul_wt sends it to gemm_i8_dynamic; widened here it is plain I8)
      return gemv_rows_typed(x, M, w.K, static_cast<const int8_t*>(w.data), w.scales, bias, n0, n1, y, ldy);
  }
}

void to_float(WeightType type, const void* data, size_t n, float* out) {
  switch (type) {
    case WeightType::F32: return to_float_typed(static_cast<const float*>(data), n, out);
    case WeightType::BF16:
    case WeightType::BF16_COMPUTE: return to_float_typed(static_cast<const Bf16*>(data), n, out);
    case WeightType::F16: return to_float_typed(static_cast<const F16*>(data), n, out);
    case WeightType::I8:
    case WeightType::I8_DYNAMIC: return to_float_typed(static_cast<const int8_t*>(data), n, out);
  }
}

void dot_rows(const float* q, const float* keys, size_t ld, int rows, int n, float scale, float* scores) {
  const int body = n - n % 8;
  const __m256i tm = tail_mask(n - body);
  auto row_acc = [&](const float* k, __m256 acc) {
    for (int d = 0; d < body; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), acc);
    if (body < n) acc = _mm256_fmadd_ps(_mm256_maskload_ps(q + body, tm), _mm256_maskload_ps(k + body, tm), acc);
    return acc;
  };
  int j = 0;
  for (; j + 4 <= rows; j += 4) {  // four keys at a time: independent chains, one 4-way reduction
    const float* k = keys + j * ld;
    const __m256 a = row_acc(k, _mm256_setzero_ps()), b = row_acc(k + ld, _mm256_setzero_ps());
    const __m256 c = row_acc(k + 2 * ld, _mm256_setzero_ps()), d = row_acc(k + 3 * ld, _mm256_setzero_ps());
    _mm_storeu_ps(scores + j, _mm_mul_ps(hsum4(a, b, c, d), _mm_set1_ps(scale)));
  }
  for (; j < rows; ++j) scores[j] = hsum(row_acc(keys + j * ld, _mm256_setzero_ps())) * scale;
}

void weighted_rows_sum(const float* p, const float* values, size_t ld, int rows, int n, float* y) {
  int d = 0;
  for (; d + 64 <= n; d += 64) {  // 64 outputs in 8 registers over all rows
    __m256 acc[8];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int j = 0; j < rows; ++j) {
      if (p[j] == 0.0f) continue;
      const __m256 pj = _mm256_set1_ps(p[j]);
      const float* v = values + j * ld + d;
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v + 8 * i), acc[i]);
    }
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(y + d + 8 * i, acc[i]);
  }
  for (; d < n; d += 8) {
    const __m256i tm = tail_mask(n - d);
    __m256 acc = _mm256_setzero_ps();
    for (int j = 0; j < rows; ++j)
      if (p[j] != 0.0f) acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_maskload_ps(values + j * ld + d, tm), acc);
    _mm256_maskstore_ps(y + d, tm, acc);
  }
}

float dot(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float a, const float* x, float* y, int n) {
  __m256 va = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace lmforge::kernels::avx2
