#include "npu_device.h"

#include <acl/acl.h>

#include <string>

#include "torch_npu/csrc/core/npu/NPUStream.h"
#include "torch_npu/csrc/framework/OpCommand.h"

namespace ascend_attn::npu {

namespace {
// The high-level Matmul API keeps its message area in a system workspace in front of the user workspace; the
// official fused attention kernels reserve 16 MB for it.
constexpr uint64_t kMatmulSysWorkspaceBytes = 16ull * 1024 * 1024;
}  // namespace

KernelDevice current_device(const char* op_name) {
  int32_t device = 0;
  TORCH_CHECK(aclrtGetDevice(&device) == ACL_SUCCESS, op_name, ": no current NPU device (aclrtGetDevice failed)");
  int64_t cores = 0;
  TORCH_CHECK(aclGetDeviceCapability(uint32_t(device), ACL_DEVICE_INFO_AI_CORE_NUM, &cores) == ACL_SUCCESS && cores > 0,
              op_name, ": cannot read the AI core count of NPU ", device);
  KernelDevice d;
  d.core_num = uint32_t(cores);
  d.sys_workspace_bytes = kMatmulSysWorkspaceBytes;
  d.stream = c10_npu::getCurrentNPUStream().stream(false);
  const std::string name = op_name;
  d.enqueue = [name](const std::function<void()>& launch) {
    at_npu::native::OpCommand::RunOpApiV2(name, [launch]() -> int {
      launch();
      return 0;
    });
  };
  return d;
}

}  // namespace ascend_attn::npu
