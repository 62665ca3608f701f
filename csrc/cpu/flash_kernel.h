// Interface between the CPU flash-attention driver (flash_attention.cpp: validation, work list, threads) and the
// per-ISA kernels (flash_kernel_<isa>.cpp). Torch-free on purpose: the ISA files are compiled for instruction sets
// the host may lack, so they must not instantiate any inline function that other files could link against.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/visible_keys.h"

namespace ascend_attn::cpu {

enum class ElemType : int32_t { kFloat32, kFloat16, kBFloat16 };

// One sequence of the batch. Offsets are in elements from the base pointers of FlashParams.
struct SeqDesc {
  int64_t q_offset, k_offset, v_offset, o_offset;  // first row of this sequence
  int64_t lse_offset;                              // lse index of (this sequence, head 0, row 0)
  int32_t seqlen_q, seqlen_k;
};

struct FlashParams {
  ElemType dtype;
  const void* q;  // rows of [heads, head_dim], row i of sequence s at q + seqs[s].q_offset + i * q_row_stride
  const void* k;  // rows of [kv_heads, head_dim]
  const void* v;  // rows of [kv_heads, head_dim_v]
  void* out;      // rows of [heads, head_dim_v], same dtype as q
  float* lse;     // nullptr, or lse[seqs[s].lse_offset + h * lse_head_stride + i]
  int64_t q_row_stride, q_head_stride, k_row_stride, k_head_stride, v_row_stride, v_head_stride;
  int64_t o_row_stride, o_head_stride, lse_head_stride;
  int32_t heads, kv_heads, head_dim, head_dim_v;
  float scale;                        // applied to q·k
  float softcap;                      // 0 = off
  int32_t window_left, window_right;  // -1 = unbounded; causal = window_right 0
  const float* alibi;                 // nullptr, or slope of (s, h) = alibi[s * alibi_seq_stride + h]
  int64_t alibi_seq_stride;
  const SeqDesc* seqs;
  int32_t num_seqs;
  // Paged K/V (block_table == nullptr: each sequence's keys are consecutive rows from seqs[s].k_offset). Key j of
  // sequence s is row j % block_size of block block_table[s * block_table_stride + j / block_size], i.e. at
  // k + block * k_block_stride + (j % block_size) * k_row_stride (likewise v).
  const int32_t* block_table;
  int64_t block_table_stride, k_block_stride, v_block_stride;
  int32_t block_size;
  // Split-KV partial results: an item with partial >= 0 writes its M rows' normalized fp32 output to
  // partial_out[(partial * partial_rows + r) * head_dim_v + c] and their lse to partial_lse[partial * partial_rows +
  // r].
  float* partial_out;
  float* partial_lse;
  int64_t partial_rows;
};

// Work items whose rows of one kv head number at most this take the kernel's row-major few-query (decode) path.
constexpr int kFewQueryRows = 8;

// Tile sizes chosen by the driver.
struct FlashTiling {
  int32_t block_q;         // query rows of one head per work item
  int32_t block_k;         // keys per K/V tile
  int32_t heads_per_item;  // q heads stacked into the rows of one work item (they share K/V tiles)
  // Few-query (decode) items cover this many consecutive kv heads (heads_per_item = kv_heads_per_item x group), so
  // they read each key's K and V rows of all those heads as one contiguous run; 1 otherwise.
  int32_t kv_heads_per_item = 1;
};

// Rows [row_begin, row_end) of q heads [head_begin, head_begin + head_count), attending to the keys in
// [key_begin, key_end) that they can see. Row r of the item is (head head_begin + r / rows, query row_begin + r %
// rows). The heads map to one kv head, or to FlashTiling::kv_heads_per_item whole groups of consecutive kv heads.
struct WorkItem {
  int32_t seq, head_begin, head_count, row_begin, row_end;
  int32_t key_begin, key_end;
  int32_t partial;  // -1: write the final output; else the split-KV slot (see FlashParams::partial_out)
};

struct FlashKernel {
  const char* isa;
  // Floats of per-thread scratch `run` needs (64-byte aligned).
  size_t (*scratch_floats)(const FlashParams&, const FlashTiling&);
  void (*run)(const FlashParams&, const FlashTiling&, const WorkItem&, float* scratch);
};

const FlashKernel& flash_kernel_portable();
const FlashKernel& flash_kernel_avx2();
const FlashKernel& flash_kernel_avx512();

}  // namespace ascend_attn::cpu
