// Validation of the paged-cache ops' arguments, written once for every executor (CPU, NPU, simulator).
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

#include "common/attention_args.h"

namespace ascend_attn {

struct PagedArgs {
  AttentionArgs attn;       // q, k = key_cache, v = value_cache, options; batch = num_seqs
  at::Tensor block_tables;  // int32 [num_seqs, max_blocks_per_seq], inner stride 1
  at::Tensor context_lens;  // int32 [num_seqs] on the host
  at::Tensor cu_seqlens_q;  // int32 [num_seqs + 1] on the host (built when the caller passed None)
  int64_t num_blocks = 0, block_size = 0, max_blocks_per_seq = 0;
};

// Checks shapes, dtypes, lengths, and that every block index the attention reads (the blocks overlapping some
// query's visible keys) lies in [0, num_blocks). A sequence may have more queries than keys (flash-attn's rule): its
// first queries then sit before position 0.
PagedArgs check_paged_attention_args(const at::Tensor& q, const at::Tensor& key_cache, const at::Tensor& value_cache,
                                     const at::Tensor& block_tables, const at::Tensor& context_lens,
                                     const std::optional<at::Tensor>& cu_seqlens_q, std::optional<double> softmax_scale,
                                     bool causal, at::IntArrayRef window_size, double softcap,
                                     const std::optional<at::Tensor>& alibi_slopes, bool return_lse);

// Checks shapes and dtypes, that every non-negative slot is < num_blocks * block_size and written by one token only,
// and that no cache element shares memory with another element or with an input; nothing is written before this
// passes.
void check_reshape_and_cache_args(const at::Tensor& key, const at::Tensor& value, const at::Tensor& key_cache,
                                  const at::Tensor& value_cache, const at::Tensor& slot_mapping);

void check_merge_attn_states_args(const at::Tensor& out_a, const at::Tensor& lse_a, const at::Tensor& out_b,
                                  const at::Tensor& lse_b);

}  // namespace ascend_attn
