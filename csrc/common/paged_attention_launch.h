// The host flows of the Ascend C paged_attention and reshape_and_cache kernels, written once for the NPU and
// simulator executors: validate -> tiling -> workspace -> copy tiling -> launch.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

#include "flash_attention_launch.h"
#include "paged_args.h"

namespace ascend_attn {

struct KernelLaunch {
  at::Tensor out, lse;  // paged_attention: out [num_tokens, heads, head_dim_v], lse fp32 [heads, num_tokens] or empty
  uint32_t block_dim = 0;
  uint32_t kv_splits = 1;  // paged_attention: KV splits of the longest sequence (> 1: flash-decoding combine)
  at::Tensor error_flag;   // uint32 [1] in device memory: nonzero when the kernel met (and skipped) an index outside
                           // the cache; reading it waits for the kernel
};

// p: validated by check_paged_attention_args (fp16/bf16, contiguous caches).
KernelLaunch paged_attention_launch(const PagedArgs& p, const KernelDevice& device);

// Arguments validated by check_reshape_and_cache_args; the caches (contiguous) are written in place.
KernelLaunch reshape_and_cache_launch(const at::Tensor& key, const at::Tensor& value, const at::Tensor& key_cache,
                                      const at::Tensor& value_cache, const at::Tensor& slot_mapping,
                                      const KernelDevice& device);

}  // namespace ascend_attn
