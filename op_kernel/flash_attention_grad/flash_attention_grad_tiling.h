// Tiling of the flash_attention_grad kernel: filled on the host by csrc/tiling/flash_attention_grad_tiling.cpp,
// copied to device memory, read once by every core. Plain POD shared by host and kernel.
#pragma once
#include <cstdint>
#include <type_traits>

#include "../flash_attention/flash_attention_tiling.h"  // FlashDtype
#include "kernel_tiling/kernel_tiling.h"

constexpr uint32_t kGradMaxCores = 64;                   // block_dim limit of this tiling (A2/A3 have at most 25 AIC)
constexpr uint32_t kGradMaxWorkers = 2 * kGradMaxCores;  // every AIV is a worker with its own task range

struct FlashAttentionGradTiling {
  uint32_t dtype;  // FlashDtype of dout, q, k, v, out and of dq, dk, dv
  uint32_t batch, num_heads, num_kv_heads, head_dim, head_dim_v;
  uint32_t total_q, total_k;
  float scale;       // softmax scale: scores are scale * q.k
  float softcap;     // 0 = off
  float grad_scale;  // dQ and dK accumulate dS K and dS^T Q; the result is this times them (see the tiling)
  int32_t window_left, window_right;  // -1 = unbounded; causal is window_right = 0
  uint32_t deterministic;             // 1: dQ by query-major tasks that own their rows (no atomic adds)
  uint32_t block_keys;                // Bk: keys of a kv task (the dK/dV rows one AIV owns), multiple of 16
  uint32_t block_rows;                // Bq: query rows per step, multiple of 16
  uint32_t chunk_rows;                // rows of a [rows, width] block the vector keeps in UB at once
  uint32_t kv_heads_per_group;        // kv tasks: the kv heads one task covers (see the tiling's step 5)
  uint32_t q_heads_per_group;         // deterministic dQ tasks: the q heads one task covers
  uint32_t num_kv_tasks;              // (batch, kv head group, kv tile) tasks, first in the task order
  uint32_t num_q_tasks;               // (batch, q head group, q tile) tasks after them (deterministic only)
  uint32_t used_workers;              // AIVs with tasks; the others only share the row passes
  uint32_t worker_task_begin[kGradMaxWorkers + 1];  // AIV w runs tasks [begin[w], begin[w + 1])
  // User workspace (bytes from its start): D = rowsum(dO * O) fp32 [heads, total_q]; the dQ accumulator fp32
  // [total_q, heads, head_dim] (default mode); then every AIV's slots.
  uint64_t ws_d_offset, ws_dq_offset, ws_worker_offset, ws_per_worker;
  // Within one AIV's slots: two S slots fp32 [Bq, Bk] (ws_s_bytes apart), dP fp32 [Bq, Bk], two P and two dS slots
  // in the input dtype [Bq, Bk] (Bq * Bk elements apart), the dK / dV accumulators fp32 [Bk, head_dim(_v)], the dQ
  // accumulator fp32 [Bq, head_dim] (deterministic mode).
  uint64_t ws_s_offset, ws_s_bytes, ws_dp_offset, ws_p_offset, ws_ds_offset;
  uint64_t ws_dk_offset, ws_dv_offset, ws_dq_acc_offset;
  TCubeTiling mm_s;   // S = Q K^T and dP = dO V^T: m = Bq, n = Bk, k = max(head_dim, head_dim_v)
  TCubeTiling mm_t;   // dV (+)= P^T dO, dK (+)= dS^T Q: m = Bk, n = max(head_dim, head_dim_v), k = 2 Bq (A transposed)
  TCubeTiling mm_dq;  // dQ (+)= dS K: m = Bq, n = head_dim, k = Bk
};
static_assert(std::is_trivially_copyable<FlashAttentionGradTiling>::value, "tiling is copied to the device as bytes");
