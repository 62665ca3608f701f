// fp16 and bf16 storage types of the simulator: 16-bit patterns, computed in fp32, stored round-to-nearest-even.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace ascend_sim {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000 | (man << 13));  // inf / nan
  if (exp == 0) {
    if (man == 0) return bits_float(sign);
    return (sign ? -1.0f : 1.0f) * std::ldexp(float(man), -24);  // subnormal
  }
  return bits_float(sign | ((exp + 112) << 23) | (man << 13));
}

// Round-to-nearest-even fp32 -> fp16 (overflow to inf, subnormals kept).
inline uint16_t float_to_half_rne(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = (u >> 16) & 0x8000;
  const uint32_t abs = u & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0);
  if (abs >= 0x477ff000) return sign | 0x7c00;           // rounds to >= 65520 -> inf
  if (abs < 0x38800000) {                                // below the smallest normal 2^-14: subnormal or zero
    const float scaled = bits_float(abs) * 16777216.0f;  // units of 2^-24, exact
    return sign | uint16_t(std::nearbyint(scaled));      // default rounding mode is to-nearest-even
  }
  const uint32_t rounded = abs + 0xfff + ((abs >> 13) & 1);
  return sign | uint16_t((rounded - (112u << 23)) >> 13);
}

inline float bf16_to_float(uint16_t b) { return bits_float(uint32_t(b) << 16); }

inline uint16_t float_to_bf16_rne(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 0x40);  // quiet nan
  return uint16_t((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

}  // namespace ascend_sim

// The kernels' fp16 type (a compiler built-in on the NPU).
struct half {
  uint16_t bits = 0;
  half() = default;
  half(float f) : bits(ascend_sim::float_to_half_rne(f)) {}
  operator float() const { return ascend_sim::half_to_float(bits); }
};

struct bfloat16_t {
  uint16_t bits = 0;
  bfloat16_t() = default;
  bfloat16_t(float f) : bits(ascend_sim::float_to_bf16_rne(f)) {}
  operator float() const { return ascend_sim::bf16_to_float(bits); }
};

namespace ascend_sim {

// Element conversions used by every simulated instruction: compute in fp32, store with RNE.
template <typename T>
inline float to_f32(T v) {
  return static_cast<float>(v);
}
template <typename T>
inline T from_f32(float f) {
  return static_cast<T>(f);
}

}  // namespace ascend_sim
