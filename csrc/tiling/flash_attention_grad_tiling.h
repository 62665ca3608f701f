// Host tiling of the flash_attention_grad kernel (the backward of flash_attention): a pure function of shapes,
// options and core count (no device calls).
#pragma once
#include <cstdint>
#include <vector>

#include "../../op_kernel/flash_attention_grad/flash_attention_grad_tiling.h"

namespace ascend_attn {

struct FlashAttentionGradProblem {
  uint32_t dtype = kFlashFp16;  // FlashDtype
  uint32_t batch = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, head_dim_v = 0;
  float scale = 1.0f, softcap = 0.0f;
  int32_t window_left = -1, window_right = -1;  // causal folded in as window_right = 0
  bool deterministic = false;
  const int32_t* cu_seqlens_q = nullptr;  // host copies, [batch + 1]
  const int32_t* cu_seqlens_k = nullptr;
};

struct FlashAttentionGradPlan {
  FlashAttentionGradTiling tiling;
  uint32_t block_dim = 0;              // cores to launch (0: no query or no key, every gradient is 0)
  uint64_t workspace_bytes = 0;        // system workspace + D, the dQ accumulator and per-AIV slots
  std::vector<uint32_t> task_weights;  // the kv tasks, then the dQ tasks, in task order
};

// Throws std::invalid_argument naming the argument when the kernel cannot run the problem.
FlashAttentionGradPlan plan_flash_attention_grad(const FlashAttentionGradProblem& problem, uint32_t core_num,
                                                 uint64_t sys_workspace_bytes);

}  // namespace ascend_attn
