// oneDNN's BLAS-like functions (dnnl_sgemm, dnnl_gemm_s8s8s32): row-major, so x [M, K] times the
// weights [N, K] is ('N', 'T').
#include "kernels/onednn.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

namespace lmforge::kernels::onednn {
namespace {

// The arguments are ours and checked by the callers; a failure here is a bug, not bad input.
void check(dnnl_status_t status, const char* what) {
  if (status != dnnl_success) throw std::logic_error(std::string(what) + " failed (oneDNN status " + std::to_string(status) + ")");
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  check(dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), "dnnl_sgemm");
}

void gemm_s8_nt(int M, int N, int K, const int8_t* x, int ldx, const int8_t* w, int ldw, int32_t* c, int ldc) {
  if (M <= 0 || N <= 0) return;
  const int32_t no_offset = 0;
  check(dnnl_gemm_s8s8s32('N', 'T', 'F', M, N, K, 1.0f, x, ldx, 0, w, ldw, 0, 0.0f, c, ldc, &no_offset),
        "dnnl_gemm_s8s8s32");
}

namespace {

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;
constexpr dnnl::memory::dim kRuntime = DNNL_RUNTIME_DIM_VAL;

// The engine and the primitives below are never destroyed: at exit their destructors would run
// after oneDNN's own lazily made globals are gone (they are made after these).
const dnnl::engine& cpu_engine() {
  static const auto* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// A [rows, cols] matrix at stride ld, or its transpose stored [cols, rows].
dnnl::memory::desc matrix(dt type, dnnl::memory::dim rows, dnnl::memory::dim cols, dnnl::memory::dim ld, bool trans) {
  return {{rows, cols}, type, trans ? dims{1, ld} : dims{ld, 1}};
}

// The bf16 matmul for one layout (which operands are transposed, whether C accumulates), with
// shapes and strides given at run time: one JIT compile per layout, whatever the shapes (prompt
// lengths differ from call to call).
const dnnl::matmul& bf16_matmul(bool a_trans, bool b_trans, bool accumulate) {
  static std::mutex mutex;
  static auto* cache = new std::map<std::tuple<bool, bool, bool>, dnnl::matmul>;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(a_trans, b_trans, accumulate);
  if (auto it = cache->find(key); it != cache->end()) return it->second;
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  const dnnl::matmul::primitive_desc pd(
      dnnl::matmul::desc(matrix(dt::bf16, kRuntime, kRuntime, kRuntime, a_trans),
                         matrix(dt::bf16, kRuntime, kRuntime, kRuntime, b_trans),
                         matrix(dt::f32, kRuntime, kRuntime, kRuntime, false)),
      attr, cpu_engine());
  return cache->emplace(key, dnnl::matmul(pd)).first->second;
}

}  // namespace

void gemm_bf16(int M, int N, int K, const uint16_t* a, int lda, bool a_trans, const uint16_t* b, int ldb, bool b_trans,
               float beta, float* c, int ldc) {
  if (M <= 0 || N <= 0) return;
  const dnnl::matmul& mm = bf16_matmul(a_trans, b_trans, beta != 0.0f);
  const auto& engine = cpu_engine();
  const dnnl::memory am(matrix(dt::bf16, M, K, lda, a_trans), engine, const_cast<uint16_t*>(a));
  const dnnl::memory bm(matrix(dt::bf16, K, N, ldb, b_trans), engine, const_cast<uint16_t*>(b));
  const dnnl::memory cm(matrix(dt::f32, M, N, ldc, false), engine, c);
  thread_local dnnl::stream stream(engine);
  mm.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  stream.wait();
}

std::string version() {
  const dnnl_version_t* v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

}  // namespace lmforge::kernels::onednn
