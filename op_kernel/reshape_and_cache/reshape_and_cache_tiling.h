// Tiling of the reshape_and_cache kernel (vector only), filled by csrc/tiling/paged_attention_tiling.cpp.
#pragma once
#include <cstdint>
#include <type_traits>

struct ReshapeAndCacheTiling {
  uint32_t num_tokens, num_kv_heads, head_dim, head_dim_v;
  uint32_t num_blocks, block_size;
  uint32_t elem_bytes;    // 2 (fp16/bf16) or 4 (fp32): rows are copied as bytes
  uint32_t slot_int64;    // slot_mapping is int64 (else int32)
  uint32_t used_workers;  // AIVs; worker w copies tokens [num_tokens * w / used, num_tokens * (w + 1) / used)
};
static_assert(std::is_trivially_copyable<ReshapeAndCacheTiling>::value, "tiling is copied to the device as bytes");
