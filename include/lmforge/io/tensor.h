#pragma once
// A typed, shaped view of bytes owned elsewhere (an mmap'd safetensors file or a decompressed
// pickle storage). Views never own memory; the Checkpoint that produced them keeps it alive.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/error.h"

namespace lmforge {

enum class DType { F32, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL };

size_t dtype_size(DType dt);
// Safetensors spelling: "F32", "F16", "BF16", ...
const char* dtype_name(DType dt);
// Parses a safetensors dtype string; throws lmforge::Error naming `where` for unknown ones.
DType parse_dtype(const std::string& s, const std::string& where);

struct TensorView {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  std::string source;  // file it came from, for error messages

  int64_t numel() const;
};

// Converts a floating-point tensor (F32/F16/BF16/F64) to fp32 into `out` (numel() floats).
// Throws lmforge::Error for non-float dtypes.
void to_float32(const TensorView& t, float* out);
std::vector<float> to_float32(const TensorView& t);

// Scalar conversions used by loaders and kernels' portable fallbacks.
float fp16_to_float(uint16_t h);
float bf16_to_float(uint16_t b);
uint16_t float_to_fp16(float f);
uint16_t float_to_bf16(float f);  // round-to-nearest-even, as torch does

}  // namespace lmforge
