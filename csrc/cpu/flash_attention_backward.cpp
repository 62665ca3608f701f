// CPU executor of flash_attention_backward and flash_attention_varlen_backward: validate, allocate the gradients,
// describe the sequences and their strides, and hand them to the backward runner.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <vector>

#include "common/attention_grad_args.h"
#include "cpu/attention_runner.h"
#include "cpu/backward_runner.h"

namespace ascend_attn::cpu {
namespace {

// The gradients and the fp32 buffers the runner fills. dq, dk, dv are contiguous in q's, k's and v's shapes; dq_acc
// is dq itself for fp32 inputs, else an fp32 tensor of its shape converted at the end.
struct Grads {
  at::Tensor dq, dk, dv, dq_acc, delta;
};

Grads make_grads(const AttentionGradArgs& b) {
  const AttentionArgs& a = b.attn;
  Grads g;
  g.dk = at::empty(a.k.sizes(), a.k.options());
  g.dv = at::empty(a.v.sizes(), a.v.options());
  g.dq_acc = at::zeros(a.q.sizes(), a.q.options().dtype(at::kFloat));
  g.dq = a.q.scalar_type() == at::kFloat ? g.dq_acc : at::Tensor();
  g.delta = at::empty(b.lse.sizes(), b.lse.options());
  return g;
}

// Everything but the sequence descriptors: pointers, strides along the token axis `row` of every tensor, options.
BackwardParams make_params(const AttentionGradArgs& b, Grads& g, int64_t row) {
  const AttentionArgs& a = b.attn;
  BackwardParams p{};
  p.dtype = elem_type(a.q.scalar_type());
  p.q = a.q.data_ptr();
  p.k = a.k.data_ptr();
  p.v = a.v.data_ptr();
  p.dout = b.dout.data_ptr();
  p.out = b.out.data_ptr();
  p.lse = b.lse.data_ptr<float>();
  p.dk = g.dk.data_ptr();
  p.dv = g.dv.data_ptr();
  p.q_row_stride = a.q.stride(row);
  p.q_head_stride = a.q.stride(row + 1);
  p.k_row_stride = a.k.stride(row);
  p.k_head_stride = a.k.stride(row + 1);
  p.v_row_stride = a.v.stride(row);
  p.v_head_stride = a.v.stride(row + 1);
  p.do_row_stride = b.dout.stride(row);
  p.do_head_stride = b.dout.stride(row + 1);
  p.o_row_stride = b.out.stride(row);
  p.o_head_stride = b.out.stride(row + 1);
  p.dk_row_stride = g.dk.stride(row);
  p.dk_head_stride = g.dk.stride(row + 1);
  p.dv_row_stride = g.dv.stride(row);
  p.dv_head_stride = g.dv.stride(row + 1);
  p.heads = static_cast<int32_t>(a.heads);
  p.kv_heads = static_cast<int32_t>(a.kv_heads);
  p.head_dim = static_cast<int32_t>(a.head_dim);
  p.head_dim_v = static_cast<int32_t>(a.head_dim_v);
  p.scale = static_cast<float>(a.scale);
  p.softcap = static_cast<float>(a.softcap);
  p.window_left = static_cast<int32_t>(a.window_left);
  p.window_right = static_cast<int32_t>(a.window_right);
  if (a.alibi_slopes.has_value()) {
    p.alibi = a.alibi_slopes->data_ptr<float>();
    p.alibi_seq_stride = a.alibi_slopes->dim() == 2 ? a.alibi_slopes->size(1) : 0;
  }
  return p;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> finish(Grads& g, const at::Tensor& q) {
  if (!g.dq.defined()) g.dq = g.dq_acc.to(q.scalar_type());
  return {g.dq, g.dk, g.dv};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attention_backward_cpu(
    const at::Tensor& dout,  // [batch, seqlen_q, heads, head_dim_v]
    const at::Tensor& q,     // [batch, seqlen_q, heads, head_dim]
    const at::Tensor& k,     // [batch, seqlen_k, kv_heads, head_dim]
    const at::Tensor& v,     // [batch, seqlen_k, kv_heads, head_dim_v]
    const at::Tensor& out,   // [batch, seqlen_q, heads, head_dim_v]
    const at::Tensor& lse,   // fp32 [batch, heads, seqlen_q]
    std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [batch, heads]
    bool deterministic) {
  const AttentionGradArgs b = check_flash_attention_backward_args(dout, q, k, v, out, lse, softmax_scale, causal,
                                                                  window_size, softcap, alibi_slopes, deterministic);
  const AttentionArgs& a = b.attn;
  Grads g = make_grads(b);
  BackwardParams p = make_params(b, g, 1);
  p.lse_head_stride = a.seqlen_q;
  std::vector<BackwardSeq> seqs(a.batch);
  for (int64_t s = 0; s < a.batch; ++s) {
    seqs[s] = BackwardSeq{s * a.q.stride(0),
                          s * a.k.stride(0),
                          s * a.v.stride(0),
                          s * b.dout.stride(0),
                          s * g.dk.stride(0),
                          s * g.dv.stride(0),
                          s * b.out.stride(0),
                          s * a.seqlen_q,
                          s * a.heads * a.seqlen_q,
                          static_cast<int32_t>(a.seqlen_q),
                          static_cast<int32_t>(a.seqlen_k)};
  }
  run_attention_backward(p, seqs, g.delta.data_ptr<float>(), g.dq_acc.data_ptr<float>(), a.heads * a.head_dim);
  return finish(g, a.q);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attention_varlen_backward_cpu(
    const at::Tensor& dout,          // [total_q, heads, head_dim_v]
    const at::Tensor& q,             // [total_q, heads, head_dim]
    const at::Tensor& k,             // [total_k, kv_heads, head_dim]
    const at::Tensor& v,             // [total_k, kv_heads, head_dim_v]
    const at::Tensor& out,           // [total_q, heads, head_dim_v]
    const at::Tensor& lse,           // fp32 [heads, total_q]
    const at::Tensor& cu_seqlens_q,  // int32 [batch + 1]
    const at::Tensor& cu_seqlens_k,  // int32 [batch + 1]
    int64_t max_seqlen_q, int64_t max_seqlen_k, std::optional<double> softmax_scale, bool causal,
    at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [batch, heads]
    bool deterministic) {
  const AttentionGradArgs b = check_flash_attention_varlen_backward_args(
      dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal,
      window_size, softcap, alibi_slopes, deterministic);
  const AttentionArgs& a = b.attn;
  Grads g = make_grads(b);
  BackwardParams p = make_params(b, g, 0);
  p.lse_head_stride = a.q.size(0);
  const int32_t* cq = a.cu_seqlens_q.data_ptr<int32_t>();
  const int32_t* ck = a.cu_seqlens_k.data_ptr<int32_t>();
  std::vector<BackwardSeq> seqs(a.batch);
  for (int64_t s = 0; s < a.batch; ++s) {
    seqs[s] = BackwardSeq{cq[s] * a.q.stride(0),
                          ck[s] * a.k.stride(0),
                          ck[s] * a.v.stride(0),
                          cq[s] * b.dout.stride(0),
                          ck[s] * g.dk.stride(0),
                          ck[s] * g.dv.stride(0),
                          cq[s] * b.out.stride(0),
                          cq[s],
                          cq[s],
                          cq[s + 1] - cq[s],
                          ck[s + 1] - ck[s]};
  }
  run_attention_backward(p, seqs, g.delta.data_ptr<float>(), g.dq_acc.data_ptr<float>(), a.heads * a.head_dim);
  return finish(g, a.q);
}

TORCH_LIBRARY_IMPL(ascend_attn, CPU, m) {
  m.impl("flash_attention_backward", &flash_attention_backward_cpu);
  m.impl("flash_attention_varlen_backward", &flash_attention_varlen_backward_cpu);
}

}  // namespace ascend_attn::cpu
