// Every ascend_attn operator schema, declared once. Backends (csrc/cpu, csrc/npu) only add implementations.
#include <Python.h>
#include <torch/library.h>

#include "cpu/cpu_isa.h"
#include "cpu/scratch.h"

// ascend_attn._C is a load-only module: importing it runs the registrations below and the ones in the backends.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(ascend_attn, m) {
  // Fixed-length batch, BSND: q [batch, seqlen_q, heads, head_dim], k [batch, seqlen_k, kv_heads, head_dim],
  // v [batch, seqlen_k, kv_heads, head_dim_v] -> out [batch, seqlen_q, heads, head_dim_v],
  // lse fp32 [batch, heads, seqlen_q] (empty unless return_lse).
  m.def(
      "flash_attention(Tensor q, Tensor k, Tensor v, float? softmax_scale=None, bool causal=False, "
      "int[2] window_size=[-1, -1], float softcap=0.0, Tensor? alibi_slopes=None, bool return_lse=False) "
      "-> (Tensor out, Tensor lse)");
  // Packed varlen, TND: q [total_q, heads, head_dim], k [total_k, kv_heads, head_dim],
  // v [total_k, kv_heads, head_dim_v], cu_seqlens_q/k int32 [batch + 1] -> out [total_q, heads, head_dim_v],
  // lse fp32 [heads, total_q] (empty unless return_lse).
  m.def(
      "flash_attention_varlen(Tensor q, Tensor k, Tensor v, Tensor cu_seqlens_q, Tensor cu_seqlens_k, "
      "int max_seqlen_q, int max_seqlen_k, float? softmax_scale=None, bool causal=False, "
      "int[2] window_size=[-1, -1], float softcap=0.0, Tensor? alibi_slopes=None, bool return_lse=False) "
      "-> (Tensor out, Tensor lse)");
  // Gradients of flash_attention (FlashAttention-2: P recomputed from q, k and lse, never stored). dout and out
  // [batch, seqlen_q, heads, head_dim_v] in q's dtype, lse fp32 [batch, heads, seqlen_q] as the forward returned it
  // with return_lse=True; options as the forward's. -> dq, dk, dv of q's, k's and v's shapes and dtype.
  // deterministic: bit-identical gradients run to run (the CPU executor always is).
  m.def(
      "flash_attention_backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, "
      "float? softmax_scale=None, bool causal=False, int[2] window_size=[-1, -1], float softcap=0.0, "
      "Tensor? alibi_slopes=None, bool deterministic=False) -> (Tensor dq, Tensor dk, Tensor dv)");
  // Gradients of flash_attention_varlen: dout and out [total_q, heads, head_dim_v], lse fp32 [heads, total_q];
  // the rest as flash_attention_varlen and flash_attention_backward.
  m.def(
      "flash_attention_varlen_backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, "
      "Tensor cu_seqlens_q, Tensor cu_seqlens_k, int max_seqlen_q, int max_seqlen_k, float? softmax_scale=None, "
      "bool causal=False, int[2] window_size=[-1, -1], float softcap=0.0, Tensor? alibi_slopes=None, "
      "bool deterministic=False) -> (Tensor dq, Tensor dk, Tensor dv)");
  // Writes new K/V rows into the paged caches: key [num_tokens, kv_heads, head_dim], value [num_tokens, kv_heads,
  // head_dim_v], caches [num_blocks, block_size, kv_heads, head_dim(_v)], slot_mapping int32/int64 [num_tokens]
  // (slot = block * block_size + offset; negative = padding token, skipped).
  m.def(
      "reshape_and_cache(Tensor key, Tensor value, Tensor(a!) key_cache, Tensor(b!) value_cache, Tensor slot_mapping) "
      "-> ()");
  // Attention of packed queries q [num_tokens, heads, head_dim] over a paged cache. block_tables int32
  // [num_seqs, max_blocks_per_seq], context_lens int32 [num_seqs] (keys per sequence, including this step's tokens),
  // cu_seqlens_q int32 [num_seqs + 1] (None: one query per sequence); a sequence's queries are its last positions.
  // -> out [num_tokens, heads, head_dim_v], lse fp32 [heads, num_tokens] (empty unless return_lse).
  m.def(
      "paged_attention(Tensor q, Tensor key_cache, Tensor value_cache, Tensor block_tables, Tensor context_lens, *, "
      "Tensor? cu_seqlens_q=None, float? softmax_scale=None, bool causal=True, int[2] window_size=[-1, -1], "
      "float softcap=0.0, Tensor? alibi_slopes=None, bool return_lse=False) -> (Tensor out, Tensor lse)");
  // Combines two partial attention results over disjoint key sets: out_* [tokens, heads, head_dim],
  // lse_* fp32 [heads, tokens] -> (out, lse) of the same shapes.
  m.def("merge_attn_states(Tensor out_a, Tensor lse_a, Tensor out_b, Tensor lse_b) -> (Tensor out, Tensor lse)");
  // Instruction set the CPU kernels use now (avx512 | avx2 | portable); ASCEND_ATTN_CPU_ISA overrides it.
  m.def("cpu_isa() -> str", &ascend_attn::cpu::cpu_isa);
  // Bytes of scratch the CPU kernels' threads hold between calls (outside torch's allocator and its profiler).
  m.def("cpu_scratch_bytes() -> int", &ascend_attn::cpu::scratch_bytes);
}
