// Tiling of the flash_attention kernel: filled on the host by csrc/tiling/flash_attention_tiling.cpp, copied to
// device memory, read once by every core. Plain POD shared by host and kernel.
#pragma once
#include <cstdint>
#include <type_traits>

#include "../common/softmax_ub.h"
#include "kernel_tiling/kernel_tiling.h"

constexpr uint32_t kFlashMaxCores = 64;  // block_dim limit of this tiling (A2/A3 have at most 25 AIC)
// A task is 2 x rows_per_aiv query rows of one (batch, head), split between the two AIVs of a core.
constexpr uint32_t kFlashMinRowsPerAiv = 64;
constexpr uint32_t kFlashMaxRowsPerAiv = 128;

enum FlashDtype : uint32_t { kFlashFp16 = 0, kFlashBf16 = 1 };

struct FlashAttentionTiling {
  uint32_t dtype;  // FlashDtype of q, k, v and out
  uint32_t batch, num_heads, num_kv_heads, head_dim, head_dim_v;
  uint32_t total_q, total_k;
  float scale;                                   // softmax scale
  float softcap;                                 // 0 = off
  int32_t window_left, window_right;             // -1 = unbounded; causal is window_right = 0
  uint32_t return_lse;                           // 1: write lse [num_heads, total_q]
  uint32_t rows_per_aiv;                         // 64 or 128 query rows per AIV (Br = twice that per task)
  uint32_t block_cols;                           // Bc: keys per KV tile (multiple of 16)
  uint32_t chunk_rows;                           // rows an AIV keeps in UB at once while doing the softmax
  uint32_t num_tasks;                            // (batch, kv head, group, q tile) tasks
  uint32_t used_cores;                           // block_dim
  uint32_t core_task_begin[kFlashMaxCores + 1];  // core c runs tasks [begin[c], begin[c + 1])
  uint64_t ws_per_aiv;                           // user workspace bytes of one AIV: two slot sets
  uint64_t ws_slot_bytes;                        // one slot set: S (at 0), P and O_tmp
  uint64_t ws_p_offset, ws_o_offset;             // offsets of the P and O_tmp slots in a slot set
  TCubeTiling mm1;                               // S = Q K^T: m = rows_per_aiv, n = Bc, k = head_dim
  TCubeTiling mm2;                               // O_tmp = P V: m = rows_per_aiv, n = head_dim_v, k = Bc
};
static_assert(std::is_trivially_copyable<FlashAttentionTiling>::value, "tiling is copied to the device as bytes");
