#include "paged_attention_launch.h"

#include <ATen/ops/empty.h>

#include "../tiling/paged_attention_tiling.h"
#include "checks.h"

namespace ascend_attn {

KernelLaunch paged_attention_launch(const PagedArgs& p, const KernelDevice& device) {
  const AttentionArgs& a = p.attn;
  // 1. Validate what the Ascend C kernel adds to the op contract.
  TORCH_CHECK(a.q.scalar_type() == at::kHalf || a.q.scalar_type() == at::kBFloat16,
              "q: the Ascend C paged_attention kernel takes float16 or bfloat16, got ", a.q.scalar_type());
  TORCH_CHECK(!a.alibi_slopes.has_value(), "alibi_slopes: not supported by the Ascend C paged_attention kernel");
  TORCH_CHECK(a.k.is_contiguous() && a.v.is_contiguous(),
              "key_cache and value_cache must be contiguous for the Ascend C paged_attention kernel");
  const at::Tensor q = a.q.contiguous(), tables = p.block_tables.contiguous();

  // 2. Tiling, from host copies of the lengths (check_paged_attention_args made them). The shared check bounds the
  //    sizes the CPU path needs; the kernel's tiling holds the cache's in 32 bits too.
  CHECK_INT32_SIZE(p.num_blocks, "key_cache: num_blocks");
  CHECK_INT32_SIZE(p.max_blocks_per_seq, "block_tables: blocks per sequence");
  PagedAttentionProblem pr;
  pr.dtype = q.scalar_type() == at::kBFloat16 ? kPagedBf16 : kPagedFp16;
  pr.num_seqs = uint32_t(a.batch), pr.num_heads = uint32_t(a.heads), pr.num_kv_heads = uint32_t(a.kv_heads);
  pr.head_dim = uint32_t(a.head_dim), pr.head_dim_v = uint32_t(a.head_dim_v);
  pr.num_blocks = uint32_t(p.num_blocks), pr.block_size = uint32_t(p.block_size);
  pr.max_blocks_per_seq = uint32_t(p.max_blocks_per_seq);
  pr.scale = float(a.scale), pr.softcap = float(a.softcap);
  pr.window_left = int32_t(a.window_left), pr.window_right = int32_t(a.window_right);
  pr.return_lse = a.return_lse;
  pr.context_lens = p.context_lens.data_ptr<int32_t>(), pr.cu_seqlens_q = p.cu_seqlens_q.data_ptr<int32_t>();
  const PagedAttentionPlan plan =
      plan_or_error([&] { return plan_paged_attention(pr, device.core_num, device.sys_workspace_bytes); });

  KernelLaunch r;
  const int64_t tokens = q.size(0);
  r.out = at::empty({tokens, a.heads, a.head_dim_v}, q.options());
  r.lse = at::empty({a.return_lse ? a.heads : 0, tokens}, q.options().dtype(at::kFloat));
  r.block_dim = plan.block_dim;
  r.kv_splits = plan.tiling.max_splits;
  r.heads_per_item = plan.tiling.heads_per_item;
  if (plan.block_dim == 0) return r;

  // 3. Workspace (its error word zeroed) and the tiling and lengths in device memory.
  at::Tensor workspace = at::empty({int64_t(plan.workspace_bytes)}, q.options().dtype(at::kByte));
  at::Tensor error_slots = user_workspace(workspace, device.sys_workspace_bytes)
                               .narrow(0, int64_t(plan.tiling.ws_error_offset), int64_t(plan.error_bytes));
  error_slots.zero_();
  const at::Tensor tiling = tiling_on_device(plan.tiling, q.device());
  const at::Tensor ctx = p.context_lens.to(q.device()), cu_q = p.cu_seqlens_q.to(q.device());
  const at::Tensor k = a.k, v = a.v, out = r.out, lse = r.lse;

  // 4. Launch.
  const uint32_t block_dim = plan.block_dim;
  device.enqueue([=]() {
    launch_note_buffer(q.data_ptr(), q.nbytes(), "q", BufferRole::kInput);
    launch_note_buffer(k.data_ptr(), k.nbytes(), "key_cache", BufferRole::kInput);
    launch_note_buffer(v.data_ptr(), v.nbytes(), "value_cache", BufferRole::kInput);
    launch_note_buffer(tables.data_ptr(), tables.nbytes(), "block_tables", BufferRole::kInput);
    launch_note_buffer(ctx.data_ptr(), ctx.nbytes(), "context_lens", BufferRole::kInput);
    launch_note_buffer(cu_q.data_ptr(), cu_q.nbytes(), "cu_seqlens_q", BufferRole::kInput);
    launch_note_buffer(out.data_ptr(), out.nbytes(), "out", BufferRole::kOutput);
    if (lse.numel()) launch_note_buffer(lse.data_ptr(), lse.nbytes(), "lse", BufferRole::kOutput);
    note_workspace(workspace, device.sys_workspace_bytes, plan.tiling.ws_error_offset, plan.error_bytes);
    launch_note_buffer(tiling.data_ptr(), tiling.nbytes(), "tiling", BufferRole::kInput);
    launch_paged_attention(block_dim, device.stream, bytes_of(q), bytes_of(k), bytes_of(v), bytes_of(tables),
                           bytes_of(ctx), bytes_of(cu_q), bytes_of(out), lse.numel() ? bytes_of(lse) : nullptr,
                           bytes_of(workspace), bytes_of(tiling));
  });
  r.error_flags = error_slots.view(at::kInt);
  return r;
}

KernelLaunch reshape_and_cache_launch(const at::Tensor& key, const at::Tensor& value, const at::Tensor& key_cache,
                                      const at::Tensor& value_cache, const at::Tensor& slot_mapping,
                                      const KernelDevice& device) {
  TORCH_CHECK(key_cache.is_contiguous() && value_cache.is_contiguous(),
              "key_cache and value_cache must be contiguous for the Ascend C reshape_and_cache kernel");
  const at::Tensor k = key.contiguous(), v = value.contiguous(), slots = slot_mapping.contiguous();
  // The kernel's tiling is 32-bit: a size past int32 must not wrap into a small one.
  CHECK_INT32_SIZE(k.size(0), "key: num_tokens");
  CHECK_INT32_SIZE(k.size(1), "key: kv_heads");
  CHECK_INT32_SIZE(k.size(2), "key: head_dim");
  CHECK_INT32_SIZE(v.size(2), "value: head_dim_v");
  CHECK_INT32_SIZE(key_cache.size(0), "key_cache: num_blocks");
  CHECK_INT32_SIZE(key_cache.size(1), "key_cache: block_size");
  const ReshapeAndCachePlan plan = plan_or_error([&] {
    return plan_reshape_and_cache(uint32_t(k.size(0)), uint32_t(k.size(1)), uint32_t(k.size(2)), uint32_t(v.size(2)),
                                  uint32_t(key_cache.size(0)), uint32_t(key_cache.size(1)), uint32_t(k.element_size()),
                                  slots.scalar_type() == at::kLong, 2 * device.core_num, device.sys_workspace_bytes);
  });
  KernelLaunch r;
  r.block_dim = plan.block_dim;
  if (plan.block_dim == 0) return r;
  at::Tensor workspace = at::empty({int64_t(plan.workspace_bytes)}, k.options().dtype(at::kByte));
  at::Tensor error_slots =
      user_workspace(workspace, device.sys_workspace_bytes).narrow(0, 0, int64_t(plan.error_bytes));
  error_slots.zero_();
  const at::Tensor tiling = tiling_on_device(plan.tiling, k.device());
  const at::Tensor kc = key_cache, vc = value_cache;
  device.enqueue([=]() {
    launch_note_buffer(k.data_ptr(), k.nbytes(), "key", BufferRole::kInput);
    launch_note_buffer(v.data_ptr(), v.nbytes(), "value", BufferRole::kInput);
    launch_note_buffer(kc.data_ptr(), kc.nbytes(), "key_cache", BufferRole::kInOut);
    launch_note_buffer(vc.data_ptr(), vc.nbytes(), "value_cache", BufferRole::kInOut);
    launch_note_buffer(slots.data_ptr(), slots.nbytes(), "slot_mapping", BufferRole::kInput);
    note_workspace(workspace, device.sys_workspace_bytes, 0, plan.error_bytes);
    launch_note_buffer(tiling.data_ptr(), tiling.nbytes(), "tiling", BufferRole::kInput);
    launch_reshape_and_cache(plan.block_dim, device.stream, bytes_of(k), bytes_of(v), bytes_of(kc), bytes_of(vc),
                             bytes_of(slots), bytes_of(workspace), bytes_of(tiling));
  });
  r.error_flags = error_slots.view(at::kInt);
  return r;
}

}  // namespace ascend_attn
