// Tiling of the paged_attention kernel, filled by csrc/tiling/paged_attention_tiling.cpp. Plain POD shared by host
// and kernel.
#pragma once
#include <cstdint>
#include <type_traits>

#include "../common/softmax_ub.h"
#include "kernel_tiling/kernel_tiling.h"

constexpr uint32_t kPagedMaxCores = 64;
constexpr uint32_t kPagedMaxWorkers = 2 * kPagedMaxCores;  // every AIV is a worker
constexpr uint32_t kPagedMaxSplits = 32;                   // KV splits of one sequence (flash-decoding)
constexpr uint32_t kPagedRowsPerAiv = 64;                  // query rows (tokens x group) of one work item

enum PagedDtype : uint32_t { kPagedFp16 = 0, kPagedBf16 = 1 };

struct PagedAttentionTiling {
  uint32_t dtype;  // PagedDtype of q, the caches and out
  uint32_t num_seqs, num_heads, num_kv_heads, head_dim, head_dim_v;
  uint32_t num_tokens, num_blocks, block_size, max_blocks_per_seq;
  float scale, softcap;
  int32_t window_left, window_right;  // -1 = unbounded; causal is window_right = 0
  uint32_t return_lse;
  uint32_t block_cols;       // Bc: keys per KV tile, whole pages (multiple of block_size, at least 128 keys)
  uint32_t chunk_rows;       // rows an AIV keeps in UB at once
  uint32_t tokens_per_item;  // query tokens of one work item: tokens_per_item * group rows <= 64
  uint32_t split_keys;       // keys of one KV split (multiple of block_size); a sequence has ceil(ctx / split_keys)
  uint32_t max_splits;       // splits of the longest sequence; 1 = no split, no combine phase
  uint32_t num_items;        // (sequence, kv head, token block, split) items
  uint32_t used_workers;     // AIVs with items
  uint32_t worker_item_begin[kPagedMaxWorkers + 1];  // AIV w runs items [begin[w], begin[w + 1])
  uint64_t ws_per_aiv;                               // two slot sets of one AIV (the cube works a tile ahead)
  uint64_t ws_slot_bytes;                            // one slot set: S (at 0), P and O_tmp
  uint64_t ws_p_offset, ws_o_offset;
  uint64_t ws_part_o_offset;    // after all AIV slots: partial O fp32 [num_tokens, heads, max_splits, dv]
  uint64_t ws_part_lse_offset;  // partial lse fp32 [num_tokens, heads, max_splits]
  uint64_t ws_error_offset;     // per worker a 64-byte slot; word 0 nonzero: a block index outside the cache was met
  TCubeTiling mm1;              // S = Q K_page^T: m rows, n = block_size, k = head_dim
  TCubeTiling mm2;              // O_tmp (+)= P_page V_page: m rows, n = head_dim_v, k = block_size
};
static_assert(std::is_trivially_copyable<PagedAttentionTiling>::value, "tiling is copied to the device as bytes");

// Each worker (AIV) flags a block index outside the cache in its own 64-byte line of the error region: a scalar GM
// write lands in the core's data cache, and cores writing one line would overwrite each other's.
constexpr uint32_t kPagedErrorSlotBytes = 64;

// UB of the combine phase of one AIV (op_kernel/paged_attention/paged_combine.h): the partial O rows and lse of one
// (token, head) in, the output row and its lse out, the fp32 sum, a scratch row and the reduction results.
struct PagedCombineUb {
  uint32_t parts_bytes, lse_bytes, y_bytes, lse_out_bytes, acc_bytes, calc_bytes;
  __host_aicore__ constexpr uint32_t total() const {
    return parts_bytes + lse_bytes + y_bytes + lse_out_bytes + calc_bytes;
  }
};
__host_aicore__ constexpr PagedCombineUb PagedCombineLayout(uint32_t max_splits, uint32_t head_dim_v,
                                                            uint32_t elem_bytes) {
  return PagedCombineUb{ascend_attn_kernel::Round32(max_splits * head_dim_v * 4),
                        ascend_attn_kernel::Round32(max_splits * 4),
                        ascend_attn_kernel::Round32(head_dim_v * elem_bytes),
                        32,
                        ascend_attn_kernel::Round32(head_dim_v * 4),
                        2 * ascend_attn_kernel::Round32(head_dim_v * 4) + 64};
}
