// The host flow of the Ascend C flash_attention kernel, written once for the NPU and simulator executors:
// validate -> tiling -> workspace -> copy tiling -> launch.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <tuple>

#include "attention_args.h"

namespace ascend_attn {

// What differs between executors: core count, library workspace, stream, and how a launch is queued.
struct KernelDevice {
  uint32_t core_num = 0;
  uint64_t sys_workspace_bytes = 0;
  void* stream = nullptr;
  std::function<void(const std::function<void()>&)> enqueue;  // runs (or queues) the launch
};

// a: validated varlen arguments (fp16/bf16). Returns out [total_q, heads, head_dim_v] and lse fp32 [heads, total_q]
// (empty unless a.return_lse), plus the launched block dim. Reads cu_seqlens on the host (one small copy from a
// device), as the tiling balances cores by sequence length.
std::tuple<at::Tensor, at::Tensor, uint32_t> flash_attention_varlen_launch(const AttentionArgs& a,
                                                                           const KernelDevice& device);

}  // namespace ascend_attn
