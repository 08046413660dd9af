// dtype helpers and the fp16/bf16 <-> fp32 conversions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "io/io_test_util.h"
#include "lmforge/io/tensor.h"

namespace lmforge {
namespace {

using test::ThrowsError;

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Value of a half by its definition, independent of the bit tricks under test.
double half_reference(uint16_t h) {
  const int sign = (h & 0x8000) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? std::numeric_limits<double>::quiet_NaN() : sign * std::numeric_limits<double>::infinity();
  return sign * std::ldexp(1024 + mant, exp - 25);
}

TEST(DType, SizesNamesAndParsing) {
  const std::pair<DType, size_t> sizes[] = {{DType::F32, 4}, {DType::F16, 2}, {DType::BF16, 2}, {DType::F64, 8},
                                            {DType::I8, 1},  {DType::U8, 1},  {DType::I16, 2},  {DType::I32, 4},
                                            {DType::I64, 8}, {DType::BOOL, 1}};
  for (auto [dt, size] : sizes) {
    EXPECT_EQ(dtype_size(dt), size) << dtype_name(dt);
    EXPECT_EQ(parse_dtype(dtype_name(dt), "x"), dt);  // names round-trip
  }
  EXPECT_STREQ(dtype_name(DType::BF16), "BF16");
  EXPECT_STREQ(dtype_name(DType::BOOL), "BOOL");
  EXPECT_TRUE(ThrowsError([] { parse_dtype("F8_E4M3", "model.safetensors"); }, {"model.safetensors", "F8_E4M3"}));
  EXPECT_TRUE(ThrowsError([] { parse_dtype("f32", "where"); }, {"where", "unknown dtype"}));  // case matters
}

TEST(TensorView, Numel) {
  TensorView t;
  EXPECT_EQ(t.numel(), 1);  // a scalar
  t.shape = {3, 4, 5};
  EXPECT_EQ(t.numel(), 60);
  t.shape = {3, 0};
  EXPECT_EQ(t.numel(), 0);
}

TEST(Fp16, EveryHalfUpcastsToItsExactValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_float(static_cast<uint16_t>(h));
    const double ref = half_reference(static_cast<uint16_t>(h));
    if (std::isnan(ref)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
    } else {
      ASSERT_EQ(static_cast<double>(f), ref) << std::hex << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;  // -0.0 stays negative
    }
  }
}

TEST(Fp16, KnownValues) {
  EXPECT_EQ(fp16_to_float(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_float(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_float(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(fp16_to_float(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(float_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(65519.99f), 0x7bff);  // below the halfway point to 65536
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7c00);   // the tie rounds to even = infinity
  EXPECT_EQ(float_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(float_to_fp16(-1e10f), 0xfc00);
  EXPECT_EQ(float_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -25)), 0x0000);                // tie between 0 and 2^-24 -> 0 (even)
  EXPECT_EQ(float_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.f)), 0x0001);
  EXPECT_EQ(float_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulps ties to 2 (even)
  EXPECT_EQ(float_to_fp16(1e-30f), 0x0000);
  EXPECT_EQ(float_to_fp16(std::numeric_limits<float>::quiet_NaN()) & 0x7fff, 0x7e00);
  // 1 + 2^-11 is exactly between 1 and 1 + 2^-10: ties to even (1.0); 1 + 3*2^-11 ties up.
  EXPECT_EQ(float_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(float_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
}

// Every half survives fp16 -> fp32 -> fp16, and values just either side of the midpoint between
// two neighbouring halves round to the nearer one (the midpoint itself to the even one).
TEST(Fp16, RoundTripAndMidpointsExhaustive) {
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // all finite non-negative halves
    const float f = fp16_to_float(static_cast<uint16_t>(h));
    ASSERT_EQ(float_to_fp16(f), h);
    ASSERT_EQ(float_to_fp16(-f), h | 0x8000);
    if (h + 1 < 0x7c00) {
      const double mid = (static_cast<double>(f) + fp16_to_float(static_cast<uint16_t>(h + 1))) / 2;
      const float m = static_cast<float>(mid);  // exact: halves have 11 significant bits
      ASSERT_EQ(static_cast<double>(m), mid);
      ASSERT_EQ(float_to_fp16(m), (h % 2 == 0) ? h : h + 1) << std::hex << h;
      ASSERT_EQ(float_to_fp16(std::nextafter(m, 0.0f)), h) << std::hex << h;
      ASSERT_EQ(float_to_fp16(std::nextafter(m, 1e9f)), h + 1) << std::hex << h;
    }
  }
}

#if defined(__FLT16_MAX__)
// The compiler's own _Float16 conversion (IEEE round-to-nearest-even) as a second opinion over
// a spread of floats including subnormals, overflow and random bit patterns.
TEST(Fp16, MatchesCompilerFloat16) {
  uint32_t state = 12345;
  for (int i = 0; i < 2000000; ++i) {
    state = state * 1664525u + 1013904223u;
    const float f = from_bits(state);
    if (std::isnan(f)) continue;
    const _Float16 h = static_cast<_Float16>(f);
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    ASSERT_EQ(float_to_fp16(f), hb) << std::hexfloat << f;
    ASSERT_EQ(bits(fp16_to_float(hb)), bits(static_cast<float>(h)));
  }
}
#endif

TEST(Bf16, RoundsToNearestEvenLikeTorch) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  // Keeping the top 16 bits: low half 0x8000 is a tie -> even; above -> up; below -> down.
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808000)), 0x3f80);  // tie, 0x3f80 even
  EXPECT_EQ(float_to_bf16(from_bits(0x3f818000)), 0x3f82);  // tie, 0x3f81 odd -> up
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808001)), 0x3f81);
  EXPECT_EQ(float_to_bf16(from_bits(0x3f807fff)), 0x3f80);
  EXPECT_EQ(float_to_bf16(from_bits(0x7f7fffff)), 0x7f80);  // FLT_MAX rounds to +inf, as in torch
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::quiet_NaN()), 0x7fc0);
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::quiet_NaN()), 0x7fc0);
  EXPECT_EQ(float_to_bf16(from_bits(0x00018000)), 0x0002);  // subnormals round the same way
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_float(static_cast<uint16_t>(b));
    ASSERT_EQ(bits(f), b << 16);
    if (!std::isnan(f)) {
      ASSERT_EQ(float_to_bf16(f), b);
    }
  }
}

TEST(ToFloat32, ConvertsEveryFloatDtype) {
  const float vals[] = {0.0f, -1.5f, 3.140625f, 1e-3f, -65504.0f};
  std::vector<uint16_t> h, b;
  std::vector<double> d;
  for (float v : vals) {
    h.push_back(float_to_fp16(v));
    b.push_back(float_to_bf16(v));
    d.push_back(v);
  }
  // Views start one byte into the buffers: safetensors offsets need not be aligned.
  auto check = [&](DType dt, const void* src, size_t es, auto expected_of) {
    std::vector<std::byte> buf(1 + es * 5);
    std::memcpy(buf.data() + 1, src, es * 5);
    TensorView t;
    t.dtype = dt;
    t.shape = {5};
    t.data = buf.data() + 1;
    t.nbytes = es * 5;
    auto out = to_float32(t);
    ASSERT_EQ(out.size(), 5u);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(out[i], expected_of(i)) << dtype_name(dt) << " " << i;
  };
  check(DType::F32, vals, 4, [&](int i) { return vals[i]; });
  check(DType::F16, h.data(), 2, [&](int i) { return fp16_to_float(h[i]); });
  check(DType::BF16, b.data(), 2, [&](int i) { return bf16_to_float(b[i]); });
  check(DType::F64, d.data(), 8, [&](int i) { return vals[i]; });
  EXPECT_EQ(to_float32(TensorView{DType::F16, {0}, nullptr, 0, "x"}).size(), 0u);
}

TEST(ToFloat32, RejectsIntegersAndInconsistentViews) {
  int32_t ints[2] = {1, 2};
  TensorView t{DType::I32, {2}, reinterpret_cast<const std::byte*>(ints), 8, "ints.safetensors"};
  EXPECT_TRUE(ThrowsError([&] { to_float32(t); }, {"ints.safetensors", "I32"}));
  TensorView bad{DType::F32, {3}, reinterpret_cast<const std::byte*>(ints), 8, "bad.safetensors"};
  EXPECT_TRUE(ThrowsError([&] { to_float32(bad); }, {"bad.safetensors"}));
}

}  // namespace
}  // namespace lmforge
