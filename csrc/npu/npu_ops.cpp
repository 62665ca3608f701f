// TORCH_LIBRARY_IMPL(ascend_attn, PrivateUse1): every op of csrc/ops.cpp on NPU tensors, through the host flows
// shared with the simulator (validate -> tiling -> workspace -> launch). The tilings balance cores by sequence
// length, so cu_seqlens / context_lens are read on the host: one small device-to-host copy per call.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>

#include "../common/attention_grad_args.h"
#include "../common/checks.h"
#include "../common/flash_attention_grad_launch.h"
#include "../common/flash_attention_launch.h"
#include "../common/paged_attention_launch.h"
#include "npu_device.h"

namespace ascend_attn::npu {

namespace {

void check_npu_dtype(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16, name,
              ": the Ascend C kernels take float16 or bfloat16 on NPU, got ", t.scalar_type());
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> flash_attention_varlen_npu(
    const at::Tensor& q,             // [total_q, heads, head_dim]
    const at::Tensor& k,             // [total_k, kv_heads, head_dim]
    const at::Tensor& v,             // [total_k, kv_heads, head_dim_v]
    const at::Tensor& cu_seqlens_q,  // int32 [batch + 1]
    const at::Tensor& cu_seqlens_k,  // int32 [batch + 1]
    int64_t max_seqlen_q, int64_t max_seqlen_k, std::optional<double> softmax_scale, bool causal,
    at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [batch, heads]
    bool return_lse) {
  check_npu_dtype(q, "q");
  const AttentionArgs a =
      check_flash_attention_varlen_args(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale,
                                        causal, window_size, softcap, alibi_slopes, return_lse);
  const KernelLaunch r = flash_attention_varlen_launch(a, current_device("flash_attention_varlen"));
  return {r.out, r.lse};
}

// BSND runs as varlen with equal lengths: [batch * seqlen, heads, head_dim] views and arithmetic cu_seqlens.
std::tuple<at::Tensor, at::Tensor> flash_attention_npu(
    const at::Tensor& q,  // [batch, seqlen_q, heads, head_dim]
    const at::Tensor& k,  // [batch, seqlen_k, kv_heads, head_dim]
    const at::Tensor& v,  // [batch, seqlen_k, kv_heads, head_dim_v]
    std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [batch, heads]
    bool return_lse) {
  check_npu_dtype(q, "q");
  const AttentionArgs a =
      check_flash_attention_args(q, k, v, softmax_scale, causal, window_size, softcap, alibi_slopes, return_lse);
  // The packed views are indexed by int32 cu_seqlens: their token counts must fit.
  CHECK_INT32_SIZE(a.batch * a.seqlen_q, "batch * seqlen_q (BSND runs as packed varlen on NPU)");
  CHECK_INT32_SIZE(a.batch * a.seqlen_k, "batch * seqlen_k (BSND runs as packed varlen on NPU)");
  const auto ints = q.options().dtype(at::kInt);
  const at::Tensor cu_q = at::arange(a.batch + 1, ints) * a.seqlen_q;
  const at::Tensor cu_k = at::arange(a.batch + 1, ints) * a.seqlen_k;
  auto flat = [](const at::Tensor& t) { return t.reshape({t.size(0) * t.size(1), t.size(2), t.size(3)}); };
  auto [out, lse] = flash_attention_varlen_npu(flat(a.q), flat(a.k), flat(a.v), cu_q.narrow(0, 0, a.batch + 1),
                                               cu_k.narrow(0, 0, a.batch + 1), a.seqlen_q, a.seqlen_k, softmax_scale,
                                               causal, window_size, softcap, alibi_slopes, return_lse);
  out = out.view({a.batch, a.seqlen_q, a.heads, a.head_dim_v});
  if (return_lse) lse = lse.view({a.heads, a.batch, a.seqlen_q}).permute({1, 0, 2}).contiguous();
  return {out, lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attention_varlen_backward_npu(
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
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [batch, heads]: rejected by the kernel
    bool deterministic) {
  check_npu_dtype(q, "q");
  const AttentionGradArgs g = check_flash_attention_varlen_backward_args(
      dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal,
      window_size, softcap, alibi_slopes, deterministic);
  const GradLaunch r = flash_attention_varlen_backward_launch(g, current_device("flash_attention_varlen_backward"));
  return {r.dq, r.dk, r.dv};
}

// BSND runs as varlen with equal lengths, like the forward; lse [batch, heads, seqlen_q] becomes [heads, tokens].
std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attention_backward_npu(
    const at::Tensor& dout,  // [batch, seqlen_q, heads, head_dim_v]
    const at::Tensor& q,     // [batch, seqlen_q, heads, head_dim]
    const at::Tensor& k,     // [batch, seqlen_k, kv_heads, head_dim]
    const at::Tensor& v,     // [batch, seqlen_k, kv_heads, head_dim_v]
    const at::Tensor& out,   // [batch, seqlen_q, heads, head_dim_v]
    const at::Tensor& lse,   // fp32 [batch, heads, seqlen_q]
    std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [batch, heads]: rejected by the kernel
    bool deterministic) {
  check_npu_dtype(q, "q");
  const AttentionGradArgs g = check_flash_attention_backward_args(dout, q, k, v, out, lse, softmax_scale, causal,
                                                                  window_size, softcap, alibi_slopes, deterministic);
  const AttentionArgs& a = g.attn;
  // The packed views are indexed by int32 cu_seqlens: their token counts must fit.
  CHECK_INT32_SIZE(a.batch * a.seqlen_q, "batch * seqlen_q (BSND runs as packed varlen on NPU)");
  CHECK_INT32_SIZE(a.batch * a.seqlen_k, "batch * seqlen_k (BSND runs as packed varlen on NPU)");
  const auto ints = q.options().dtype(at::kInt);
  const at::Tensor cu_q = at::arange(a.batch + 1, ints) * a.seqlen_q;
  const at::Tensor cu_k = at::arange(a.batch + 1, ints) * a.seqlen_k;
  auto flat = [](const at::Tensor& t) { return t.reshape({t.size(0) * t.size(1), t.size(2), t.size(3)}); };
  const at::Tensor lse_packed = g.lse.permute({1, 0, 2}).reshape({a.heads, a.batch * a.seqlen_q});
  auto [dq, dk, dv] = flash_attention_varlen_backward_npu(flat(g.dout), flat(a.q), flat(a.k), flat(a.v), flat(g.out),
                                                          lse_packed, cu_q, cu_k, a.seqlen_q, a.seqlen_k, softmax_scale,
                                                          causal, window_size, softcap, alibi_slopes, deterministic);
  return {dq.view(q.sizes()), dk.view(k.sizes()), dv.view(v.sizes())};
}

std::tuple<at::Tensor, at::Tensor> paged_attention_npu(
    const at::Tensor& q,                            // [num_tokens, heads, head_dim]
    const at::Tensor& key_cache,                    // [num_blocks, block_size, kv_heads, head_dim]
    const at::Tensor& value_cache,                  // [num_blocks, block_size, kv_heads, head_dim_v]
    const at::Tensor& block_tables,                 // int32 [num_seqs, max_blocks_per_seq]
    const at::Tensor& context_lens,                 // int32 [num_seqs]
    const std::optional<at::Tensor>& cu_seqlens_q,  // int32 [num_seqs + 1], or None: one query per sequence
    std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [num_seqs, heads]
    bool return_lse) {
  check_npu_dtype(q, "q");
  const PagedArgs p = check_paged_attention_args(q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q,
                                                 softmax_scale, causal, window_size, softcap, alibi_slopes, return_lse);
  // The block indices the kernel reads were range-checked on the host above; the kernel also skips (and flags in
  // its workspace) any index outside the cache instead of reading it.
  KernelLaunch r = paged_attention_launch(p, current_device("paged_attention"));
  return {r.out, r.lse};
}

void reshape_and_cache_npu(const at::Tensor& key,           // [num_tokens, kv_heads, head_dim]
                           const at::Tensor& value,         // [num_tokens, kv_heads, head_dim_v]
                           at::Tensor& key_cache,           // [num_blocks, block_size, kv_heads, head_dim]
                           at::Tensor& value_cache,         // [num_blocks, block_size, kv_heads, head_dim_v]
                           const at::Tensor& slot_mapping)  // int32/int64 [num_tokens]; < 0 = padding, skipped
{
  check_reshape_and_cache_args(key, value, key_cache, value_cache, slot_mapping);
  reshape_and_cache_launch(key, value, key_cache, value_cache, slot_mapping, current_device("reshape_and_cache"));
}

// No Ascend C kernel: a few ATen ops (torch_npu kernels) do the exact merge, -inf rows included.
std::tuple<at::Tensor, at::Tensor> merge_attn_states_npu(const at::Tensor& out_a,  // [tokens, heads, head_dim]
                                                         const at::Tensor& lse_a,  // fp32 [heads, tokens]
                                                         const at::Tensor& out_b,  // [tokens, heads, head_dim]
                                                         const at::Tensor& lse_b)  // fp32 [heads, tokens]
{
  check_merge_attn_states_args(out_a, lse_a, out_b, lse_b);
  // flash-attn 2 and vLLM mark a side that saw no key with lse +inf, this library with -inf: both mean "empty".
  auto empty_side = [](const at::Tensor& lse) { return at::where(at::isposinf(lse), -INFINITY, lse); };
  const at::Tensor lse_a_ = empty_side(lse_a), lse_b_ = empty_side(lse_b);
  const at::Tensor m = at::maximum(lse_a_, lse_b_);
  const at::Tensor shift = at::where(at::isinf(m), at::zeros_like(m), m);  // both -inf: weights stay 0
  const at::Tensor wa = at::exp(lse_a_ - shift), wb = at::exp(lse_b_ - shift);
  const at::Tensor total = wa + wb;
  const at::Tensor lse = at::where(total > 0, at::log(total) + shift, m);
  const at::Tensor denom = at::where(total > 0, total, at::ones_like(total));
  auto per_row = [](const at::Tensor& w) { return w.t().unsqueeze(-1); };  // [heads, tokens] -> [tokens, heads, 1]
  const at::Tensor out =
      (out_a.to(at::kFloat) * per_row(wa / denom) + out_b.to(at::kFloat) * per_row(wb / denom)).to(out_a.scalar_type());
  return {out, lse};
}

TORCH_LIBRARY_IMPL(ascend_attn, PrivateUse1, m) {
  m.impl("flash_attention", &flash_attention_npu);
  m.impl("flash_attention_varlen", &flash_attention_varlen_npu);
  m.impl("flash_attention_backward", &flash_attention_backward_npu);
  m.impl("flash_attention_varlen_backward", &flash_attention_varlen_backward_npu);
  m.impl("paged_attention", &paged_attention_npu);
  m.impl("reshape_and_cache", &reshape_and_cache_npu);
  m.impl("merge_attn_states", &merge_attn_states_npu);
}

}  // namespace ascend_attn::npu
