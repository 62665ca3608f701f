// How the kernel entries declare their type and their system workspace, for both CANN build flows:
// - CANN 8.x ascendc_library reads KERNEL_TASK_TYPE_DEFAULT inside the entry, and its generated launcher hands the
//   system workspace to the Matmul API itself (HAVE_WORKSPACE);
// - CANN >= 9 `bisheng -x asc` (scripts/build.sh defines ASCEND_ATTN_ASC_FLOW) needs the kernel type as a qualifier
//   (one translation unit holds several kernels, so it cannot infer it; KERNEL_TASK_TYPE_DEFAULT is being
//   deprecated), and the workspace parameter marked __kfc_workspace__ so GetSysWorkSpacePtr / GetUserWorkspace see
//   it (编译与运行/算子编译/约束说明.md; the CV fusion guide's Matmul example).
#pragma once
#include "kernel_operator.h"

#if defined(ASCEND_ATTN_ASC_FLOW)
#define ASCEND_ATTN_MIX_KERNEL extern "C" __global__ __mix__(1, 2)
#define ASCEND_ATTN_VECTOR_KERNEL extern "C" __global__ __vector__
#define ASCEND_ATTN_SYS_WORKSPACE __kfc_workspace__
#else
#define ASCEND_ATTN_MIX_KERNEL extern "C" __global__ __aicore__
#define ASCEND_ATTN_VECTOR_KERNEL extern "C" __global__ __aicore__
#define ASCEND_ATTN_SYS_WORKSPACE
#endif
