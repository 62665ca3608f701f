// Tiling of the flash_attention kernel: filled on the host by csrc/tiling/flash_attention_tiling.cpp, copied to
// device memory, read once by every core. Plain POD shared by host and kernel.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernel_tiling/kernel_tiling.h"

constexpr uint32_t kFlashMaxCores = 64;    // block_dim limit of this tiling (A2/A3 have at most 25 AIC)
constexpr uint32_t kFlashBlockRows = 128;  // Br: query rows per task, 64 per AIV
constexpr uint32_t kFlashRowsPerAiv = kFlashBlockRows / 2;
constexpr uint32_t kFlashStatLanes = 8;  // row statistics as [rows, 8] fp32: one 32-byte block per row
// UB a mix kernel's AIV may carve: 192 KB minus the 8 KB the Ascend C framework reserves and 256 B for the runtime.
constexpr uint32_t kFlashUbBudget = 192 * 1024 - 8 * 1024 - 256;

// UB carved by one AIV (bytes), computed the same way by the host tiling (to choose chunk_rows) and the kernel.
struct FlashUbPlan {
  uint32_t in_bytes, out_bytes, o_acc_bytes, stat_bytes, work_bytes, softcap_bytes;
  constexpr uint32_t total() const {
    return in_bytes + out_bytes + o_acc_bytes + stat_bytes + work_bytes + softcap_bytes;
  }
};
constexpr uint32_t FlashRound32(uint32_t n) { return (n + 31) / 32 * 32; }
constexpr FlashUbPlan FlashUbLayout(uint32_t block_cols, uint32_t head_dim_v, uint32_t chunk_rows, uint32_t elem_bytes,
                                    bool softcap) {
  const uint32_t width = block_cols > head_dim_v ? block_cols : head_dim_v;  // S rows and O_tmp rows share a buffer
  return FlashUbPlan{FlashRound32(chunk_rows * width * 4),
                     FlashRound32(chunk_rows * width * elem_bytes),
                     FlashRound32(kFlashRowsPerAiv * head_dim_v * 4),
                     3 * kFlashRowsPerAiv * kFlashStatLanes * 4 + kFlashRowsPerAiv * 4,  // max, sum, alpha; lse rows
                     2 * 1024,                                                           // reduction results, work
                     softcap ? FlashRound32(block_cols * 4) : 0};
}

enum FlashDtype : uint32_t { kFlashFp16 = 0, kFlashBf16 = 1 };

struct FlashAttentionTiling {
  uint32_t dtype;  // FlashDtype of q, k, v and out
  uint32_t batch, num_heads, num_kv_heads, head_dim, head_dim_v;
  uint32_t total_q, total_k;
  float scale;                                   // softmax scale
  float softcap;                                 // 0 = off
  int32_t window_left, window_right;             // -1 = unbounded; causal is window_right = 0
  uint32_t return_lse;                           // 1: write lse [num_heads, total_q]
  uint32_t block_cols;                           // Bc: keys per KV tile (multiple of 16)
  uint32_t chunk_rows;                           // rows an AIV keeps in UB at once while doing the softmax
  uint32_t num_tasks;                            // (batch, kv head, group, q tile) tasks
  uint32_t used_cores;                           // block_dim
  uint32_t core_task_begin[kFlashMaxCores + 1];  // core c runs tasks [begin[c], begin[c + 1])
  uint64_t ws_per_aiv;                           // user workspace bytes of one AIV: S, P and O_tmp slots
  uint64_t ws_p_offset, ws_o_offset;             // offsets of the P and O_tmp slots in it (S at 0)
  TCubeTiling mm1;                               // S = Q K^T: m rows per AIV, n = Bc, k = head_dim
  TCubeTiling mm2;                               // O_tmp = P V: m rows per AIV, n = head_dim_v, k = Bc
};
static_assert(std::is_trivially_copyable<FlashAttentionTiling>::value, "tiling is copied to the device as bytes");
