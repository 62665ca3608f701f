// Vector instructions on UB: level-2 (count) forms and level-0 (mask, repeat, block/repeat strides) forms.
// Arithmetic is done in fp32 and stored with the operand type (fp16/bf16 rounded to nearest even).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "sim_memory.h"

namespace AscendC {

struct BinaryRepeatParams {
  uint8_t dstBlkStride = 1, src0BlkStride = 1, src1BlkStride = 1;
  uint8_t dstRepStride = 8, src0RepStride = 8, src1RepStride = 8;
  BinaryRepeatParams() = default;
  BinaryRepeatParams(uint8_t db, uint8_t s0b, uint8_t s1b, uint8_t dr, uint8_t s0r, uint8_t s1r)
      : dstBlkStride(db),
        src0BlkStride(s0b),
        src1BlkStride(s1b),
        dstRepStride(dr),
        src0RepStride(s0r),
        src1RepStride(s1r) {}
};

struct UnaryRepeatParams {
  uint16_t dstBlkStride = 1, srcBlkStride = 1;
  uint8_t dstRepStride = 8, srcRepStride = 8;
  UnaryRepeatParams() = default;
  UnaryRepeatParams(uint16_t db, uint16_t sb, uint8_t dr, uint8_t sr)
      : dstBlkStride(db), srcBlkStride(sb), dstRepStride(dr), srcRepStride(sr) {}
};

struct BrcbRepeatParams {
  uint16_t dstBlkStride = 1, dstRepStride = 8;
  BrcbRepeatParams() = default;
  BrcbRepeatParams(uint16_t db, uint16_t dr) : dstBlkStride(db), dstRepStride(dr) {}
};

enum class RoundMode : uint8_t {
  CAST_NONE = 0,
  CAST_RINT,
  CAST_FLOOR,
  CAST_CEIL,
  CAST_ROUND,
  CAST_TRUNC,
  CAST_ODD,
  UNKNOWN = 0xFF
};

namespace detail {

using ascend_sim::Access;

// A vector instruction of the calling AIV: counted (elements, and cycles of its AIV for the roofline) and timed on
// the V pipe, `cycles_per_repeat` cycles per repeat (sim_config.h's rates, through repeat_cycles).
class VectorInstr : public ascend_sim::Instr {
 public:
  VectorInstr(uint64_t elems, uint64_t repeats, const Loc& loc, const char* what, double cycles_per_repeat = 1.0)
      : Instr(ascend_sim::Pipe::kV, loc, what) {
    ascend_sim::ThreadCtx& c = ascend_sim::ctx();
    const uint64_t cycles = uint64_t(std::ceil(double(repeats) * cycles_per_repeat));
    c.counters->vector_elems += elems;
    c.counters->vector_cycles[c.sub] += cycles;
    add_cycles(double(cycles) + ascend_sim::kModelVectorStartupCycles);
  }
};
using ascend_sim::VectorRate;
constexpr VectorRate kBasic = ascend_sim::kModelRateBasic, kExpLnDiv = ascend_sim::kModelRateExpLnDiv;

// Cycles of one 256-byte repeat of T at `rate`.
template <typename T>
constexpr double repeat_cycles(VectorRate rate) {
  return double(ascend_sim::kRepeatBytes / sizeof(T)) / (sizeof(T) <= 2 ? rate.b16 : rate.b32);
}

template <typename T>
void check_operand(const LocalTensor<T>& t, uint64_t elems, const Loc& loc, const char* what) {
  ascend_sim::check(t.valid() && t.memory() == ascend_sim::Memory::kUb, loc,
                    [&] { return std::string("vector ") + what + " is not a UB tensor"; });
  t.check_aligned(loc, what);
  t.check_elems(elems, loc);
}

template <typename T>
void check_count(int32_t count, const Loc& loc) {
  ascend_sim::check(count >= 0, loc, [&] { return "vector count " + std::to_string(count) + " is negative"; });
}

template <typename T>
uint64_t level2_cycles(int32_t count) {
  return (uint64_t(count) * sizeof(T) + ascend_sim::kRepeatBytes - 1) / ascend_sim::kRepeatBytes;
}

// A source operand read over its own element count (e.g. a bit mask), for level2's sources.
template <typename T>
struct Span {
  const LocalTensor<T>& tensor;
  uint64_t count;
  void sim_record(uint64_t, uint64_t, bool write, const Access& a) const { tensor.sim_record(0, count, write, a); }
};

// Elementwise level-2 over `count` elements: dst[i] = f(i), reading `sources` (checked by the caller).
template <typename T, typename F, typename... Sources>
void level2(const char* what, VectorRate rate, const LocalTensor<T>& dst, int32_t count, const Loc& loc, F f,
            const Sources&... sources) {
  check_count<T>(count, loc);
  check_operand(dst, count, loc, "destination");
  VectorInstr in(count, level2_cycles<T>(count), loc, what, repeat_cycles<T>(rate));
  const Access& a = in.access();
  (sources.sim_record(0, count, false, a), ...);
  dst.sim_record(0, count, true, a);
  if (ascend_sim::dry_run()) return;
  T* d = dst.data();
  for (int32_t i = 0; i < count; ++i) d[i] = ascend_sim::from_f32<T>(f(i));
}

// Lanes enabled by a level-0 mask: continuous (first n elements) or a 2 x 64-bit bitmask.
template <typename T>
struct Mask {
  static constexpr uint32_t kLanes = ascend_sim::kRepeatBytes / sizeof(T);
  bool on[kLanes > 128 ? 128 : kLanes] = {};
  uint32_t active = 0, last = 0;  // number of enabled lanes, 1 + highest enabled lane
  Mask(uint64_t continuous, const Loc& loc) {
    ascend_sim::check(continuous >= 1 && continuous <= kLanes, loc, [&] {
      return "continuous mask " + std::to_string(continuous) + " outside 1.." + std::to_string(kLanes);
    });
    for (uint32_t i = 0; i < continuous; ++i) on[i] = true;
    active = last = uint32_t(continuous);
  }
  Mask(const uint64_t bits[], const Loc& loc) {
    ascend_sim::check(kLanes > 64 || bits[1] == 0, loc,
                      [] { return "bitwise mask[1] must be 0 for 32-bit types (64 lanes)"; });
    for (uint32_t i = 0; i < kLanes; ++i) {
      if ((bits[i / 64] >> (i % 64)) & 1) on[i] = true, ++active, last = i + 1;
    }
    ascend_sim::check(active > 0, loc, [] { return "bitwise mask enables no lane"; });
  }
};

inline void check_repeat(int32_t repeat, const Loc& loc) {
  ascend_sim::check(repeat >= 0 && uint32_t(repeat) <= ascend_sim::kMaxRepeat, loc,
                    [&] { return "repeatTime " + std::to_string(repeat) + " outside 0..255"; });
}

// Element offset of lane `lane` of repeat r for an operand with the given block/repeat strides (in 32-byte blocks).
template <typename T>
inline uint64_t lane_offset(uint32_t r, uint32_t lane, uint32_t blk_stride, uint32_t rep_stride) {
  constexpr uint32_t per_block = ascend_sim::kBlockBytes / sizeof(T);
  return (uint64_t(r) * rep_stride + uint64_t(lane / per_block) * blk_stride) * per_block + lane % per_block;
}

template <typename T>
void check_level0_operand(const LocalTensor<T>& t, const Mask<T>& m, int32_t repeat, uint32_t blk, uint32_t rep,
                          const Loc& loc, const char* what) {
  if (repeat == 0) return;
  check_operand(t, lane_offset<T>(repeat - 1, m.last - 1, blk, rep) + 1, loc, what);
  check_operand(t, lane_offset<T>(0, m.last - 1, blk, rep) + 1, loc, what);
}

// Records the elements a level-0 operand touches: per repeat, the enabled lanes of each 32-byte block.
template <typename T>
void record_level0(const LocalTensor<T>& t, const Mask<T>& m, int32_t repeat, uint32_t blk, uint32_t rep, bool write,
                   const Access& a) {
  constexpr uint32_t per_block = ascend_sim::kBlockBytes / sizeof(T);
  uint64_t lo = 0, hi = 0;  // the current run of contiguous elements
  for (int32_t r = 0; r < repeat; ++r) {
    for (uint32_t b = 0; b * per_block < m.last; ++b) {
      uint32_t first = per_block, last = 0;
      for (uint32_t l = b * per_block; l < (b + 1) * per_block && l < m.last; ++l) {
        if (m.on[l]) first = std::min(first, l), last = l + 1;
      }
      if (first >= last) continue;
      const uint64_t x = lane_offset<T>(uint32_t(r), first, blk, rep),
                     y = lane_offset<T>(uint32_t(r), last - 1, blk, rep) + 1;
      if (hi > lo && x >= lo && x <= hi) {
        hi = std::max(hi, y);
        continue;
      }
      if (hi > lo) t.sim_record(lo, hi - lo, write, a);
      lo = x, hi = y;
    }
  }
  if (hi > lo) t.sim_record(lo, hi - lo, write, a);
}

// Level-0 elementwise: for every repeat and enabled lane, dst = f(src0, src1) at their strided addresses.
template <typename T, typename F>
void level0_binary(const char* what, VectorRate rate, const LocalTensor<T>& dst, const LocalTensor<T>& a,
                   const LocalTensor<T>& b, const Mask<T>& m, int32_t repeat, const BinaryRepeatParams& p,
                   const Loc& loc, F f) {
  check_repeat(repeat, loc);
  ascend_sim::check(p.dstBlkStride != 0, loc, [] { return "dstBlkStride must not be 0"; });
  check_level0_operand(dst, m, repeat, p.dstBlkStride, p.dstRepStride, loc, "destination");
  check_level0_operand(a, m, repeat, p.src0BlkStride, p.src0RepStride, loc, "source 0");
  check_level0_operand(b, m, repeat, p.src1BlkStride, p.src1RepStride, loc, "source 1");
  VectorInstr instr(uint64_t(m.active) * repeat, repeat, loc, what, repeat_cycles<T>(rate));
  const Access& in = instr.access();
  record_level0(a, m, repeat, p.src0BlkStride, p.src0RepStride, false, in);
  record_level0(b, m, repeat, p.src1BlkStride, p.src1RepStride, false, in);
  record_level0(dst, m, repeat, p.dstBlkStride, p.dstRepStride, true, in);
  if (ascend_sim::dry_run()) return;
  for (int32_t r = 0; r < repeat; ++r) {
    for (uint32_t lane = 0; lane < m.last; ++lane) {
      if (!m.on[lane]) continue;
      const float x = ascend_sim::to_f32(a.data()[lane_offset<T>(r, lane, p.src0BlkStride, p.src0RepStride)]);
      const float y = ascend_sim::to_f32(b.data()[lane_offset<T>(r, lane, p.src1BlkStride, p.src1RepStride)]);
      dst.data()[lane_offset<T>(r, lane, p.dstBlkStride, p.dstRepStride)] = ascend_sim::from_f32<T>(f(x, y));
    }
  }
}

template <typename T, typename F>
void level0_unary(const char* what, VectorRate rate, const LocalTensor<T>& dst, const LocalTensor<T>& src,
                  const Mask<T>& m, int32_t repeat, const UnaryRepeatParams& p, const Loc& loc, F f,
                  bool reads_src = true) {
  check_repeat(repeat, loc);
  ascend_sim::check(p.dstBlkStride != 0, loc, [] { return "dstBlkStride must not be 0"; });
  check_level0_operand(dst, m, repeat, p.dstBlkStride, p.dstRepStride, loc, "destination");
  check_level0_operand(src, m, repeat, p.srcBlkStride, p.srcRepStride, loc, "source");
  VectorInstr instr(uint64_t(m.active) * repeat, repeat, loc, what, repeat_cycles<T>(rate));
  const Access& in = instr.access();
  if (reads_src) record_level0(src, m, repeat, p.srcBlkStride, p.srcRepStride, false, in);
  record_level0(dst, m, repeat, p.dstBlkStride, p.dstRepStride, true, in);
  if (ascend_sim::dry_run()) return;
  for (int32_t r = 0; r < repeat; ++r) {
    for (uint32_t lane = 0; lane < m.last; ++lane) {
      if (!m.on[lane]) continue;
      const float x = ascend_sim::to_f32(src.data()[lane_offset<T>(r, lane, p.srcBlkStride, p.srcRepStride)]);
      dst.data()[lane_offset<T>(r, lane, p.dstBlkStride, p.dstRepStride)] = ascend_sim::from_f32<T>(f(x));
    }
  }
}

}  // namespace detail

// ---- level 2 ----

template <typename T>
void Duplicate(const LocalTensor<T>& dst, const T& scalar, int32_t count, Loc loc = {}) {
  const float v = ascend_sim::to_f32(scalar);
  detail::level2("Duplicate", detail::kBasic, dst, count, loc, [&](int32_t) { return v; });
}

#define ASCEND_SIM_SCALAR_OP(NAME, EXPR)                                                                          \
  template <typename T>                                                                                           \
  void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalar, int32_t count, Loc loc = {}) { \
    detail::check_operand(src, count, loc, "source");                                                             \
    const float s = ascend_sim::to_f32(scalar);                                                                   \
    const T* x = src.data();                                                                                      \
    detail::level2(                                                                                               \
        #NAME, detail::kBasic, dst, count, loc,                                                                   \
        [&](int32_t i) {                                                                                          \
          float a = ascend_sim::to_f32(x[i]);                                                                     \
          return EXPR;                                                                                            \
        },                                                                                                        \
        src);                                                                                                     \
  }
ASCEND_SIM_SCALAR_OP(Adds, a + s)
ASCEND_SIM_SCALAR_OP(Muls, a* s)
ASCEND_SIM_SCALAR_OP(Maxs, std::max(a, s))
ASCEND_SIM_SCALAR_OP(Mins, std::min(a, s))
#undef ASCEND_SIM_SCALAR_OP

#define ASCEND_SIM_BINARY_OP(NAME, EXPR, RATE)                                                                  \
  template <typename T>                                                                                         \
  void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, int32_t count,   \
            Loc loc = {}) {                                                                                     \
    detail::check_operand(src0, count, loc, "source 0");                                                        \
    detail::check_operand(src1, count, loc, "source 1");                                                        \
    const T *x = src0.data(), *y = src1.data();                                                                 \
    detail::level2(                                                                                             \
        #NAME, RATE, dst, count, loc,                                                                           \
        [&](int32_t i) {                                                                                        \
          float a = ascend_sim::to_f32(x[i]), b = ascend_sim::to_f32(y[i]);                                     \
          return EXPR;                                                                                          \
        },                                                                                                      \
        src0, src1);                                                                                            \
  }                                                                                                             \
  template <typename T, bool isSetMask = true>                                                                  \
  void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, uint64_t mask,   \
            int32_t repeatTime, const BinaryRepeatParams& params, Loc loc = {}) {                               \
    detail::level0_binary(#NAME, RATE, dst, src0, src1, detail::Mask<T>(mask, loc), repeatTime, params, loc,    \
                          [](float a, float b) { return EXPR; });                                               \
  }                                                                                                             \
  template <typename T, bool isSetMask = true>                                                                  \
  void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, uint64_t mask[], \
            int32_t repeatTime, const BinaryRepeatParams& params, Loc loc = {}) {                               \
    detail::level0_binary(#NAME, RATE, dst, src0, src1, detail::Mask<T>(mask, loc), repeatTime, params, loc,    \
                          [](float a, float b) { return EXPR; });                                               \
  }
ASCEND_SIM_BINARY_OP(Add, a + b, detail::kBasic)
ASCEND_SIM_BINARY_OP(Sub, a - b, detail::kBasic)
ASCEND_SIM_BINARY_OP(Mul, a* b, detail::kBasic)
ASCEND_SIM_BINARY_OP(Div, a / b, detail::kExpLnDiv)
ASCEND_SIM_BINARY_OP(Max, std::max(a, b), detail::kBasic)
ASCEND_SIM_BINARY_OP(Min, std::min(a, b), detail::kBasic)
#undef ASCEND_SIM_BINARY_OP

#define ASCEND_SIM_UNARY_OP(NAME, EXPR, RATE)                                                        \
  template <typename T>                                                                              \
  void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, int32_t count, Loc loc = {}) {     \
    detail::check_operand(src, count, loc, "source");                                                \
    const T* x = src.data();                                                                         \
    detail::level2(                                                                                  \
        #NAME, RATE, dst, count, loc,                                                                \
        [&](int32_t i) {                                                                             \
          float a = ascend_sim::to_f32(x[i]);                                                        \
          return EXPR;                                                                               \
        },                                                                                           \
        src);                                                                                        \
  }                                                                                                  \
  template <typename T, bool isSetMask = true>                                                       \
  void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, uint64_t mask, int32_t repeatTime, \
            const UnaryRepeatParams& params, Loc loc = {}) {                                         \
    detail::level0_unary(#NAME, RATE, dst, src, detail::Mask<T>(mask, loc), repeatTime, params, loc, \
                         [](float a) { return EXPR; });                                              \
  }
ASCEND_SIM_UNARY_OP(Exp, std::exp(a), detail::kExpLnDiv)
ASCEND_SIM_UNARY_OP(Ln, std::log(a), detail::kExpLnDiv)
ASCEND_SIM_UNARY_OP(Abs, std::fabs(a), detail::kBasic)
ASCEND_SIM_UNARY_OP(Reciprocal, 1.0f / a, detail::kBasic)
#undef ASCEND_SIM_UNARY_OP

// Level-0 Duplicate: fills the enabled lanes of every repeat.
template <typename T, bool isSetMask = true>
void Duplicate(const LocalTensor<T>& dst, const T& scalar, uint64_t mask[], int32_t repeatTime, uint16_t dstBlockStride,
               uint8_t dstRepeatStride, Loc loc = {}) {
  const float v = ascend_sim::to_f32(scalar);
  const UnaryRepeatParams p(dstBlockStride, dstBlockStride, dstRepeatStride, dstRepeatStride);
  detail::level0_unary(
      "Duplicate", detail::kBasic, dst, dst, detail::Mask<T>(mask, loc), repeatTime, p, loc, [v](float) { return v; },
      false);
}
template <typename T, bool isSetMask = true>
void Duplicate(const LocalTensor<T>& dst, const T& scalar, uint64_t mask, int32_t repeatTime, uint16_t dstBlockStride,
               uint8_t dstRepeatStride, Loc loc = {}) {
  const float v = ascend_sim::to_f32(scalar);
  const UnaryRepeatParams p(dstBlockStride, dstBlockStride, dstRepeatStride, dstRepeatStride);
  detail::level0_unary(
      "Duplicate", detail::kBasic, dst, dst, detail::Mask<T>(mask, loc), repeatTime, p, loc, [v](float) { return v; },
      false);
}

namespace detail {

// Rounds x to the representable value of T that `mode` selects.
template <typename T>
float round_to(float x, RoundMode mode) {
  const T nearest(x);  // round to nearest even
  const float n = ascend_sim::to_f32(nearest);
  if (mode == RoundMode::CAST_NONE || mode == RoundMode::CAST_RINT || n == x || std::isnan(x) || std::isinf(n)) {
    return n;
  }
  // The other neighbour of x: one 16-bit step from `nearest` towards x.
  T other = nearest;
  const bool up_in_magnitude = std::fabs(x) > std::fabs(n);
  other.bits = uint16_t(other.bits + (up_in_magnitude ? 1 : -1));
  if ((n == 0.0f) && !up_in_magnitude) other = nearest;
  const float o = ascend_sim::to_f32(other);
  const float lo = std::min(n, o), hi = std::max(n, o);
  switch (mode) {
    case RoundMode::CAST_FLOOR:
      return lo;
    case RoundMode::CAST_CEIL:
      return hi;
    case RoundMode::CAST_TRUNC:
      return x >= 0 ? lo : hi;
    case RoundMode::CAST_ROUND: {  // nearest, ties away from zero
      const float dl = x - lo, dh = hi - x;
      if (dl == dh) return x >= 0 ? hi : lo;
      return dl < dh ? lo : hi;
    }
    default:
      return n;
  }
}

template <typename D>
float cast_value(float x, RoundMode mode) {
  if constexpr (std::is_same_v<D, float>) {
    return x;
  } else {
    return round_to<D>(x, mode);
  }
}

}  // namespace detail

// Conversion between float, half and bfloat16_t with the given rounding (CAST_NONE: exact widening, or the
// default round-to-nearest-even when narrowing).
template <typename D, typename S>
void Cast(const LocalTensor<D>& dst, const LocalTensor<S>& src, RoundMode mode, int32_t count, Loc loc = {}) {
  ascend_sim::check(mode != RoundMode::CAST_ODD, loc, [] { return "Cast CAST_ODD is not simulated"; });
  detail::check_operand(src, count, loc, "source");
  const S* x = src.data();
  detail::check_count<D>(count, loc);
  detail::check_operand(dst, count, loc, "destination");
  detail::VectorInstr in(count, detail::level2_cycles<float>(count), loc, "Cast");
  src.sim_record(0, count, false, in.access());
  dst.sim_record(0, count, true, in.access());
  if (ascend_sim::dry_run()) return;
  for (int32_t i = 0; i < count; ++i) {
    dst.data()[i] = ascend_sim::from_f32<D>(detail::cast_value<D>(ascend_sim::to_f32(x[i]), mode));
  }
}

namespace detail {
template <typename T, typename F>
void reduce(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, int32_t count, bool index,
            const Loc& loc, F combine, float init) {
  ascend_sim::check(count >= 1, loc, [&] { return "reduction count " + std::to_string(count) + " must be >= 1"; });
  check_operand(src, count, loc, "source");
  constexpr uint32_t per_repeat = ascend_sim::kRepeatBytes / sizeof(T);
  check_operand(tmp, (count + per_repeat - 1) / per_repeat, loc, "work buffer");
  check_operand(dst, index ? 2 : 1, loc, "destination");
  VectorInstr in(count, level2_cycles<T>(count) + 1, loc, index ? "ReduceMax" : "Reduce",
                 ascend_sim::kModelSoftReduceCyclesPerRepeat);
  const Access& a = in.access();
  src.sim_record(0, count, false, a);
  tmp.sim_record(0, (count + per_repeat - 1) / per_repeat, true, a);  // the per-repeat partial results
  dst.sim_record(0, index ? 2 : 1, true, a);
  if (ascend_sim::dry_run()) return;
  float acc = init;
  uint32_t at = 0;
  for (int32_t i = 0; i < count; ++i) {
    const float v = ascend_sim::to_f32(src.data()[i]);
    const float next = combine(acc, v);
    if (next != acc) at = uint32_t(i);
    acc = next;
  }
  dst.data()[0] = ascend_sim::from_f32<T>(acc);
  if (index) std::memcpy(&dst.data()[1], &at, std::min(sizeof(T), sizeof(at)));
}
}  // namespace detail

// dst[0] = max of src[0, count) (dst[1] = its index when calIndex); tmp: work space of one element per repeat.
template <typename T>
void ReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, int32_t count,
               bool calIndex = false, Loc loc = {}) {
  detail::reduce(
      dst, src, tmp, count, calIndex, loc, [](float a, float b) { return std::max(a, b); },
      -std::numeric_limits<float>::infinity());
}

template <typename T>
void ReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, int32_t count,
               Loc loc = {}) {
  detail::reduce(dst, src, tmp, count, false, loc, [](float a, float b) { return a + b; }, 0.0f);
}

// Each of the 8 source scalars of a repeat fills one 32-byte destination block (per-row broadcast of row stats).
template <typename T>
void Brcb(const LocalTensor<T>& dst, const LocalTensor<T>& src, int32_t repeatTime, const BrcbRepeatParams& p,
          Loc loc = {}) {
  detail::check_repeat(repeatTime, loc);
  constexpr uint32_t per_block = ascend_sim::kBlockBytes / sizeof(T);
  detail::check_operand(src, uint64_t(repeatTime) * 8, loc, "source");
  if (repeatTime > 0) {
    detail::check_operand(dst, (uint64_t(repeatTime - 1) * p.dstRepStride + 7ull * p.dstBlkStride + 1) * per_block, loc,
                          "destination");
  }
  detail::VectorInstr in(uint64_t(repeatTime) * 8 * per_block, repeatTime, loc, "Brcb");
  const detail::Access& a = in.access();
  src.sim_record(0, uint64_t(repeatTime) * 8, false, a);
  for (int32_t r = 0; r < repeatTime; ++r) {
    for (uint32_t b = 0; b < 8; ++b) {
      const uint64_t at = (uint64_t(r) * p.dstRepStride + uint64_t(b) * p.dstBlkStride) * per_block;
      dst.sim_record(at, per_block, true, a);
    }
  }
  if (ascend_sim::dry_run()) return;
  for (int32_t r = 0; r < repeatTime; ++r) {
    for (uint32_t b = 0; b < 8; ++b) {
      const T v = src.data()[r * 8 + b];
      T* block = dst.data() + (uint64_t(r) * p.dstRepStride + uint64_t(b) * p.dstBlkStride) * per_block;
      for (uint32_t l = 0; l < per_block; ++l) block[l] = v;
    }
  }
}

// ---- per-repeat reductions (WholeReduceMax/WholeReduceSum, kernel_operator_vec_reduce_intf.h; ReduceRepeat.md)

enum class ReduceOrder : uint8_t { ORDER_VALUE_INDEX = 0, ORDER_INDEX_VALUE, ORDER_ONLY_VALUE, ORDER_ONLY_INDEX };

namespace detail {
// What every level-0 reduction checks: repeat count and strides in range, a UB destination aligned to `align` bytes
// (its results' width; the message names them, `results`), the source's lanes inside its tensor. `page` is the API
// page the strides come from.
template <typename T>
void check_reduction(const char* what, const LocalTensor<T>& dst, const LocalTensor<T>& src, const Mask<T>& m,
                     int32_t repeat, int32_t dst_rep, int32_t src_blk, int32_t src_rep, uint32_t align,
                     const char* results, const char* page, const Loc& loc) {
  check_repeat(repeat, loc);
  ascend_sim::check(
      dst_rep >= 0 && dst_rep <= 65535 && src_blk >= 0 && src_blk <= 65535 && src_rep >= 0 && src_rep <= 65535, loc,
      [&] { return std::string("reduction strides must be in [0, 65535] (") + page + ")"; });
  ascend_sim::check(dst.valid() && dst.memory() == ascend_sim::Memory::kUb, loc,
                    [] { return std::string("reduction destination is not a UB tensor"); });
  ascend_sim::check(dst.offset_bytes() % align == 0, loc, [&] {
    return std::string(what) + " destination at byte offset " + std::to_string(dst.offset_bytes()) +
           " is not aligned to its " + std::to_string(align) + "-byte " + results;
  });
  check_level0_operand(src, m, repeat, uint32_t(src_blk), uint32_t(src_rep), loc, "source");
}

// One result per repeat: the enabled lanes of repeat r combined. dstRepStride counts results, each `slots`
// elements wide (value and index take two; ReduceRepeat.md table 3); the destination needs only that alignment.
template <typename T, typename F>
void whole_reduce(const char* what, const LocalTensor<T>& dst, const LocalTensor<T>& src, const Mask<T>& m,
                  int32_t repeat, int32_t dst_rep, int32_t src_blk, int32_t src_rep, ReduceOrder order, bool is_max,
                  const Loc& loc, F combine) {
  // Result width per repeat, ReduceRepeat.md table 3: value and index take two elements; a lone index is 32-bit.
  const bool pair = is_max && (order == ReduceOrder::ORDER_VALUE_INDEX || order == ReduceOrder::ORDER_INDEX_VALUE);
  const bool index_only = is_max && order == ReduceOrder::ORDER_ONLY_INDEX;
  const uint32_t unit = pair ? 2 * uint32_t(sizeof(T)) : index_only ? 4u : uint32_t(sizeof(T));
  const uint32_t slots = unit / uint32_t(sizeof(T));
  check_reduction(what, dst, src, m, repeat, dst_rep, src_blk, src_rep, unit, "result (ReduceRepeat.md table 3)",
                  "ReduceRepeat.md", loc);
  if (repeat > 0) dst.check_elems(uint64_t(repeat - 1) * dst_rep * slots + slots, loc);
  VectorInstr instr(uint64_t(m.active) * repeat, repeat, loc, what,
                    repeat_cycles<T>(ascend_sim::kModelRateReduceRepeat));
  const Access& a = instr.access();
  record_level0(src, m, repeat, uint32_t(src_blk), uint32_t(src_rep), false, a);
  for (int32_t r = 0; r < repeat; ++r) dst.sim_record(uint64_t(r) * dst_rep * slots, slots, true, a);
  if (ascend_sim::dry_run()) return;
  for (int32_t r = 0; r < repeat; ++r) {
    float acc = 0.0f;
    uint32_t at = 0;
    bool first = true;
    for (uint32_t lane = 0; lane < m.last; ++lane) {
      if (!m.on[lane]) continue;
      const float v = ascend_sim::to_f32(src.data()[lane_offset<T>(uint32_t(r), lane, src_blk, src_rep)]);
      if (first || combine(acc, v) != acc) at = lane;
      acc = first ? v : combine(acc, v);
      first = false;
    }
    T* out = dst.data() + uint64_t(r) * dst_rep * slots;
    T index{};
    std::memcpy(&index, &at, std::min(sizeof(T), sizeof(at)));  // beside a value, the index fills one element
    switch (is_max ? order : ReduceOrder::ORDER_ONLY_VALUE) {
      case ReduceOrder::ORDER_VALUE_INDEX:
        out[0] = ascend_sim::from_f32<T>(acc), out[1] = index;
        break;
      case ReduceOrder::ORDER_INDEX_VALUE:
        out[0] = index, out[1] = ascend_sim::from_f32<T>(acc);
        break;
      case ReduceOrder::ORDER_ONLY_VALUE:
        out[0] = ascend_sim::from_f32<T>(acc);
        break;
      case ReduceOrder::ORDER_ONLY_INDEX:
        std::memcpy(out, &at, sizeof(at));
        break;
    }
  }
}
// One result per 32-byte block: in each repeat, block b's enabled lanes combined into dst[r * dstRepStride * 8 + b]
// (ReduceDataBlock.md: results of a repeat are written one after the other; dstRepStride counts 8 results, 32 bytes
// for fp32 and 16 for fp16, which is also the destination's alignment). On A2 a block with no enabled lane leaves its
// result untouched (same page, 约束说明).
template <typename T, typename F>
void block_reduce(const char* what, const LocalTensor<T>& dst, const LocalTensor<T>& src, const Mask<T>& m,
                  int32_t repeat, int32_t dst_rep, int32_t src_blk, int32_t src_rep, const Loc& loc, F combine) {
  constexpr uint32_t per_block = ascend_sim::kBlockBytes / sizeof(T), blocks = 8;
  check_reduction(what, dst, src, m, repeat, dst_rep, src_blk, src_rep, blocks * uint32_t(sizeof(T)),
                  "results (ReduceDataBlock.md)", "ReduceDataBlock.md", loc);
  if (repeat > 0) dst.check_elems(uint64_t(repeat - 1) * dst_rep * blocks + blocks, loc);
  VectorInstr instr(uint64_t(m.active) * repeat, repeat, loc, what,
                    repeat_cycles<T>(ascend_sim::kModelRateReduceDataBlock));
  const Access& a = instr.access();
  record_level0(src, m, repeat, uint32_t(src_blk), uint32_t(src_rep), false, a);
  auto enabled = [&](uint32_t b) {
    for (uint32_t lane = b * per_block; lane < (b + 1) * per_block && lane < m.last; ++lane)
      if (m.on[lane]) return true;
    return false;
  };
  for (int32_t r = 0; r < repeat; ++r)
    for (uint32_t b = 0; b < blocks; ++b)
      if (enabled(b)) dst.sim_record(uint64_t(r) * dst_rep * blocks + b, 1, true, a);
  if (ascend_sim::dry_run()) return;
  for (int32_t r = 0; r < repeat; ++r) {
    for (uint32_t b = 0; b < blocks; ++b) {
      bool any = false;
      float acc = 0.0f;
      for (uint32_t lane = b * per_block; lane < (b + 1) * per_block && lane < m.last; ++lane) {
        if (!m.on[lane]) continue;
        const float v = ascend_sim::to_f32(src.data()[lane_offset<T>(uint32_t(r), lane, src_blk, src_rep)]);
        acc = any ? combine(acc, v) : v;
        any = true;
      }
      if (any) dst.data()[uint64_t(r) * dst_rep * blocks + b] = ascend_sim::from_f32<T>(acc);
    }
  }
}
}  // namespace detail

// CANN 9.1 renamed WholeReduceMax / WholeReduceSum to ReduceRepeat<ReduceType::MAX / SUM> and BlockReduceMax /
// BlockReduceSum to ReduceDataBlock<...> (mask now before repeatTime), and removed the old names (API appendix
// 附录/接口变更说明.md). Its kernel build force-includes asc_devkit_version.h, whose ASC_DEVKIT_VERSION_NUM
// (major x 10^7 + minor x 10^5 + patch x 10^3, less 100-300 for a pre-release) tells the two apart. Like the real
// headers, these offer one spelling or the other: built with that macro at 9.1 or later, only the new names; without
// it (CANN 8.x has no such header), only the old ones.
#if defined(ASC_DEVKIT_VERSION_NUM) && ASC_DEVKIT_VERSION_NUM >= 90100000 - 300
enum class ReduceType { SUM = 0, MAX, MIN };

// The simulator implements SUM and MAX with matching source and destination types (what A2 supports: half, float).
template <ReduceType reduceType, typename T, typename U, bool isSetMask = true>
void ReduceRepeat(const LocalTensor<T>& dst, const LocalTensor<U>& src, const int32_t mask, const int32_t repeatTime,
                  const int32_t dstRepStride, const int32_t srcBlkStride, const int32_t srcRepStride,
                  ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX, Loc loc = {}) {
  static_assert(std::is_same_v<T, U>, "the simulator's ReduceRepeat takes one type for dst and src");
  static_assert(reduceType != ReduceType::MIN, "ReduceRepeat<MIN> is not simulated");
  constexpr bool is_max = reduceType == ReduceType::MAX;
  detail::whole_reduce(is_max ? "ReduceRepeat<MAX>" : "ReduceRepeat<SUM>", dst, src,
                       detail::Mask<T>(uint64_t(mask), loc), repeatTime, dstRepStride, srcBlkStride, srcRepStride,
                       is_max ? order : ReduceOrder::ORDER_ONLY_VALUE, is_max, loc,
                       [](float a, float b) { return is_max ? std::max(a, b) : a + b; });
}
namespace detail {
// ReduceDataBlock with either mask form (the Mask<T> built from it).
template <ReduceType reduceType, typename T, typename U, typename MaskArg>
void reduce_data_block(const LocalTensor<T>& dst, const LocalTensor<U>& src, MaskArg mask, int32_t repeatTime,
                       int32_t dstRepStride, int32_t srcBlkStride, int32_t srcRepStride, const Loc& loc) {
  static_assert(std::is_same_v<T, U>, "ReduceDataBlock takes one type for dst and src (ReduceDataBlock.md)");
  static_assert(reduceType != ReduceType::MIN, "ReduceDataBlock<MIN> is not simulated");
  constexpr bool is_max = reduceType == ReduceType::MAX;
  block_reduce(is_max ? "ReduceDataBlock<MAX>" : "ReduceDataBlock<SUM>", dst, src, Mask<T>(mask, loc), repeatTime,
               dstRepStride, srcBlkStride, srcRepStride, loc,
               [](float a, float b) { return is_max ? std::max(a, b) : a + b; });
}
}  // namespace detail
template <ReduceType reduceType, typename T, typename U, bool isSetMask = true>
void ReduceDataBlock(const LocalTensor<T>& dst, const LocalTensor<U>& src, const int32_t mask, const int32_t repeatTime,
                     const int32_t dstRepStride, const int32_t srcBlkStride, const int32_t srcRepStride, Loc loc = {}) {
  detail::reduce_data_block<reduceType>(dst, src, uint64_t(mask), repeatTime, dstRepStride, srcBlkStride, srcRepStride,
                                        loc);
}
template <ReduceType reduceType, typename T, typename U, bool isSetMask = true>
void ReduceDataBlock(const LocalTensor<T>& dst, const LocalTensor<U>& src, const uint64_t mask[],
                     const int32_t repeatTime, const int32_t dstRepStride, const int32_t srcBlkStride,
                     const int32_t srcRepStride, Loc loc = {}) {
  detail::reduce_data_block<reduceType>(dst, src, mask, repeatTime, dstRepStride, srcBlkStride, srcRepStride, loc);
}
#else
template <typename T, bool isSetMask = true>
void WholeReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t mask, const int32_t repeatTime,
                    const int32_t dstRepStride, const int32_t srcBlkStride, const int32_t srcRepStride,
                    ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX, Loc loc = {}) {
  detail::whole_reduce("WholeReduceMax", dst, src, detail::Mask<T>(uint64_t(mask), loc), repeatTime, dstRepStride,
                       srcBlkStride, srcRepStride, order, true, loc, [](float a, float b) { return std::max(a, b); });
}
template <typename T, bool isSetMask = true>
void WholeReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint64_t mask[],
                    const int32_t repeatTime, const int32_t dstRepStride, const int32_t srcBlkStride,
                    const int32_t srcRepStride, ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX, Loc loc = {}) {
  detail::whole_reduce("WholeReduceMax", dst, src, detail::Mask<T>(mask, loc), repeatTime, dstRepStride, srcBlkStride,
                       srcRepStride, order, true, loc, [](float a, float b) { return std::max(a, b); });
}
template <typename T, bool isSetMask = true>
void WholeReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t mask, const int32_t repeatTime,
                    const int32_t dstRepStride, const int32_t srcBlkStride, const int32_t srcRepStride, Loc loc = {}) {
  detail::whole_reduce("WholeReduceSum", dst, src, detail::Mask<T>(uint64_t(mask), loc), repeatTime, dstRepStride,
                       srcBlkStride, srcRepStride, ReduceOrder::ORDER_ONLY_VALUE, false, loc,
                       [](float a, float b) { return a + b; });
}
template <typename T, bool isSetMask = true>
void WholeReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint64_t mask[],
                    const int32_t repeatTime, const int32_t dstRepStride, const int32_t srcBlkStride,
                    const int32_t srcRepStride, Loc loc = {}) {
  detail::whole_reduce("WholeReduceSum", dst, src, detail::Mask<T>(mask, loc), repeatTime, dstRepStride, srcBlkStride,
                       srcRepStride, ReduceOrder::ORDER_ONLY_VALUE, false, loc, [](float a, float b) { return a + b; });
}
// Before 9.1 (kernel_operator_vec_reduce_intf.h of CANN 8.x): repeatTime before mask.
#define ASCEND_SIM_BLOCK_REDUCE(NAME, EXPR)                                                                        \
  template <typename T, bool isSetMask = true>                                                                     \
  void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t repeatTime, const int32_t mask,    \
            const int32_t dstRepStride, const int32_t srcBlkStride, const int32_t srcRepStride, Loc loc = {}) {    \
    detail::block_reduce(#NAME, dst, src, detail::Mask<T>(uint64_t(mask), loc), repeatTime, dstRepStride,          \
                         srcBlkStride, srcRepStride, loc, [](float a, float b) { return EXPR; });                  \
  }                                                                                                                \
  template <typename T, bool isSetMask = true>                                                                     \
  void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t repeatTime, const uint64_t mask[], \
            const int32_t dstRepStride, const int32_t srcBlkStride, const int32_t srcRepStride, Loc loc = {}) {    \
    detail::block_reduce(#NAME, dst, src, detail::Mask<T>(mask, loc), repeatTime, dstRepStride, srcBlkStride,      \
                         srcRepStride, loc, [](float a, float b) { return EXPR; });                                \
  }
ASCEND_SIM_BLOCK_REDUCE(BlockReduceMax, std::max(a, b))
ASCEND_SIM_BLOCK_REDUCE(BlockReduceSum, a + b)
#undef ASCEND_SIM_BLOCK_REDUCE
#endif

enum class CMPMODE : uint8_t { LT = 0, GT, EQ, LE, GE, NE };
enum class SELMODE : uint8_t { VSEL_CMPMASK_SPR = 0, VSEL_TENSOR_SCALAR_MODE, VSEL_TENSOR_TENSOR_MODE };

// Bit i of the packed result (bit i % 8 of byte i / 8) is the comparison of element i; count * sizeof(T) must be a
// multiple of 256 bytes.
template <typename T, typename U>
void Compare(const LocalTensor<U>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, CMPMODE cmpMode,
             uint32_t count, Loc loc = {}) {
  static_assert(std::is_same_v<U, uint8_t>, "the simulator writes Compare's bit mask as uint8_t");
  const CMPMODE mode = cmpMode;
  ascend_sim::check(uint64_t(count) * sizeof(T) % ascend_sim::kRepeatBytes == 0, loc, [&] {
    return "Compare count " + std::to_string(count) + " is not a multiple of 256 bytes of operands";
  });
  detail::check_operand(src0, count, loc, "source 0");
  detail::check_operand(src1, count, loc, "source 1");
  detail::check_operand(dst, (count + 7) / 8, loc, "destination");
  detail::VectorInstr instr(count, detail::level2_cycles<T>(count), loc, "Compare");
  const detail::Access& in = instr.access();
  src0.sim_record(0, count, false, in);
  src1.sim_record(0, count, false, in);
  dst.sim_record(0, (count + 7) / 8, true, in);
  if (ascend_sim::dry_run()) return;
  for (uint32_t i = 0; i < count; ++i) {
    const float a = ascend_sim::to_f32(src0.data()[i]), b = ascend_sim::to_f32(src1.data()[i]);
    bool r = false;
    switch (mode) {
      case CMPMODE::LT:
        r = a < b;
        break;
      case CMPMODE::GT:
        r = a > b;
        break;
      case CMPMODE::EQ:
        r = a == b;
        break;
      case CMPMODE::LE:
        r = a <= b;
        break;
      case CMPMODE::GE:
        r = a >= b;
        break;
      case CMPMODE::NE:
        r = a != b;
        break;
    }
    uint8_t& byte = dst.data()[i / 8];
    byte = uint8_t(r ? byte | (1u << (i % 8)) : byte & ~(1u << (i % 8)));
  }
}

// VSEL_TENSOR_SCALAR_MODE: dst[i] = bit i of selMask ? src0[i] : scalar.
template <typename T, typename U>
void Select(const LocalTensor<T>& dst, const LocalTensor<U>& selMask, const LocalTensor<T>& src0, T src1,
            SELMODE selMode, uint32_t count, Loc loc = {}) {
  static_assert(std::is_same_v<U, uint8_t>, "the simulator reads Select's bit mask as uint8_t");
  const SELMODE mode = selMode;
  const T scalar = src1;
  ascend_sim::check(mode == SELMODE::VSEL_TENSOR_SCALAR_MODE, loc,
                    [] { return "only Select VSEL_TENSOR_SCALAR_MODE is simulated"; });
  detail::check_operand(selMask, (count + 7) / 8, loc, "selection mask");
  detail::check_operand(src0, count, loc, "source");
  const float s = ascend_sim::to_f32(scalar);
  const uint8_t* bits = selMask.data();
  const T* x = src0.data();
  detail::level2(
      "Select", detail::kBasic, dst, int32_t(count), loc,
      [&](int32_t i) { return (bits[i / 8] >> (i % 8)) & 1 ? ascend_sim::to_f32(x[i]) : s; }, src0,
      detail::Span<uint8_t>{selMask, (count + 7) / 8});
}

}  // namespace AscendC
