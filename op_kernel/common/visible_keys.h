// The keys a query may see (DESIGN.md "Attention semantics"), for the Ascend C kernels: a query at absolute position
// `pos` (query i of Sq over Sk keys sits at i + Sk - Sq) sees [FirstVisibleKey, EndVisibleKey) within [0, seqlen_k);
// and the other way round, the queries that see some key of a key range. Window sides of -1 are unbounded; causal is
// window_right = 0.
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

// Query rows [FirstSeeingQuery, EndSeeingQuery) of a sequence (Sq queries over Sk keys) see some key of
// [key_begin, key_end) (within [0, seqlen_k)); empty when the end is not past the first. Row i sees key j iff
// i + Sk - Sq - left <= j <= i + Sk - Sq + right.
__aicore__ inline int64_t FirstSeeingQuery(int64_t key_begin, int64_t seqlen_q, int64_t seqlen_k,
                                           int32_t window_right) {
  const int64_t first = window_right < 0 ? 0 : key_begin - window_right - (seqlen_k - seqlen_q);
  return first < 0 ? 0 : first;
}

__aicore__ inline int64_t EndSeeingQuery(int64_t key_end, int64_t seqlen_q, int64_t seqlen_k, int32_t window_left) {
  const int64_t end = window_left < 0 ? seqlen_q : key_end + window_left - (seqlen_k - seqlen_q);
  return end > seqlen_q ? seqlen_q : end;
}

// The keys each query row of a block may see, relative to the first key k0 of the current KV tile (device code needs a
// functor with an __aicore__ call operator: bisheng rejects a lambda called from aicore code). Row i of the block is
// row q_row0 + i of its sequence.
struct FlashVisible {
  int64_t q_row0, seqlen_q, seqlen_k, k0;
  int32_t window_left, window_right;
  __aicore__ inline void operator()(uint32_t i, int64_t& lo, int64_t& hi) const {
    const int64_t pos = q_row0 + i + seqlen_k - seqlen_q;  // bottom-right aligned
    lo = FirstVisibleKey(pos, window_left) - k0;
    hi = EndVisibleKey(pos, seqlen_k, window_right) - k0;
  }
};

}  // namespace ascend_attn_kernel
