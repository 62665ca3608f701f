// The keys a query row may see (DESIGN.md "Attention semantics"), for host code: the CPU kernels, the argument
// checks and the Ascend C tilings. Torch-free. (The Ascend C kernels have theirs in op_kernel/common/visible_keys.h.)
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>

namespace ascend_attn {

// Visible key range [lo, hi) of query row i (0-based) of a sequence, bottom-right aligned; empty when hi <= lo.
// Window sides of -1 are unbounded; causal is window_right = 0.
inline void visible_keys(int64_t i, int64_t seqlen_q, int64_t seqlen_k, int64_t window_left, int64_t window_right,
                         int64_t* lo, int64_t* hi) {
  const int64_t pos = i + seqlen_k - seqlen_q;
  int64_t l = window_left < 0 ? 0 : pos - window_left;
  int64_t h = window_right < 0 ? seqlen_k : pos + window_right + 1;
  *lo = l < 0 ? 0 : l;
  *hi = h > seqlen_k ? seqlen_k : h;
}

// Keys [lo, hi) some row in [row_begin, row_end) can see (the rows' ranges move monotonically); hi >= lo.
inline std::pair<int64_t, int64_t> key_span(int64_t row_begin, int64_t row_end, int64_t seqlen_q, int64_t seqlen_k,
                                            int64_t window_left, int64_t window_right) {
  int64_t lo0, hi0, lo1, hi1;
  visible_keys(row_begin, seqlen_q, seqlen_k, window_left, window_right, &lo0, &hi0);
  visible_keys(row_end - 1, seqlen_q, seqlen_k, window_left, window_right, &lo1, &hi1);
  return {lo0, std::max(hi1, lo0)};
}

// Query rows [lo, hi) of a sequence that see some key of [key_begin, key_end) (within [0, seqlen_k)); hi >= lo. Row i
// sees key j iff i + Sk - Sq - left <= j <= i + Sk - Sq + right.
inline std::pair<int64_t, int64_t> query_span(int64_t key_begin, int64_t key_end, int64_t seqlen_q, int64_t seqlen_k,
                                              int64_t window_left, int64_t window_right) {
  const int64_t offset = seqlen_k - seqlen_q;
  const int64_t lo = window_right < 0 ? 0 : std::max<int64_t>(0, key_begin - window_right - offset);
  const int64_t hi = window_left < 0 ? seqlen_q : std::min<int64_t>(seqlen_q, key_end + window_left - offset);
  return {lo, std::max(hi, lo)};
}

}  // namespace ascend_attn
