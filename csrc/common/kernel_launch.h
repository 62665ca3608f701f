// What the host flows of the Ascend C kernels share: the executor they launch on, what a launch returns, and the
// steps every flow takes (tiling errors, tiling in device memory, the user part of the workspace).
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>

#include <functional>
#include <stdexcept>

#include "../../op_kernel/launch.h"
#include "../tiling/tiling_util.h"

namespace ascend_attn {

// What differs between executors: core count, library workspace, stream, and how a launch is queued.
struct KernelDevice {
  uint32_t core_num = 0;
  uint64_t sys_workspace_bytes = 0;
  void* stream = nullptr;
  std::function<void(const std::function<void()>&)> enqueue;  // runs (or queues) the launch
};

struct KernelLaunch {
  at::Tensor out, lse;  // attention: out [tokens, heads, head_dim_v], lse fp32 [heads, tokens] or empty
  uint32_t block_dim = 0;
  uint32_t kv_splits = 1;       // paged_attention: KV splits of the longest sequence (> 1: flash-decoding combine)
  uint32_t heads_per_item = 1;  // paged_attention: kv heads whose query rows share one work item
  at::Tensor error_flags;       // int32 [workers * 16] in device memory, a 64-byte slot per worker, nonzero when the
                                // kernel met (and skipped) an index outside the cache; reading it waits for the kernel.
                                // Undefined for kernels with no such index.
};

inline uint8_t* bytes_of(const at::Tensor& t) { return static_cast<uint8_t*>(t.data_ptr()); }

// A tiling's std::invalid_argument (naming the argument) becomes the op's error.
template <typename F>
auto plan_or_error(F plan) -> decltype(plan()) {
  try {
    return plan();
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, e.what());
  }
}

// A POD tiling struct copied into device memory.
template <typename Tiling>
at::Tensor tiling_on_device(const Tiling& tiling, const at::Device& device) {
  return at::from_blob(const_cast<Tiling*>(&tiling), {int64_t(sizeof(Tiling))}, at::kByte)
      .to(device, /*non_blocking=*/false, /*copy=*/true);
}

// The user part of a workspace starts after the library's system workspace, rounded as the tilings round it.
inline at::Tensor user_workspace(const at::Tensor& workspace, uint64_t sys_workspace_bytes) {
  const int64_t begin = int64_t(align_up(sys_workspace_bytes, kWorkspaceAlign));
  return workspace.narrow(0, begin, workspace.size(0) - begin);
}

// Notes a workspace for the launch: the library's system part and the user part are the kernel's scratch, except
// the error flags at [error_offset, error_offset + error_bytes) of the user part, which the host zeroed.
inline void note_workspace(const at::Tensor& workspace, uint64_t sys_workspace_bytes, uint64_t error_offset = 0,
                           uint64_t error_bytes = 0) {
  uint8_t* base = static_cast<uint8_t*>(workspace.data_ptr());
  const uint64_t user = align_up(sys_workspace_bytes, kWorkspaceAlign), total = uint64_t(workspace.nbytes());
  launch_note_buffer(base, user, "sys_workspace", BufferRole::kScratch);
  if (error_offset > 0) launch_note_buffer(base + user, error_offset, "workspace", BufferRole::kScratch);
  if (error_bytes > 0) launch_note_buffer(base + user + error_offset, error_bytes, "error_flags", BufferRole::kInOut);
  const uint64_t rest = user + error_offset + error_bytes;
  if (rest < total) {
    launch_note_buffer(base + rest, total - rest, error_bytes ? "workspace_tail" : "workspace", BufferRole::kScratch);
  }
}

}  // namespace ascend_attn
