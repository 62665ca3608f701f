// The host flow of the Ascend C flash_attention kernel, written once for the NPU and simulator executors:
// validate -> tiling -> workspace -> copy tiling -> launch.
#pragma once
#include <ATen/core/Tensor.h>

#include "attention_args.h"
#include "kernel_launch.h"

namespace ascend_attn {

// a: validated varlen arguments (fp16/bf16). Returns out [total_q, heads, head_dim_v] and lse fp32 [heads, total_q]
// (empty unless a.return_lse) and the launched block dim. The tiling balances cores by sequence length, from the host
// copies of cu_seqlens the argument check made.
KernelLaunch flash_attention_varlen_launch(const AttentionArgs& a, const KernelDevice& device);

}  // namespace ascend_attn
