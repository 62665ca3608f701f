// Interface between the CPU backward driver (backward_runner.cpp: work items, threads, the ordered dQ reduction) and
// the per-ISA backward kernels (flash_backward_kernel_<isa>.cpp). Torch-free and atomic-free for the same reason as
// flash_kernel.h: the ISA files must not instantiate inline functions other files could link against.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/flash_kernel.h"

namespace ascend_attn::cpu {

// One sequence of the batch. Offsets are in elements from the base pointers of BackwardParams.
struct BackwardSeq {
  int64_t q_offset, k_offset, v_offset, do_offset;  // first row of this sequence in q / k / v / dout
  int64_t dk_offset, dv_offset;                     // first row in dk / dv
  int64_t o_offset;                                 // first row in out (read by the runner's D pass only)
  int64_t dq_row;                                   // first row in the fp32 dQ accumulator
  int64_t lse_offset;                               // lse / delta index of (this sequence, head 0, row 0)
  int32_t seqlen_q, seqlen_k;
};

// Keys [kv_tile * block_k, min((kv_tile + 1) * block_k, seqlen_k)) of one kv head of one sequence, against the q tiles
// [q_tile_begin, q_tile_end) of every q head of that kv head: exactly the q tiles with a row that sees one of the keys.
// The item owns these keys' dK and dV (summed over the group's q heads) and adds its part of the dQ of each (q head,
// q tile) to the accumulator in kv-tile order (BackwardParams::dq_wait / dq_done).
struct BackwardItem {
  int32_t seq, kv_head, kv_tile;
  int32_t q_tile_begin, q_tile_end;
};

struct BackwardParams {
  ElemType dtype;
  const void* q;       // rows of [heads, head_dim]: row i of sequence s at q + seqs[s].q_offset + i * q_row_stride
  const void* k;       // rows of [kv_heads, head_dim]
  const void* v;       // rows of [kv_heads, head_dim_v]
  const void* dout;    // rows of [heads, head_dim_v]
  const void* out;     // rows of [heads, head_dim_v]: the forward's output, read by the runner's D pass only
  const float* lse;    // the forward's lse: lse[seqs[s].lse_offset + h * lse_head_stride + i]
  const float* delta;  // D = rowsum(dout * out), indexed as lse
  void* dk;            // rows of [kv_heads, head_dim], q's dtype
  void* dv;            // rows of [kv_heads, head_dim_v]
  int64_t q_row_stride, q_head_stride, k_row_stride, k_head_stride, v_row_stride, v_head_stride;
  int64_t do_row_stride, do_head_stride, o_row_stride, o_head_stride, dk_row_stride, dk_head_stride, dv_row_stride,
      dv_head_stride;
  int64_t lse_head_stride;
  int32_t heads, kv_heads, head_dim, head_dim_v;
  float scale;                        // applied to q·k
  float softcap;                      // 0 = off
  int32_t window_left, window_right;  // -1 = unbounded; causal = window_right 0
  const float* alibi;                 // nullptr, or slope of (s, h) = alibi[s * alibi_seq_stride + h]
  int64_t alibi_seq_stride;
  const BackwardSeq* seqs;
  // The fp32 dQ accumulator: row i of sequence s, q head h at dq_acc + (seqs[s].dq_row + i) * dq_row_stride +
  // h * head_dim. An item adds its part of the rows of (q head, q tile) between dq_wait, which returns once the item's
  // lower kv tiles have added theirs, and dq_done, which passes the turn on: a fixed order whatever the threads do.
  float* dq_acc;
  int64_t dq_row_stride;
  void (*dq_wait)(void* ctx, const BackwardItem& item, int32_t head, int32_t q_tile);
  void (*dq_done)(void* ctx, const BackwardItem& item, int32_t head, int32_t q_tile);
  void* dq_ctx;
};

struct BackwardTiling {
  int32_t block_q;  // query rows of one q head per step
  int32_t block_k;  // keys per item
};

struct FlashBackwardKernel {
  const char* isa;
  // Floats of per-thread scratch `run` needs (64-byte aligned).
  size_t (*scratch_floats)(const BackwardParams&, const BackwardTiling&);
  void (*run)(const BackwardParams&, const BackwardTiling&, const BackwardItem&, float* scratch);
};

const FlashBackwardKernel& flash_backward_kernel_portable();
const FlashBackwardKernel& flash_backward_kernel_avx2();
const FlashBackwardKernel& flash_backward_kernel_avx512();

}  // namespace ascend_attn::cpu
