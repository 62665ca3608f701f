// Validation of the backward attention ops' arguments (flash_attention_backward, flash_attention_varlen_backward),
// written once for every executor: the forward's checks of q, k, v and the options, plus dout, out and lse.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

#include "common/attention_args.h"

namespace ascend_attn {

struct AttentionGradArgs {
  AttentionArgs attn;  // q, k, v, lengths and options as the forward validated them
  at::Tensor dout;     // the gradient of out: out's shape and q's dtype, last dim contiguous
  at::Tensor out;      // the forward's output: [batch, seqlen_q, heads, head_dim_v] or [total_q, heads, head_dim_v]
  at::Tensor lse;      // the forward's lse, fp32 contiguous: [batch, heads, seqlen_q] or [heads, total_q]
  bool deterministic = false;
};

AttentionGradArgs check_flash_attention_backward_args(const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k,
                                                      const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
                                                      std::optional<double> softmax_scale, bool causal,
                                                      at::IntArrayRef window_size, double softcap,
                                                      const std::optional<at::Tensor>& alibi_slopes,
                                                      bool deterministic);

AttentionGradArgs check_flash_attention_varlen_backward_args(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
    const at::Tensor& lse, const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k, int64_t max_seqlen_q,
    int64_t max_seqlen_k, std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes, bool deterministic);

}  // namespace ascend_attn
