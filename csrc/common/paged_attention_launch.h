// The host flows of the Ascend C paged_attention and reshape_and_cache kernels, written once for the NPU and
// simulator executors: validate -> tiling -> workspace -> copy tiling -> launch.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernel_launch.h"
#include "paged_args.h"

namespace ascend_attn {

// p: validated by check_paged_attention_args (fp16/bf16, contiguous caches).
KernelLaunch paged_attention_launch(const PagedArgs& p, const KernelDevice& device);

// Arguments validated by check_reshape_and_cache_args; the caches (contiguous) are written in place.
KernelLaunch reshape_and_cache_launch(const at::Tensor& key, const at::Tensor& value, const at::Tensor& key_cache,
                                      const at::Tensor& value_cache, const at::Tensor& slot_mapping,
                                      const KernelDevice& device);

}  // namespace ascend_attn
