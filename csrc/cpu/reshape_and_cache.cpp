// CPU executor of reshape_and_cache: scatter new K/V rows into their cache slots, after every slot is validated.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>

#include "common/paged_args.h"

namespace ascend_attn::cpu {
namespace {

// Copies token t's [heads, dim] rows of src into slot s of cache (any dtype: rows are copied bytewise).
void copy_token(const at::Tensor& src, at::Tensor& cache, int64_t t, int64_t slot) {
  const int64_t block_size = cache.size(1), heads = src.size(1), row_bytes = src.size(2) * src.element_size();
  const char* from = static_cast<const char*>(src.data_ptr()) + t * src.stride(0) * src.element_size();
  char* to = static_cast<char*>(cache.data_ptr()) +
             ((slot / block_size) * cache.stride(0) + (slot % block_size) * cache.stride(1)) * cache.element_size();
  for (int64_t h = 0; h < heads; ++h)
    std::memcpy(to + h * cache.stride(2) * cache.element_size(), from + h * src.stride(1) * src.element_size(),
                row_bytes);
}

}  // namespace

void reshape_and_cache_cpu(const at::Tensor& key,           // [num_tokens, kv_heads, head_dim]
                           const at::Tensor& value,         // [num_tokens, kv_heads, head_dim_v]
                           at::Tensor& key_cache,           // [num_blocks, block_size, kv_heads, head_dim]
                           at::Tensor& value_cache,         // [num_blocks, block_size, kv_heads, head_dim_v]
                           const at::Tensor& slot_mapping)  // int32/int64 [num_tokens]; < 0 = padding, skipped
{
  check_reshape_and_cache_args(key, value, key_cache, value_cache, slot_mapping);
  const at::Tensor k = key.stride(2) == 1 ? key : key.contiguous();
  const at::Tensor v = value.stride(2) == 1 ? value : value.contiguous();
  const at::Tensor slots = slot_mapping.to(at::kLong).contiguous();
  const int64_t* slot = slots.data_ptr<int64_t>();
  at::parallel_for(0, k.size(0), 256, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      if (slot[t] < 0) continue;
      copy_token(k, key_cache, t, slot[t]);
      copy_token(v, value_cache, t, slot[t]);
    }
  });
}

TORCH_LIBRARY_IMPL(ascend_attn, CPU, m) { m.impl("reshape_and_cache", &reshape_and_cache_cpu); }

}  // namespace ascend_attn::cpu
