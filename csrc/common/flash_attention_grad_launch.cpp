#include "flash_attention_grad_launch.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>

#include "../tiling/flash_attention_grad_tiling.h"
#include "flash_problem.h"

namespace ascend_attn {

GradLaunch flash_attention_varlen_backward_launch(const AttentionGradArgs& g, const KernelDevice& device) {
  // 1. Validate what the Ascend C kernel adds to the op contract (the forward kernel's limits).
  const AttentionArgs& a = g.attn;
  TORCH_CHECK(a.varlen, "the Ascend C flash_attention_backward kernel takes packed varlen (TND) input");
  TORCH_CHECK(a.q.scalar_type() == at::kHalf || a.q.scalar_type() == at::kBFloat16,
              "q: the Ascend C flash_attention_backward kernel takes float16 or bfloat16, got ", a.q.scalar_type());
  TORCH_CHECK(!a.alibi_slopes.has_value(),
              "alibi_slopes: not supported by the Ascend C flash_attention_backward kernel (nor by its forward)");
  const at::Tensor q = a.q.contiguous(), k = a.k.contiguous(), v = a.v.contiguous();
  const at::Tensor dout = g.dout.contiguous(), out = g.out.contiguous(), lse = g.lse;

  // 2. Tiling.
  FlashAttentionGradProblem p = flash_problem<FlashAttentionGradProblem>(a, q);
  p.deterministic = g.deterministic;
  const FlashAttentionGradPlan plan =
      plan_or_error([&] { return plan_flash_attention_grad(p, device.core_num, device.sys_workspace_bytes); });

  GradLaunch r;
  r.block_dim = plan.block_dim;
  if (plan.block_dim == 0) {  // no query or no key: nothing reaches any gradient
    r.dq = at::zeros_like(q), r.dk = at::zeros_like(k), r.dv = at::zeros_like(v);
    return r;
  }
  r.dq = at::empty_like(q), r.dk = at::empty_like(k), r.dv = at::empty_like(v);

  // 3. Workspace and the tiling in device memory.
  at::Tensor workspace = at::empty({int64_t(plan.workspace_bytes)}, q.options().dtype(at::kByte));
  const at::Tensor tiling = tiling_on_device(plan.tiling, q.device());
  const at::Tensor cu_q = a.cu_seqlens_q, cu_k = a.cu_seqlens_k, dq = r.dq, dk = r.dk, dv = r.dv;

  // 4. Launch.
  const uint32_t block_dim = plan.block_dim;
  device.enqueue([=]() {
    launch_note_buffer(dout.data_ptr(), dout.nbytes(), "dout", BufferRole::kInput);
    launch_note_buffer(q.data_ptr(), q.nbytes(), "q", BufferRole::kInput);
    launch_note_buffer(k.data_ptr(), k.nbytes(), "k", BufferRole::kInput);
    launch_note_buffer(v.data_ptr(), v.nbytes(), "v", BufferRole::kInput);
    launch_note_buffer(out.data_ptr(), out.nbytes(), "out", BufferRole::kInput);
    launch_note_buffer(lse.data_ptr(), lse.nbytes(), "lse", BufferRole::kInput);
    launch_note_buffer(cu_q.data_ptr(), cu_q.nbytes(), "cu_seqlens_q", BufferRole::kInput);
    launch_note_buffer(cu_k.data_ptr(), cu_k.nbytes(), "cu_seqlens_k", BufferRole::kInput);
    launch_note_buffer(dq.data_ptr(), dq.nbytes(), "dq", BufferRole::kOutput);
    launch_note_buffer(dk.data_ptr(), dk.nbytes(), "dk", BufferRole::kOutput);
    launch_note_buffer(dv.data_ptr(), dv.nbytes(), "dv", BufferRole::kOutput);
    note_workspace(workspace, device.sys_workspace_bytes);
    launch_note_buffer(tiling.data_ptr(), tiling.nbytes(), "tiling", BufferRole::kInput);
    launch_flash_attention_grad(block_dim, device.stream, bytes_of(dout), bytes_of(q), bytes_of(k), bytes_of(v),
                                bytes_of(out), bytes_of(lse), bytes_of(cu_q), bytes_of(cu_k), bytes_of(dq),
                                bytes_of(dk), bytes_of(dv), bytes_of(workspace), bytes_of(tiling));
  });
  return r;
}

}  // namespace ascend_attn
