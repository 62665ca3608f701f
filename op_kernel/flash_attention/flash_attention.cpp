// Kernel entry of flash_attention (Atlas A2, mix AIC:AIV = 1:2). Tasks and options come from the tiling
// (csrc/tiling/flash_attention_tiling.cpp); the host flow is in csrc/common/flash_attention_launch.cpp.
#include "../common/copy_tiling.h"
#include "../common/kernel_entry.h"
#include "flash_attention_kernel.h"
#include "kernel_operator.h"
#include "lib/matmul_intf.h"

namespace {

template <typename T>
__aicore__ inline void Run(GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR cu_seqlens_q, GM_ADDR cu_seqlens_k, GM_ADDR out,
                           GM_ADDR lse, GM_ADDR workspace, const FlashAttentionTiling& tiling) {
  AscendC::TPipe pipe;
  ascend_attn_kernel::FlashAttentionKernel<T> op;
  // Vector-master: on the AIC this serves the AIVs' Matmul requests and returns.
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), op.mm_qk, &tiling.mm1, op.mm_pv, &tiling.mm2);
  op.Init(q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse, workspace, &tiling, &pipe);
  op.Process();
}

}  // namespace

// q [total_q, heads, d], k [total_k, kv_heads, d], v [total_k, kv_heads, dv] (fp16 or bf16), cu_seqlens_q/k int32
// [batch + 1], out [total_q, heads, dv], lse fp32 [heads, total_q], workspace (system + per-AIV slots), tiling.
ASCEND_ATTN_MIX_KERNEL void flash_attention(GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR cu_seqlens_q, GM_ADDR cu_seqlens_k,
                                            GM_ADDR out, GM_ADDR lse, GM_ADDR ASCEND_ATTN_SYS_WORKSPACE workspace,
                                            GM_ADDR tiling) {
  KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_MIX_AIC_1_2);
  FlashAttentionTiling t;
  ascend_attn_kernel::CopyTiling(&t, tiling);
  if (t.dtype == kFlashBf16) {
    Run<bfloat16_t>(q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse, workspace, t);
  } else {
    Run<half>(q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse, workspace, t);
  }
}
