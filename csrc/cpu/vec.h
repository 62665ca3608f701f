// Portable SIMD helpers on GCC vector extensions, ASCEND_ATTN_VEC_WIDTH floats wide.
// Included by the per-ISA kernel files inside an anonymous namespace after `#pragma GCC target(...)`, so the same
// source becomes AVX-512, AVX2 or baseline code; it includes nothing itself (the includer provides <cstdint>, and
// <immintrin.h> in the AVX2 and AVX-512 builds).
#pragma once

constexpr int W = ASCEND_ATTN_VEC_WIDTH;
typedef float vf __attribute__((vector_size(W * 4)));
typedef int32_t vi __attribute__((vector_size(W * 4)));
typedef uint32_t vu __attribute__((vector_size(W * 4)));

inline vf vload(const float* p) {
  vf v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void vstore(float* p, vf v) { __builtin_memcpy(p, &v, sizeof(v)); }
inline vf vsplat(float x) { return vf{} + x; }

inline float hmax(vf v) {
  float m = v[0];
  for (int i = 1; i < W; ++i) m = v[i] > m ? v[i] : m;
  return m;
}
inline float hsum(vf v) {
  float s = 0.f;
  for (int i = 0; i < W; ++i) s += v[i];
  return s;
}

// exp(x) with ~1 ulp error for x in [-87.3, 88]; 0 below. Cody-Waite reduction x = n*ln2 + r, then a degree-6
// polynomial for exp(r) and 2^n built in the exponent bits.
inline vf vexp(vf x) {
  const vf lo = vsplat(-87.33654f);
  vf xc = x < lo ? lo : x;
  xc = xc > 88.0f ? vsplat(88.0f) : xc;
  // Adding 1.5*2^23 rounds x*log2(e) to an integer held in the low mantissa bits.
  const vf shifted = xc * 1.44269504088896341f + 12582912.0f;
  const vf n = shifted - 12582912.0f;
  vi ni;
  __builtin_memcpy(&ni, &shifted, sizeof(ni));
  ni -= 0x4B400000;
  vf r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vf p = vsplat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const vi bits = (ni + 127) << 23;
  vf scale;
  __builtin_memcpy(&scale, &bits, sizeof(scale));
  const vf res = p * scale;
  return x < lo ? vsplat(0.f) : res;
}

// tanh(x) = sign(x) (1 - e) / (1 + e) with e = exp(-2|x|): never overflows; absolute error ~1e-7.
inline vf vtanh(vf x) {
  const vf ax = x < 0.f ? -x : x;
  const vf e = vexp(ax * -2.0f);
  const vf t = (1.0f - e) / (1.0f + e);
  return x < 0.f ? -t : t;
}

// ---- element conversions (exact for fp16/bf16 -> fp32; round to nearest even for fp32 -> fp16/bf16) ----

inline float bf16_to_f32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  __builtin_memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalize
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_f16(float f) {
  uint32_t bits;
  __builtin_memcpy(&bits, &f, 4);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {                                               // fp16 subnormal or zero
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);           // below half the smallest subnormal
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exp;  // 14..24
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((abs >> 13) - (112u << 10));
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

template <ElemType E>
struct Elem;
template <>
struct Elem<ElemType::kFloat32> {
  using T = float;
  static float load(float x) { return x; }
  static float store(float x) { return x; }
};
template <>
struct Elem<ElemType::kBFloat16> {
  using T = uint16_t;
  static float load(uint16_t x) { return bf16_to_f32(x); }
  static uint16_t store(float x) { return f32_to_bf16(x); }
};
template <>
struct Elem<ElemType::kFloat16> {
  using T = uint16_t;
  static float load(uint16_t x) { return f16_to_f32(x); }
  static uint16_t store(float x) { return f32_to_f16(x); }
};

// The W elements at p, converted to fp32.
template <ElemType E>
inline vf load_vec(const typename Elem<E>::T* p) {
  vf v;
  for (int i = 0; i < W; ++i) v[i] = Elem<E>::load(p[i]);
  return v;
}
template <>
inline vf load_vec<ElemType::kFloat32>(const float* p) {
  return vload(p);
}
// bf16 -> fp32 is a 16-bit shift: do it W lanes at a time (the scalar loop above does not vectorize). On x86 the
// widening is one vpmovzxwd (GCC 12 turns __builtin_convertvector into two half-width ones and a lane insert).
template <>
inline vf load_vec<ElemType::kBFloat16>(const uint16_t* p) {
#if defined(__x86_64__) && ASCEND_ATTN_VEC_WIDTH == 8
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return reinterpret_cast<vf>(_mm256_slli_epi32(wide, 16));
#elif defined(__x86_64__) && ASCEND_ATTN_VEC_WIDTH == 16
  // The zero-masked form: GCC 12's unmasked one passes an undefined vector through and warns about it.
  const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return reinterpret_cast<vf>(reinterpret_cast<vu>(wide) << 16);
#else
  typedef uint16_t vh __attribute__((vector_size(W * 2)));
  vh h;
  __builtin_memcpy(&h, p, sizeof(h));
  const vu bits = __builtin_convertvector(h, vu) << 16;
  vf f;
  __builtin_memcpy(&f, &bits, sizeof(f));
  return f;
#endif
}

// fp16 -> fp32 in hardware: F16C's vcvtph2ps (every AVX2 CPU has F16C; the avx2 level requires it) and AVX-512F's.
#if defined(__x86_64__) && (ASCEND_ATTN_VEC_WIDTH == 8 || ASCEND_ATTN_VEC_WIDTH == 16)
template <>
inline vf load_vec<ElemType::kFloat16>(const uint16_t* p) {
#if ASCEND_ATTN_VEC_WIDTH == 8
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#else
  return _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#endif
}
#endif

// The first n < W elements at p converted to fp32, zero in the other lanes (never reads past p + n).
template <ElemType E>
inline vf load_vec_part(const typename Elem<E>::T* p, int n) {
  vf v{};
  for (int i = 0; i < n; ++i) v[i] = Elem<E>::load(p[i]);
  return v;
}

// dst[i] = scale * src[i], converting to fp32, W elements at a time.
template <ElemType E>
inline void load_row(float* __restrict dst, const typename Elem<E>::T* __restrict src, int n, float scale) {
  int i = 0;
  for (; i + W <= n; i += W) vstore(dst + i, load_vec<E>(src + i) * scale);
  for (; i < n; ++i) dst[i] = Elem<E>::load(src[i]) * scale;
}

// dst[0, n) = scale * src[0, n), converting to fp32; dst[n, padded) = 0.
template <ElemType E>
inline void load_row_padded(float* __restrict dst, const typename Elem<E>::T* __restrict src, int n, int padded,
                            float scale) {
  load_row<E>(dst, src, n, scale);
  for (int i = n; i < padded; ++i) dst[i] = 0.f;
}

template <ElemType E>
inline void store_row(typename Elem<E>::T* dst, const float* src, int n, float scale) {
  for (int i = 0; i < n; ++i) dst[i] = Elem<E>::store(src[i] * scale);
}
