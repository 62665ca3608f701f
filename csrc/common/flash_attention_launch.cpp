#include "flash_attention_launch.h"

#include <ATen/ops/empty.h>

#include "flash_problem.h"

namespace ascend_attn {

KernelLaunch flash_attention_varlen_launch(const AttentionArgs& a, const KernelDevice& device) {
  // 1. Validate what the Ascend C kernel adds to the op contract.
  TORCH_CHECK(a.varlen, "the Ascend C flash_attention kernel takes packed varlen (TND) input");
  TORCH_CHECK(a.q.scalar_type() == at::kHalf || a.q.scalar_type() == at::kBFloat16,
              "q: the Ascend C flash_attention kernel takes float16 or bfloat16, got ", a.q.scalar_type());
  TORCH_CHECK(!a.alibi_slopes.has_value(), "alibi_slopes: not supported by the Ascend C flash_attention kernel");
  const at::Tensor q = a.q.contiguous(), k = a.k.contiguous(), v = a.v.contiguous();

  // 2. Tiling.
  FlashAttentionProblem p = flash_problem<FlashAttentionProblem>(a, q);
  p.return_lse = a.return_lse;
  const FlashAttentionPlan plan =
      plan_or_error([&] { return plan_flash_attention(p, device.core_num, device.sys_workspace_bytes); });

  KernelLaunch r;
  const int64_t total_q = q.size(0);
  r.out = at::empty({total_q, a.heads, a.head_dim_v}, q.options());
  r.lse = at::empty({a.return_lse ? a.heads : 0, total_q}, q.options().dtype(at::kFloat));
  r.block_dim = plan.block_dim;
  if (plan.block_dim == 0) return r;  // no query rows

  // 3. Workspace and the tiling in device memory.
  at::Tensor workspace = at::empty({int64_t(plan.workspace_bytes)}, q.options().dtype(at::kByte));
  const at::Tensor tiling = tiling_on_device(plan.tiling, q.device());
  const at::Tensor cu_q_dev = a.cu_seqlens_q, cu_k_dev = a.cu_seqlens_k, out = r.out, lse = r.lse;

  // 4. Launch.
  const uint32_t block_dim = plan.block_dim;
  device.enqueue([=]() {
    launch_note_buffer(q.data_ptr(), q.nbytes(), "q", BufferRole::kInput);
    launch_note_buffer(k.data_ptr(), k.nbytes(), "k", BufferRole::kInput);
    launch_note_buffer(v.data_ptr(), v.nbytes(), "v", BufferRole::kInput);
    launch_note_buffer(cu_q_dev.data_ptr(), cu_q_dev.nbytes(), "cu_seqlens_q", BufferRole::kInput);
    launch_note_buffer(cu_k_dev.data_ptr(), cu_k_dev.nbytes(), "cu_seqlens_k", BufferRole::kInput);
    launch_note_buffer(out.data_ptr(), out.nbytes(), "out", BufferRole::kOutput);
    if (lse.numel()) launch_note_buffer(lse.data_ptr(), lse.nbytes(), "lse", BufferRole::kOutput);
    note_workspace(workspace, device.sys_workspace_bytes);
    launch_note_buffer(tiling.data_ptr(), tiling.nbytes(), "tiling", BufferRole::kInput);
    launch_flash_attention(block_dim, device.stream, bytes_of(q), bytes_of(k), bytes_of(v), bytes_of(cu_q_dev),
                           bytes_of(cu_k_dev), bytes_of(out), lse.numel() ? bytes_of(lse) : nullptr,
                           bytes_of(workspace), bytes_of(tiling));
  });
  return r;
}

}  // namespace ascend_attn
