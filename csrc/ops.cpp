// Every ascend_attn operator schema, declared once. Backends (csrc/cpu, csrc/npu) only add implementations.
#include <Python.h>
#include <torch/library.h>

#include "cpu/cpu_isa.h"

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
  // Instruction set the CPU kernels use now (avx512 | avx2 | portable); ASCEND_ATTN_CPU_ISA overrides it.
  m.def("cpu_isa() -> str", &ascend_attn::cpu::cpu_isa);
}
