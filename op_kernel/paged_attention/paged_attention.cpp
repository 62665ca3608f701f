// Kernel entry of paged_attention (Atlas A2, mix AIC:AIV = 1:2). Items, splits and options come from the tiling
// (csrc/tiling/paged_attention_tiling.cpp); the host flow is in csrc/common/paged_attention_launch.cpp.
#include "../common/copy_tiling.h"
#include "../common/kernel_entry.h"
#include "kernel_operator.h"
#include "lib/matmul_intf.h"
#include "paged_attention_kernel.h"

namespace {

template <typename T>
__aicore__ inline void RunPaged(GM_ADDR q, GM_ADDR key_cache, GM_ADDR value_cache, GM_ADDR block_tables,
                                GM_ADDR context_lens, GM_ADDR cu_seqlens_q, GM_ADDR out, GM_ADDR lse, GM_ADDR workspace,
                                const PagedAttentionTiling& tiling) {
  AscendC::TPipe pipe;
  ascend_attn_kernel::PagedAttentionKernel<T> op;
  // Vector-master: on the AIC this serves the AIVs' Matmul requests and returns.
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), op.mm_qk, &tiling.mm1, op.mm_pv, &tiling.mm2);
  op.Init(q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q, out, lse, workspace, &tiling, &pipe);
  op.Process();
}

}  // namespace

// q [num_tokens, heads, d], key_cache [num_blocks, block_size, kv_heads, d], value_cache [..., dv] (fp16 or bf16),
// block_tables int32 [num_seqs, max_blocks_per_seq], context_lens int32 [num_seqs], cu_seqlens_q int32
// [num_seqs + 1], out [num_tokens, heads, dv], lse fp32 [heads, num_tokens], workspace, tiling.
ASCEND_ATTN_MIX_KERNEL void paged_attention(GM_ADDR q, GM_ADDR key_cache, GM_ADDR value_cache, GM_ADDR block_tables,
                                            GM_ADDR context_lens, GM_ADDR cu_seqlens_q, GM_ADDR out, GM_ADDR lse,
                                            GM_ADDR ASCEND_ATTN_SYS_WORKSPACE workspace, GM_ADDR tiling) {
  KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_MIX_AIC_1_2);
  PagedAttentionTiling t;
  ascend_attn_kernel::CopyTiling(&t, tiling);
  if (t.dtype == kPagedBf16) {
    RunPaged<bfloat16_t>(q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q, out, lse, workspace, t);
  } else {
    RunPaged<half>(q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q, out, lse, workspace, t);
  }
}
