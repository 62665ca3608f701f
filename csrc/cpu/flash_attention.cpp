// CPU executor of flash_attention and flash_attention_varlen: validate, describe the sequences and their strides,
// and hand them to the shared attention runner.
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

#include "common/attention_args.h"
#include "cpu/attention_runner.h"

namespace ascend_attn::cpu {
namespace {

// Everything but the sequence descriptors: pointers, strides along the token axis `row` of q/k/v/out, options.
FlashParams make_params(const AttentionArgs& a, at::Tensor& out, at::Tensor& lse, int64_t row) {
  FlashParams p{};
  set_common_params(p, a.q, a.k, a.v, out, lse, a.scale, a.softcap, a.window_left, a.window_right, a.alibi_slopes);
  p.q_row_stride = a.q.stride(row);
  p.q_head_stride = a.q.stride(row + 1);
  p.k_row_stride = a.k.stride(row);
  p.k_head_stride = a.k.stride(row + 1);
  p.v_row_stride = a.v.stride(row);
  p.v_head_stride = a.v.stride(row + 1);
  p.o_row_stride = out.stride(row);
  p.o_head_stride = out.stride(row + 1);
  p.heads = static_cast<int32_t>(a.heads);
  p.kv_heads = static_cast<int32_t>(a.kv_heads);
  p.head_dim = static_cast<int32_t>(a.head_dim);
  p.head_dim_v = static_cast<int32_t>(a.head_dim_v);
  return p;
}

at::Tensor make_lse(const AttentionArgs& a, at::IntArrayRef shape) {
  return at::empty(a.return_lse ? shape : at::IntArrayRef{0}, a.q.options().dtype(at::kFloat));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> flash_attention_cpu(
    const at::Tensor& q,  // [batch, seqlen_q, heads, head_dim]
    const at::Tensor& k,  // [batch, seqlen_k, kv_heads, head_dim]
    const at::Tensor& v,  // [batch, seqlen_k, kv_heads, head_dim_v]
    std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [batch, heads]
    bool return_lse) {
  const AttentionArgs a =
      check_flash_attention_args(q, k, v, softmax_scale, causal, window_size, softcap, alibi_slopes, return_lse);
  at::Tensor out = at::empty({a.batch, a.seqlen_q, a.heads, a.head_dim_v}, a.q.options());
  at::Tensor lse = make_lse(a, {a.batch, a.heads, a.seqlen_q});
  FlashParams p = make_params(a, out, lse, 1);
  p.lse_head_stride = a.seqlen_q;
  std::vector<SeqDesc> seqs(a.batch);
  for (int64_t b = 0; b < a.batch; ++b) {
    seqs[b] = SeqDesc{b * a.q.stride(0),
                      b * a.k.stride(0),
                      b * a.v.stride(0),
                      b * out.stride(0),
                      b * a.heads * a.seqlen_q,
                      static_cast<int32_t>(a.seqlen_q),
                      static_cast<int32_t>(a.seqlen_k)};
  }
  run_attention(p, seqs, /*split_kv=*/true, out);
  return {out, lse};
}

std::tuple<at::Tensor, at::Tensor> flash_attention_varlen_cpu(
    const at::Tensor& q,             // [total_q, heads, head_dim]
    const at::Tensor& k,             // [total_k, kv_heads, head_dim]
    const at::Tensor& v,             // [total_k, kv_heads, head_dim_v]
    const at::Tensor& cu_seqlens_q,  // int32 [batch + 1]
    const at::Tensor& cu_seqlens_k,  // int32 [batch + 1]
    int64_t max_seqlen_q, int64_t max_seqlen_k, std::optional<double> softmax_scale, bool causal,
    at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [batch, heads]
    bool return_lse) {
  const AttentionArgs a =
      check_flash_attention_varlen_args(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale,
                                        causal, window_size, softcap, alibi_slopes, return_lse);
  const int64_t total_q = a.q.size(0);
  at::Tensor out = at::empty({total_q, a.heads, a.head_dim_v}, a.q.options());
  at::Tensor lse = make_lse(a, {a.heads, total_q});
  FlashParams p = make_params(a, out, lse, 0);
  p.lse_head_stride = total_q;
  const int32_t* cq = a.cu_seqlens_q.data_ptr<int32_t>();
  const int32_t* ck = a.cu_seqlens_k.data_ptr<int32_t>();
  std::vector<SeqDesc> seqs(a.batch);
  for (int64_t b = 0; b < a.batch; ++b) {
    seqs[b] = SeqDesc{cq[b] * a.q.stride(0), ck[b] * a.k.stride(0), ck[b] * a.v.stride(0), cq[b] * out.stride(0), cq[b],
                      cq[b + 1] - cq[b],     ck[b + 1] - ck[b]};
  }
  run_attention(p, seqs, /*split_kv=*/true, out);
  return {out, lse};
}

TORCH_LIBRARY_IMPL(ascend_attn, CPU, m) {
  m.impl("flash_attention", &flash_attention_cpu);
  m.impl("flash_attention_varlen", &flash_attention_varlen_cpu);
}

}  // namespace ascend_attn::cpu
