#include "lmforge/io/tensor.h"

#include <cstring>

#include "io/io_util.h"
#include "lmforge/error.h"

namespace lmforge {

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;  // safetensors spelling
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::F64, "F64", 8},
    {DType::I8, "I8", 1},   {DType::U8, "U8", 1},   {DType::I16, "I16", 2},   {DType::I32, "I32", 4},
    {DType::I64, "I64", 8}, {DType::BOOL, "BOOL", 1},
};

const DTypeInfo& info(DType dt) {
  for (const auto& i : kDTypes)
    if (i.dtype == dt) return i;
  throw Error("invalid DType value " + std::to_string(static_cast<int>(dt)));
}

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Loads one little-endian element from a possibly unaligned address (safetensors offsets need
// not be multiples of the element size, and a misaligned typed load is undefined behaviour).
template <typename T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

size_t dtype_size(DType dt) { return info(dt).size; }

const char* dtype_name(DType dt) { return info(dt).name; }

DType parse_dtype(const std::string& s, const std::string& where) {
  for (const auto& i : kDTypes)
    if (s == i.name) return i.dtype;
  throw Error(where + ": unknown dtype '" + io::printable(s) + "'");
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // shapes are validated (non-negative, no overflow) by the loaders
  return n;
}

// IEEE half -> single is exact; subnormal halves are m * 2^-24, which a float holds exactly.
float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    float mag = static_cast<float>(mant) * 5.9604644775390625e-8f;  // 2^-24
    return bits_float(float_bits(mag) | sign);
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / NaN (payload kept)
  return bits_float(sign | ((exp + 112) << 23) | (mant << 13));        // rebias 15 -> 127
}

// Single -> half with round-to-nearest-even, done on the integer bits so the result does not
// depend on the FPU rounding mode. NaN becomes the canonical quiet 0x7E00 (as c10::Half does).
uint16_t float_to_fp16(float f) {
  const uint32_t x = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (a >= 0x38800000u) {                       // normal half (>= 2^-14)
    uint32_t r = ((((a >> 23) - 112) << 10) | ((a & 0x7fffffu) >> 13));
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // carry may bump the exponent: correct
    return static_cast<uint16_t>(sign | r);
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25: half of the smallest subnormal ties to 0
  // Subnormal half: value = m * 2^(e-150); in units of 2^-24 that is m >> (126 - e).
  const uint32_t e = a >> 23;
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - e;  // 14..24 here
  uint32_t r = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (r & 1u))) ++r;  // may become 0x400, the smallest normal: correct
  return static_cast<uint16_t>(sign | r);
}

float bf16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

// torch's c10::BFloat16 round_to_nearest_even: add 0x7FFF plus the lowest kept bit, truncate.
// NaN maps to 0x7FC0 exactly as torch does (sign dropped).
uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
  const uint32_t bias = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + bias) >> 16);
}

void to_float32(const TensorView& t, float* out) {
  const int64_t n = t.numel();
  const size_t es = dtype_size(t.dtype);
  if (static_cast<uint64_t>(n) * es != t.nbytes)
    throw Error(t.source + ": tensor byte size " + std::to_string(t.nbytes) + " does not match its shape");
  const std::byte* p = t.data;
  switch (t.dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(out, p, t.nbytes);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_float(load<uint16_t>(p + 2 * i));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(load<uint16_t>(p + 2 * i));
      return;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<double>(p + 8 * i));
      return;
    default:
      throw Error(t.source + ": cannot convert " + dtype_name(t.dtype) + " tensor to float32");
  }
}

std::vector<float> to_float32(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  to_float32(t, out.data());
  return out;
}

}  // namespace lmforge
