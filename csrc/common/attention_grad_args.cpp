#include "common/attention_grad_args.h"

#include <c10/util/accumulate.h>

#include "common/checks.h"

namespace ascend_attn {
namespace {

// dout, out and lse against the validated forward arguments; `out_shape` and `lse_shape` are what the forward
// returns for them (an empty lse means the forward ran without return_lse, which the backward cannot do without).
void check_grad_tensors(AttentionGradArgs& g, const at::Tensor& dout, const at::Tensor& out, const at::Tensor& lse,
                        at::IntArrayRef out_shape, at::IntArrayRef lse_shape, const char* lse_layout) {
  const at::Tensor& q = g.attn.q;
  TORCH_CHECK(dout.sizes() == out_shape, "dout must have the forward output's shape ", out_shape,
              " (q's tokens and heads, v's head_dim), got ", dout.sizes());
  CHECK_SAME_DTYPE(dout, q);
  CHECK_SAME_DEVICE(dout, q);
  TORCH_CHECK(out.sizes() == out_shape, "out must have the forward output's shape ", out_shape,
              " (q's tokens and heads, v's head_dim), got ", out.sizes());
  CHECK_SAME_DTYPE(out, q);
  CHECK_SAME_DEVICE(out, q);
  const int64_t expected = c10::multiply_integers(lse_shape);
  TORCH_CHECK(lse.numel() > 0 || expected == 0,
              "lse is empty: the backward needs the forward's log-sum-exp, so run the forward with return_lse=True "
              "and pass its lse ",
              lse_layout, " = ", lse_shape);
  TORCH_CHECK(lse.scalar_type() == at::kFloat, "lse must be float32 (as the forward returns it), got ",
              lse.scalar_type());
  TORCH_CHECK(lse.sizes() == lse_shape, "lse must have shape ", lse_layout, " = ", lse_shape, ", got ", lse.sizes());
  CHECK_SAME_DEVICE(lse, q);
  g.dout = dout.stride(-1) == 1 ? dout : dout.contiguous();
  g.out = out.stride(-1) == 1 ? out : out.contiguous();
  g.lse = lse.contiguous();
}

}  // namespace

AttentionGradArgs check_flash_attention_backward_args(const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k,
                                                      const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
                                                      std::optional<double> softmax_scale, bool causal,
                                                      at::IntArrayRef window_size, double softcap,
                                                      const std::optional<at::Tensor>& alibi_slopes,
                                                      bool deterministic) {
  AttentionGradArgs g;
  g.attn = check_flash_attention_args(q, k, v, softmax_scale, causal, window_size, softcap, alibi_slopes, false);
  g.deterministic = deterministic;
  const AttentionArgs& a = g.attn;
  check_grad_tensors(g, dout, out, lse, {a.batch, a.seqlen_q, a.heads, a.head_dim_v}, {a.batch, a.heads, a.seqlen_q},
                     "[batch, heads, seqlen_q]");
  return g;
}

AttentionGradArgs check_flash_attention_varlen_backward_args(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
    const at::Tensor& lse, const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k, int64_t max_seqlen_q,
    int64_t max_seqlen_k, std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes, bool deterministic) {
  AttentionGradArgs g;
  g.attn = check_flash_attention_varlen_args(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                                             softmax_scale, causal, window_size, softcap, alibi_slopes, false);
  g.deterministic = deterministic;
  const AttentionArgs& a = g.attn;
  const int64_t total_q = q.size(0);
  check_grad_tensors(g, dout, out, lse, {total_q, a.heads, a.head_dim_v}, {a.heads, total_q}, "[heads, total_q]");
  return g;
}

}  // namespace ascend_attn
