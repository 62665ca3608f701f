// Per-row helpers of the attention kernels' vector side (UB, fp32): masking a column range of one score row,
// combining every row of a block with its own value from [rows, 8] statistics, and reducing every row to one value.
#pragma once
#include "kernel_operator.h"

// CANN 9.1 renamed BlockReduceMax / BlockReduceSum to ReduceDataBlock<ReduceType::MAX / SUM> (mask now before
// repeatTime) and removed the old names (API appendix 附录/接口变更说明.md). Its kernel build force-includes
// version/asc_devkit_version.h (scripts/build.sh passes it to bisheng), whose ASC_DEVKIT_VERSION_NUM is major x 10^7 +
// minor x 10^5 + patch x 10^3, less 100-300 for a pre-release; CANN 8.x has no such header, and the old names.
#if !defined(ASC_DEVKIT_VERSION_NUM) && defined(__has_include)
#if __has_include("version/asc_devkit_version.h")
#include "version/asc_devkit_version.h"
#endif
#endif
#if defined(ASC_DEVKIT_VERSION_NUM) && ASC_DEVKIT_VERSION_NUM >= 90100000 - 300
#define ASCEND_ATTN_REDUCE_DATA_BLOCK 1
#endif

namespace ascend_attn_kernel {

constexpr uint32_t kFp32PerRepeat = 64;  // one 256-byte vector repeat of fp32
constexpr float kInf = __builtin_inff();

// row[from, to) = value. Whole 64-lane groups use the count form; a partial group uses a bitwise lane mask so the
// operand still starts on its 256-byte group (32-byte aligned, as every vector operand must be).
__aicore__ inline void FillColumns(const AscendC::LocalTensor<float>& row, uint32_t from, uint32_t to, float value) {
  while (from < to) {
    const uint32_t group = from / kFp32PerRepeat * kFp32PerRepeat;
    if (from == group && to - group >= kFp32PerRepeat) {
      const uint32_t whole = (to - group) / kFp32PerRepeat * kFp32PerRepeat;
      AscendC::Duplicate(row[group], value, int32_t(whole));
      from = group + whole;
      continue;
    }
    const uint32_t end = to < group + kFp32PerRepeat ? to : group + kFp32PerRepeat;
    const uint32_t lo = from - group, n = end - from;
    uint64_t mask[2] = {(n == 64 ? ~0ull : ((1ull << n) - 1)) << lo, 0};  // non-const: the API takes uint64_t[]
    AscendC::Duplicate(row[group], value, mask, 1, 1, 8);
    from = end;
  }
}

// Columns outside [lo, hi) of a score row of `padded` columns, and the padding past `cols`, become -inf.
__aicore__ inline void MaskColumns(const AscendC::LocalTensor<float>& row, int64_t lo, int64_t hi, uint32_t cols,
                                   uint32_t padded) {
  lo = lo < 0 ? 0 : (lo > padded ? padded : lo);
  hi = hi > cols ? cols : (hi < lo ? lo : hi);
  if (lo > 0) FillColumns(row, 0, uint32_t(lo), -kInf);
  if (hi < padded) FillColumns(row, uint32_t(hi), padded, -kInf);
}

enum class RowOp { kAdd, kSub, kMul, kDiv, kMax };

// block[r, :cols] op= stat[r, :] for r < rows (block row stride `cols`, a multiple of 8; stat [rows, 8] with the
// row's value in all 8 lanes); op is -, * or /. The stat operand has block stride 0 and repeat stride 1: every
// 32-byte block of repeat r reads stat row r.
template <RowOp kOp>
__aicore__ inline void RowsOp(const AscendC::LocalTensor<float>& block, const AscendC::LocalTensor<float>& stat,
                              uint32_t rows, uint32_t cols) {
  const AscendC::BinaryRepeatParams params(1, 1, 0, uint8_t(cols / 8), uint8_t(cols / 8), 1);
  for (uint32_t c = 0; c < cols; c += kFp32PerRepeat) {
    const uint64_t lanes = cols - c < kFp32PerRepeat ? cols - c : kFp32PerRepeat;
    if constexpr (kOp == RowOp::kSub) {
      AscendC::Sub(block[c], block[c], stat, lanes, int32_t(rows), params);
    } else if constexpr (kOp == RowOp::kMul) {
      AscendC::Mul(block[c], block[c], stat, lanes, int32_t(rows), params);
    } else {
      static_assert(kOp == RowOp::kDiv, "RowsOp takes kSub, kMul or kDiv");
      AscendC::Div(block[c], block[c], stat, lanes, int32_t(rows), params);
    }
  }
}

template <RowOp kOp>
__aicore__ inline void RowElementwise(const AscendC::LocalTensor<float>& dst, const AscendC::LocalTensor<float>& a,
                                      const AscendC::LocalTensor<float>& b, uint32_t lanes, uint32_t n,
                                      const AscendC::BinaryRepeatParams& params) {
  if constexpr (kOp == RowOp::kMax) {
    AscendC::Max(dst, a, b, uint64_t(lanes), int32_t(n), params);
  } else {
    static_assert(kOp == RowOp::kAdd, "RowElementwise takes kAdd or kMax");
    AscendC::Add(dst, a, b, uint64_t(lanes), int32_t(n), params);
  }
}

// dst[r * 8 + b] = the max or sum of the lanes `mask` enables in block b of repeat r of src, for r < repeat: one result
// per 32-byte block, repeats `src_rep` blocks apart; blocks with no enabled lane keep their result.
template <RowOp kOp>
__aicore__ inline void ReduceBlocks(const AscendC::LocalTensor<float>& dst, const AscendC::LocalTensor<float>& src,
                                    const uint64_t mask[], int32_t repeat, int32_t src_rep) {
#ifdef ASCEND_ATTN_REDUCE_DATA_BLOCK
  constexpr AscendC::ReduceType kType = kOp == RowOp::kMax ? AscendC::ReduceType::MAX : AscendC::ReduceType::SUM;
  AscendC::ReduceDataBlock<kType>(dst, src, mask, repeat, 1, 1, src_rep);
#else
  if constexpr (kOp == RowOp::kMax) {
    AscendC::BlockReduceMax(dst, src, repeat, mask, 1, 1, src_rep);
  } else {
    static_assert(kOp == RowOp::kAdd, "ReduceBlocks takes kAdd or kMax");
    AscendC::BlockReduceSum(dst, src, repeat, mask, 1, 1, src_rep);
  }
#endif
}

// reduced[r] = the max or sum of row r of block [n, cols] (cols a multiple of 8), for r < n: 64-lane column groups
// fold into one with elementwise ops (a partial last group folds only its lanes) in `fold` ([n, 64]); per-block
// reductions take each row's (up to) 64 lanes to 8 partial results in `partial` ([n, 8], 32-byte aligned), then the
// partials, eight rows per repeat, to one value per row. A per-block reduction costs one cycle per fp32 repeat, a
// per-repeat one (WholeReduce / ReduceRepeat) seven (A2 table of 附录/Vector指令理论性能汇总.md): n + n / 8 repeats
// instead of 7 n. No scalar work beyond three masks, so the vector pipe never waits for the scalar unit.
template <RowOp kOp>
__aicore__ inline void RowReduce(const AscendC::LocalTensor<float>& reduced, const AscendC::LocalTensor<float>& block,
                                 uint32_t n, uint32_t cols, const AscendC::LocalTensor<float>& fold,
                                 const AscendC::LocalTensor<float>& partial) {
  const uint8_t stride = uint8_t(cols / 8);
  AscendC::LocalTensor<float> src = block;
  if (cols > kFp32PerRepeat) {
    // The first fold writes every lane of the fold buffer: with a partial second group, copy group 0 (max(x, x)).
    const uint32_t rest = cols - kFp32PerRepeat, second = rest < kFp32PerRepeat ? rest : kFp32PerRepeat;
    const AscendC::BinaryRepeatParams first(1, 1, 1, 8, stride, stride);
    if (second == kFp32PerRepeat) {
      RowElementwise<kOp>(fold, block, block[kFp32PerRepeat], kFp32PerRepeat, n, first);
    } else {
      AscendC::Max(fold, block, block, kFp32PerRepeat, int32_t(n), first);
      RowElementwise<kOp>(fold, fold, block[kFp32PerRepeat], second, n,
                          AscendC::BinaryRepeatParams(1, 1, 1, 8, 8, stride));
    }
    for (uint32_t c = 2 * kFp32PerRepeat; c < cols; c += kFp32PerRepeat) {
      const uint32_t lanes = cols - c < kFp32PerRepeat ? cols - c : kFp32PerRepeat;
      RowElementwise<kOp>(fold, fold, block[c], lanes, n, AscendC::BinaryRepeatParams(1, 1, 1, 8, 8, stride));
    }
    src = fold;
  }
  const uint32_t lanes = cols < kFp32PerRepeat ? cols : kFp32PerRepeat;
  const uint64_t row_mask[2] = {lanes == kFp32PerRepeat ? ~0ull : (1ull << lanes) - 1, 0};
  ReduceBlocks<kOp>(partial, src, row_mask, int32_t(n), cols > kFp32PerRepeat ? 8 : stride);
  // Row r's partials are block r of `partial`, their first lanes / 8 lanes valid; a repeat covers eight rows.
  const uint64_t valid = lanes == kFp32PerRepeat ? 0xffull : (1ull << (lanes / 8)) - 1;
  uint64_t each = 0;
  for (uint32_t b = 0; b < 8; ++b) each |= valid << (8 * b);
  const uint64_t whole[2] = {each, 0};
  if (n >= 8) ReduceBlocks<kOp>(reduced, partial, whole, int32_t(n / 8), 8);
  if (n % 8 != 0) {
    const uint64_t tail[2] = {each & ((1ull << (8 * (n % 8))) - 1), 0};
    ReduceBlocks<kOp>(reduced[n / 8 * 8], partial[n / 8 * 64], tail, 1, 8);
  }
}

}  // namespace ascend_attn_kernel
