// Runs the CPU attention kernel over a batch of sequences on the torch thread pool: shared by flash_attention,
// flash_attention_varlen and paged_attention (which differ only in how FlashParams addresses q, k and v).
#pragma once
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "cpu/flash_kernel.h"
#include "cpu/scratch.h"

namespace ascend_attn::cpu {

ElemType elem_type(at::ScalarType t);

// Fills p.q/k/v/out/lse pointers and the option fields shared by all attention ops (everything but strides,
// sequences and paging). `lse` may be empty (no lse output).
void set_common_params(FlashParams& p, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& out,
                       at::Tensor& lse, double scale, double softcap, int64_t window_left, int64_t window_right,
                       const std::optional<at::Tensor>& alibi_slopes);

// Splits the work into items (q tiles x kv heads x q-head chunks, and key ranges when there are too few items to
// keep every thread busy and `split_kv` allows it), runs them largest-first from a shared counter, and merges
// split-KV partial results by their lse. `out` is the output tensor p.out points into (for its dtype).
void run_attention(FlashParams p, const std::vector<SeqDesc>& seqs, bool split_kv, const at::Tensor& out);

// Combines n partial results of one query row over disjoint key sets: out = sum_i w_i out_i / sum_i w_i with
// w_i = exp(lse_i - max lse); lse = log sum_i exp(lse_i). Parts with lse = -inf (no visible key) weigh 0; if all
// are -inf the row is 0 and lse -inf.
template <typename Out>
void merge_partials(int n, const float* const* outs, const float* lses, int64_t dim, Out* out, float* lse) {
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = std::max(m, lses[i]);
  if (m == -INFINITY) {
    for (int64_t c = 0; c < dim; ++c) out[c] = Out(0.f);
    *lse = -INFINITY;
    return;
  }
  float w[64];
  float total = 0.f;
  for (int i = 0; i < n; ++i) total += (w[i] = std::exp(lses[i] - m));
  for (int64_t c = 0; c < dim; ++c) {
    float acc = 0.f;
    for (int i = 0; i < n; ++i)
      if (w[i] > 0.f) acc += w[i] * outs[i][c];
    out[c] = Out(acc / total);
  }
  *lse = m + std::log(total);
}

}  // namespace ascend_attn::cpu
