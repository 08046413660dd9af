// The FMA peak probe of the AVX-512 level (kernels::fma_peak_gflops): 12 independent accumulator
// chains, enough to cover the FMA latency of two FMA units.
#include <immintrin.h>

#include "kernels/isa.h"

namespace lmforge::kernels::avx512 {

float fma_probe(long iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_cvtss_f32(s);
}

}  // namespace lmforge::kernels::avx512
