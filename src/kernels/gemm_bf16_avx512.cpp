// The vdpbf16ps peak probe (kernels::bf16_dot_peak_gflops). The bf16 products themselves run on
// oneDNN's matmul on this level (kernels/onednn.h): measured faster than the GEMM of our own that
// this file held (training 1.37x, bfloat16_compute prefill 1.1-1.2x; docs/PERFORMANCE.md).
#include <immintrin.h>

#include "lmforge/kernels/gemm_bf16.h"

namespace lmforge::kernels::avx512 {

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

}  // namespace lmforge::kernels::avx512
