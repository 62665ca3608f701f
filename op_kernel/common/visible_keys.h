// The keys a query may see (DESIGN.md "Attention semantics"), for the Ascend C kernels: a query at absolute position
// `pos` (query i of Sq over Sk keys sits at i + Sk - Sq) sees [FirstVisibleKey, EndVisibleKey) within [0, seqlen_k).
// Window sides of -1 are unbounded; causal is window_right = 0.
#pragma once
#include "kernel_operator.h"

namespace ascend_attn_kernel {

__aicore__ inline int64_t FirstVisibleKey(int64_t pos, int32_t window_left) {
  const int64_t lo = window_left < 0 ? 0 : pos - window_left;
  return lo < 0 ? 0 : lo;
}

__aicore__ inline int64_t EndVisibleKey(int64_t pos, int64_t seqlen_k, int32_t window_right) {
  const int64_t hi = window_right < 0 ? seqlen_k : pos + window_right + 1;
  return hi > seqlen_k ? seqlen_k : hi;
}

}  // namespace ascend_attn_kernel
