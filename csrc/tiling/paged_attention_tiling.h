// Host tiling of the paged_attention and reshape_and_cache kernels: pure functions of shapes, host copies of the
// sequence lengths, options and core count (no device calls).
#pragma once
#include <cstdint>
#include <vector>

#include "../../op_kernel/paged_attention/paged_attention_tiling.h"
#include "../../op_kernel/reshape_and_cache/reshape_and_cache_tiling.h"

namespace ascend_attn {

struct PagedAttentionProblem {
  uint32_t dtype = kPagedFp16;  // PagedDtype
  uint32_t num_seqs = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, head_dim_v = 0;
  uint32_t num_blocks = 0, block_size = 0, max_blocks_per_seq = 0;
  float scale = 1.0f, softcap = 0.0f;
  int32_t window_left = -1, window_right = -1;  // causal folded in as window_right = 0
  bool return_lse = false;
  const int32_t* context_lens = nullptr;  // host copies
  const int32_t* cu_seqlens_q = nullptr;  // [num_seqs + 1]
};

struct PagedAttentionPlan {
  PagedAttentionTiling tiling;
  uint32_t block_dim = 0;
  uint64_t workspace_bytes = 0;
  uint64_t error_bytes = 0;  // the per-worker error slots at tiling.ws_error_offset of the user workspace
  std::vector<uint32_t> item_weights;
};

// Throws std::invalid_argument naming the argument when the kernel cannot run the problem.
PagedAttentionPlan plan_paged_attention(const PagedAttentionProblem& problem, uint32_t core_num,
                                        uint64_t sys_workspace_bytes);

struct ReshapeAndCachePlan {
  ReshapeAndCacheTiling tiling;
  uint32_t block_dim = 0;  // AIVs (vector-only kernel)
  uint64_t workspace_bytes = 0;
  uint64_t error_bytes = 0;  // the per-worker error slots at the start of the user workspace
};

ReshapeAndCachePlan plan_reshape_and_cache(uint32_t num_tokens, uint32_t num_kv_heads, uint32_t head_dim,
                                           uint32_t head_dim_v, uint32_t num_blocks, uint32_t block_size,
                                           uint32_t elem_bytes, bool slot_int64, uint32_t aiv_num,
                                           uint64_t sys_workspace_bytes);

}  // namespace ascend_attn
