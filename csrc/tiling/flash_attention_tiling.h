// Host tiling of the flash_attention kernel: a pure function of shapes, options and core count (no device calls).
#pragma once
#include <cstdint>
#include <vector>

#include "../../op_kernel/flash_attention/flash_attention_tiling.h"

namespace ascend_attn {

struct FlashAttentionProblem {
  uint32_t dtype = kFlashFp16;  // FlashDtype
  uint32_t batch = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, head_dim_v = 0;
  float scale = 1.0f, softcap = 0.0f;
  int32_t window_left = -1, window_right = -1;  // causal folded in as window_right = 0
  bool return_lse = false;
  const int32_t* cu_seqlens_q = nullptr;  // host copies, [batch + 1]
  const int32_t* cu_seqlens_k = nullptr;
};

struct FlashAttentionPlan {
  FlashAttentionTiling tiling;
  uint32_t block_dim = 0;              // cores to launch (0: nothing to compute)
  uint64_t workspace_bytes = 0;        // system workspace + per-AIV slots
  std::vector<uint32_t> task_weights;  // visible KV tiles of each task, in task order
};

// Throws std::invalid_argument naming the argument when the kernel cannot run the problem.
FlashAttentionPlan plan_flash_attention(const FlashAttentionProblem& problem, uint32_t core_num,
                                        uint64_t sys_workspace_bytes);

}  // namespace ascend_attn
