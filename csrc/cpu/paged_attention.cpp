// CPU executor of paged_attention: the attention runner with K/V rows addressed through the block table, so pages
// are read in place (converted and packed tile by tile like any K/V), never gathered into a contiguous copy.
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

#include "common/paged_args.h"
#include "cpu/attention_runner.h"

namespace ascend_attn::cpu {

std::tuple<at::Tensor, at::Tensor> paged_attention_cpu(
    const at::Tensor& q,                            // [num_tokens, heads, head_dim]
    const at::Tensor& key_cache,                    // [num_blocks, block_size, kv_heads, head_dim]
    const at::Tensor& value_cache,                  // [num_blocks, block_size, kv_heads, head_dim_v]
    const at::Tensor& block_tables,                 // int32 [num_seqs, max_blocks_per_seq]
    const at::Tensor& context_lens,                 // int32 [num_seqs]
    const std::optional<at::Tensor>& cu_seqlens_q,  // int32 [num_seqs + 1], or None: one query per sequence
    std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [num_seqs, heads]
    bool return_lse) {
  const PagedArgs pa =
      check_paged_attention_args(q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q, softmax_scale,
                                 causal, window_size, softcap, alibi_slopes, return_lse);
  const AttentionArgs& a = pa.attn;
  const int64_t tokens = a.q.size(0);
  at::Tensor out = at::empty({tokens, a.heads, a.head_dim_v}, a.q.options());
  at::Tensor lse =
      at::empty(a.return_lse ? at::IntArrayRef{a.heads, tokens} : at::IntArrayRef{0}, a.q.options().dtype(at::kFloat));
  FlashParams p{};
  set_common_params(p, a.q, a.k, a.v, out, lse, a.scale, a.softcap, a.window_left, a.window_right, a.alibi_slopes);
  p.q_row_stride = a.q.stride(0);
  p.q_head_stride = a.q.stride(1);
  p.k_block_stride = a.k.stride(0);
  p.k_row_stride = a.k.stride(1);
  p.k_head_stride = a.k.stride(2);
  p.v_block_stride = a.v.stride(0);
  p.v_row_stride = a.v.stride(1);
  p.v_head_stride = a.v.stride(2);
  p.o_row_stride = out.stride(0);
  p.o_head_stride = out.stride(1);
  p.lse_head_stride = tokens;
  p.heads = static_cast<int32_t>(a.heads);
  p.kv_heads = static_cast<int32_t>(a.kv_heads);
  p.head_dim = static_cast<int32_t>(a.head_dim);
  p.head_dim_v = static_cast<int32_t>(a.head_dim_v);
  p.block_table = pa.block_tables.data_ptr<int32_t>();
  p.block_table_stride = pa.block_tables.stride(0);
  p.block_size = static_cast<int32_t>(pa.block_size);
  const int32_t* cu = pa.cu_seqlens_q.data_ptr<int32_t>();
  const int32_t* ctx = pa.context_lens.data_ptr<int32_t>();
  std::vector<SeqDesc> seqs(a.batch);
  for (int64_t s = 0; s < a.batch; ++s)
    seqs[s] = SeqDesc{cu[s] * p.q_row_stride, 0, 0, cu[s] * p.o_row_stride, cu[s], cu[s + 1] - cu[s], ctx[s]};
  run_attention(p, seqs, /*split_kv=*/true, out);
  return {out, lse};
}

TORCH_LIBRARY_IMPL(ascend_attn, CPU, m) { m.impl("paged_attention", &paged_attention_cpu); }

}  // namespace ascend_attn::cpu
