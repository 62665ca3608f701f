// Kernel entry of flash_attention_grad, the backward of flash_attention (Atlas A2, mix AIC:AIV = 1:2). Tasks and
// options come from the tiling (csrc/tiling/flash_attention_grad_tiling.cpp); the host flow is in
// csrc/common/flash_attention_grad_launch.cpp.
#include "../common/copy_tiling.h"
#include "../common/kernel_entry.h"
#include "flash_attention_grad_kernel.h"
#include "kernel_operator.h"
#include "lib/matmul_intf.h"

namespace {

template <typename T>
__aicore__ inline void RunGrad(GM_ADDR dout, GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR out, GM_ADDR lse,
                               GM_ADDR cu_seqlens_q, GM_ADDR cu_seqlens_k, GM_ADDR dq, GM_ADDR dk, GM_ADDR dv,
                               GM_ADDR workspace, const FlashAttentionGradTiling& tiling) {
  AscendC::TPipe pipe;
  ascend_attn_kernel::FlashAttentionGradKernel<T> op;
  // Vector-master: on the AIC this serves the AIVs' Matmul requests and returns.
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), op.mm_s, &tiling.mm_s, op.mm_t, &tiling.mm_t, op.mm_dq, &tiling.mm_dq);
  op.Init(dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, dq, dk, dv, workspace, &tiling, &pipe);
  op.Process();
}

}  // namespace

// dout, out [total_q, heads, dv], q [total_q, heads, d], k [total_k, kv_heads, d], v [total_k, kv_heads, dv]
// (fp16 or bf16), lse fp32 [heads, total_q], cu_seqlens_q/k int32 [batch + 1]; dq, dk, dv as q, k, v; workspace
// (system + D, the dQ accumulator and per-AIV slots), tiling.
ASCEND_ATTN_MIX_KERNEL void flash_attention_grad(GM_ADDR dout, GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR out,
                                                 GM_ADDR lse, GM_ADDR cu_seqlens_q, GM_ADDR cu_seqlens_k, GM_ADDR dq,
                                                 GM_ADDR dk, GM_ADDR dv, GM_ADDR ASCEND_ATTN_SYS_WORKSPACE workspace,
                                                 GM_ADDR tiling) {
  KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_MIX_AIC_1_2);
  FlashAttentionGradTiling t;
  ascend_attn_kernel::CopyTiling(&t, tiling);
  if (t.dtype == kFlashBf16) {
    RunGrad<bfloat16_t>(dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, dq, dk, dv, workspace, t);
  } else {
    RunGrad<half>(dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, dq, dk, dv, workspace, t);
  }
}
