// The NPU side of the one launch path: what the shared host flows need from torch_npu and ACL.
#pragma once
#include "../common/flash_attention_launch.h"

namespace ascend_attn::npu {

// The current NPU: AI core count from ACL (the platform, never a constant), the Matmul library's system workspace,
// the current torch_npu stream, and launches queued with OpCommand::RunOpApiV2 so they stay ordered with torch_npu's
// task queue.
KernelDevice current_device(const char* op_name);

}  // namespace ascend_attn::npu
