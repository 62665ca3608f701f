// The host flow of the Ascend C flash_attention_grad kernel (the backward of flash_attention), written once for the
// NPU and simulator executors: validate -> tiling -> workspace -> copy tiling -> launch.
#pragma once
#include <ATen/core/Tensor.h>

#include "attention_grad_args.h"
#include "kernel_launch.h"

namespace ascend_attn {

struct GradLaunch {
  at::Tensor dq, dk, dv;  // q's, k's and v's shapes and dtype
  uint32_t block_dim = 0;
};

// g: validated varlen backward arguments (fp16/bf16). Returns dq [total_q, heads, head_dim],
// dk [total_k, kv_heads, head_dim], dv [total_k, kv_heads, head_dim_v] and the launched block dim (0: no query or no
// key, so every gradient is 0 and nothing runs). The tiling balances cores by sequence length, from the host copies
// of cu_seqlens the argument check made.
GradLaunch flash_attention_varlen_backward_launch(const AttentionGradArgs& g, const KernelDevice& device);

}  // namespace ascend_attn
