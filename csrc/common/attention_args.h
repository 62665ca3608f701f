// Validation of the attention ops' arguments, written once for every executor (CPU, NPU, simulator).
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

namespace ascend_attn {

// Largest head_dim (qk or v) any executor accepts.
constexpr int64_t kMaxHeadDim = 512;

// Validated, normalized arguments of flash_attention / flash_attention_varlen.
struct AttentionArgs {
  at::Tensor q;  // [batch, seqlen_q, heads, head_dim] or [total_q, heads, head_dim]; last dim contiguous
  at::Tensor k;  // [batch, seqlen_k, kv_heads, head_dim] or [total_k, kv_heads, head_dim]
  at::Tensor v;  // [batch, seqlen_k, kv_heads, head_dim_v] or [total_k, kv_heads, head_dim_v]
  std::optional<at::Tensor> alibi_slopes;           // fp32 contiguous [heads] or [batch, heads]
  at::Tensor cu_seqlens_q, cu_seqlens_k;            // varlen only: int32 contiguous [batch + 1]
  at::Tensor cu_seqlens_q_host, cu_seqlens_k_host;  // the same on the host (read once; the same tensors on CPU)
  bool varlen = false;
  int64_t batch = 0, heads = 0, kv_heads = 0, head_dim = 0, head_dim_v = 0;
  int64_t seqlen_q = 0, seqlen_k = 0;           // BSND: the fixed lengths; varlen: max_seqlen_q / max_seqlen_k
  double scale = 0.0;                           // softmax_scale, defaulted to 1/sqrt(head_dim)
  double softcap = 0.0;                         // 0 = off
  int64_t window_left = -1, window_right = -1;  // -1 = unbounded; causal is folded in as window_right = 0
  bool return_lse = false;
};

// Validates and normalizes the options shared by every attention op (window, causal, scale, softcap, alibi) into
// `a`; needs a.q, a.heads, a.batch and a.head_dim set.
void check_attention_options(AttentionArgs& a, std::optional<double> softmax_scale, bool causal,
                             at::IntArrayRef window_size, double softcap, const std::optional<at::Tensor>& alibi_slopes,
                             bool return_lse);

AttentionArgs check_flash_attention_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size,
                                         double softcap, const std::optional<at::Tensor>& alibi_slopes,
                                         bool return_lse);

AttentionArgs check_flash_attention_varlen_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                                                int64_t max_seqlen_q, int64_t max_seqlen_k,
                                                std::optional<double> softmax_scale, bool causal,
                                                at::IntArrayRef window_size, double softcap,
                                                const std::optional<at::Tensor>& alibi_slopes, bool return_lse);

}  // namespace ascend_attn
