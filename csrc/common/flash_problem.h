// The tiling problem both Ascend C flash kernels' host flows fill from validated arguments. Kept out of the launch
// headers, which csrc/npu includes: the tiling structs need the kernel_tiling headers, which csrc/npu does not.
#pragma once
#include <ATen/core/Tensor.h>

#include "../tiling/flash_attention_tiling.h"
#include "attention_args.h"

namespace ascend_attn {

// The tiling problem's fields the forward and backward kernels share (FlashAttentionProblem or
// FlashAttentionGradProblem), from validated varlen arguments whose contiguous q is `q`. The problem points into a's
// host copies of cu_seqlens.
template <class Problem>
Problem flash_problem(const AttentionArgs& a, const at::Tensor& q) {
  Problem p;
  p.dtype = q.scalar_type() == at::kBFloat16 ? kFlashBf16 : kFlashFp16;
  p.batch = uint32_t(a.batch), p.num_heads = uint32_t(a.heads), p.num_kv_heads = uint32_t(a.kv_heads);
  p.head_dim = uint32_t(a.head_dim), p.head_dim_v = uint32_t(a.head_dim_v);
  p.scale = float(a.scale), p.softcap = float(a.softcap);
  p.window_left = int32_t(a.window_left), p.window_right = int32_t(a.window_right);
  p.cu_seqlens_q = a.cu_seqlens_q_host.data_ptr<int32_t>(), p.cu_seqlens_k = a.cu_seqlens_k_host.data_ptr<int32_t>();
  return p;
}

}  // namespace ascend_attn
