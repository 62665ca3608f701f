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
constexpr uint32_t kPagedRowsPerAiv = 64;                  // query rows (tokens x q heads) of one work item

enum PagedDtype : uint32_t { kPagedFp16 = 0, kPagedBf16 = 1 };

struct PagedAttentionTiling {
  uint32_t dtype;  // PagedDtype of q, the caches and out
  uint32_t num_seqs, num_heads, num_kv_heads, head_dim, head_dim_v;
  uint32_t num_tokens, num_blocks, block_size, max_blocks_per_seq;
  float scale, softcap;
  int32_t window_left, window_right;  // -1 = unbounded; causal is window_right = 0
  uint32_t return_lse;
  uint32_t block_cols;        // Bc: keys per KV tile, whole pages (multiple of block_size, at least 128 keys)
  uint32_t chunk_rows;        // rows an AIV keeps in UB at once
  uint32_t heads_per_item;    // kv heads of one work item (GQA rows of several kv heads share each page's requests)
  uint32_t tokens_per_item;   // query tokens of one work item: tokens_per_item * heads_per_item * group rows <= 64
  uint32_t query_piece_rows;  // query rows LoadQuery moves through UB at once: whole tokens when one fits, else a
                              // multiple of group (whole kv head runs) when heads_per_item > 1
  uint32_t split_keys;        // keys of a KV split at most (multiple of block_size); a sequence has ceil(ctx /
                              // split_keys) splits, its pages shared among them by PagedSplitBound
  uint32_t max_splits;        // splits of the longest sequence; 1 = no split, no combine phase
  uint32_t num_items;         // (sequence, kv head group, token block, split) items
  uint32_t used_workers;      // AIVs with items
  uint32_t worker_item_begin[kPagedMaxWorkers + 1];  // AIV w runs items [begin[w], begin[w + 1])
  uint64_t ws_per_aiv;     // two slot sets of one AIV (the cube works a tile ahead), then its Q slot
  uint64_t ws_slot_bytes;  // one slot set: S (at 0), P and O_tmp [rows, heads_per_item * dv]
  uint64_t ws_p_offset, ws_o_offset;
  uint64_t ws_q_offset;  // the item's query rows as the cube reads them: [rows, heads_per_item * d], block diagonal
  uint64_t ws_part_o_offset;    // after all AIV slots: partial O fp32 [num_tokens, heads, max_splits, dv]
  uint64_t ws_part_lse_offset;  // partial lse fp32 [num_tokens, heads, max_splits]
  uint64_t ws_error_offset;     // per worker a 64-byte slot; word 0 nonzero: a block index outside the cache was met
  TCubeTiling mm1;              // S = Q K_page^T: m rows, n = block_size, k = heads_per_item * head_dim
  TCubeTiling mm2;              // O_tmp (+)= P_page V_page: m rows, n = heads_per_item * head_dim_v, k = block_size
};
static_assert(std::is_trivially_copyable<PagedAttentionTiling>::value, "tiling is copied to the device as bytes");

// Each worker (AIV) flags a block index outside the cache in its own 64-byte line of the error region: a scalar GM
// write lands in the core's data cache, and cores writing one line would overwrite each other's.
constexpr uint32_t kPagedErrorSlotBytes = 64;

// First key of split j of `splits` over a context of ctx keys (j = splits: past the last page): the pages shared as
// evenly as whole pages allow, since the longest split decides when the AIVs finish (8 x 8K, 3 splits: 22, 21 and 21
// pages rather than 22, 22 and 20).
__host_aicore__ constexpr int64_t PagedSplitBound(int64_t ctx, uint32_t block_size, uint32_t splits, uint32_t j) {
  return (ctx + block_size - 1) / block_size * j / splits * block_size;
}

// UB holding a piece of an item's query rows on their way from q to the workspace's Q slot: [rows, head_dim], at
// most kPagedQueryUbBytes unless one row is larger.
constexpr uint32_t kPagedQueryUbBytes = 8 * 1024;
__host_aicore__ constexpr uint32_t PagedQueryUbBytes(uint32_t rows, uint32_t head_dim, uint32_t elem_bytes) {
  return ascend_attn_kernel::Round32(rows * head_dim * elem_bytes);
}

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
