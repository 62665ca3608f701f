// Per-row helpers of the attention kernels' vector side (UB, fp32): masking a column range of one score row and
// combining every row of a block with its own value from [rows, 8] statistics.
#pragma once
#include "kernel_operator.h"

namespace ascend_attn_kernel {

constexpr uint32_t kFp32PerRepeat = 64;  // one 256-byte vector repeat of fp32

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

}  // namespace ascend_attn_kernel
