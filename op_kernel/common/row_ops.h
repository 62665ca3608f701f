// Per-row helpers of the attention kernels' vector side (UB, fp32): masking a column range of one score row,
// combining every row of a block with its own value from [rows, 8] statistics, and reducing every row to one value.
#pragma once
#include "kernel_operator.h"

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

// reduced[r] = the max or sum of row r of block [n, cols] (cols a multiple of 8), for r < n: 64-lane column groups
// fold into one with elementwise ops (a partial last group folds only its lanes) in `fold` ([n, 64]), then one
// reduction per row turns the fold into a value. No scalar work, so the vector pipe never waits for the scalar unit.
template <RowOp kOp>
__aicore__ inline void RowReduce(const AscendC::LocalTensor<float>& reduced, const AscendC::LocalTensor<float>& block,
                                 uint32_t n, uint32_t cols, const AscendC::LocalTensor<float>& fold) {
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
  const int32_t lanes = int32_t(cols < kFp32PerRepeat ? cols : kFp32PerRepeat);
  const int32_t src_stride = cols > kFp32PerRepeat ? 8 : stride;
  if constexpr (kOp == RowOp::kMax) {
    AscendC::WholeReduceMax(reduced, src, lanes, int32_t(n), 1, 1, src_stride, AscendC::ReduceOrder::ORDER_ONLY_VALUE);
  } else {
    AscendC::WholeReduceSum(reduced, src, lanes, int32_t(n), 1, 1, src_stride);
  }
}

}  // namespace ascend_attn_kernel
