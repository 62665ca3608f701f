// FlashAttention forward for Atlas A2, vector-master C+V: each AIV owns up to 64 or 128 query rows (the tiling picks)
// of a task twice that size and drives the cube through the high-level Matmul API (S = Q K^T and O_tmp = P V into
// its GM workspace slots), while it does the fp32 online softmax in UB. The cube works one step ahead of the vector:
// S of tile j + 1 is computed during the softmax of tile j and P V of tile j during the rescale of tile j - 1,
// through two slot sets and asynchronous IterateAll<false> (one Matmul object in flight at a time: End.md asks for
// End between objects). Packed varlen TND input; GQA/MQA; causal/window; softcap; optional LSE.
#pragma once
#include "../common/online_softmax.h"
#include "../common/visible_keys.h"
#include "flash_attention_tiling.h"
#include "kernel_operator.h"
#include "lib/matmul_intf.h"

namespace ascend_attn_kernel {

// One AIV's share of one task: `rows` query rows of (batch, head) starting at sequence row `q_row0`.
struct RowBlock {
  uint32_t head, kv_head;
  uint32_t q_row0, rows;        // rows within the sequence
  uint32_t q_token0, k_token0;  // packed token index of the sequence's first query / key
  int64_t seqlen_q, seqlen_k;
  int64_t key_lo, key_hi;  // keys [key_lo, key_hi) some row of the block may see
};

template <typename T>
class FlashAttentionKernel {
 public:
  using AType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, T>;
  using BTransType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, T, true>;
  using CType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, float>;
  matmul::Matmul<AType, BTransType, CType> mm_qk;  // S = Q K^T
  matmul::Matmul<AType, AType, CType> mm_pv;       // O_tmp = P V

  // q [total_q, heads, d], k [total_k, kv_heads, d], v [total_k, kv_heads, dv], cu_seqlens_* int32 [batch + 1],
  // out [total_q, heads, dv], lse fp32 [heads, total_q] (untouched unless return_lse).
  __aicore__ inline void Init(GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR cu_seqlens_q, GM_ADDR cu_seqlens_k, GM_ADDR out,
                              GM_ADDR lse, GM_ADDR workspace, const FlashAttentionTiling* tiling,
                              AscendC::TPipe* pipe) {
    t_ = tiling;
    const uint32_t h = t_->num_heads, hk = t_->num_kv_heads;
    q_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(q), uint64_t(t_->total_q) * h * t_->head_dim);
    k_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(k), uint64_t(t_->total_k) * hk * t_->head_dim);
    v_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(v), uint64_t(t_->total_k) * hk * t_->head_dim_v);
    cu_q_.SetGlobalBuffer(reinterpret_cast<__gm__ int32_t*>(cu_seqlens_q), t_->batch + 1);
    cu_k_.SetGlobalBuffer(reinterpret_cast<__gm__ int32_t*>(cu_seqlens_k), t_->batch + 1);
    out_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(out), uint64_t(t_->total_q) * h * t_->head_dim_v);
    if (t_->return_lse) lse_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(lse), uint64_t(h) * t_->total_q);
    __gm__ uint8_t* aiv = AscendC::GetUserWorkspace(workspace) + AscendC::GetBlockIdx() * t_->ws_per_aiv;
    softmax_.Init(
        pipe, SoftmaxShape{t_->rows_per_aiv, t_->block_cols, t_->head_dim_v, t_->chunk_rows, t_->scale, t_->softcap},
        Slots(aiv), Slots(aiv + t_->ws_slot_bytes));
  }

  // Runs this core's contiguous task range; each AIV takes its half of every task's rows.
  __aicore__ inline void Process() {
    const uint32_t core = AscendC::GetBlockIdx() / AscendC::GetSubBlockNum();
    uint32_t task = t_->core_task_begin[core];
    const uint32_t end = t_->core_task_begin[core + 1];
    if (task >= end) return;
    // Find the batch holding the first task, then walk tasks in (batch, kv head, group, q tile) order.
    const uint32_t heads = t_->num_heads;
    uint32_t batch = 0, first = 0, tiles = QTiles(0);
    for (; task < end; ++task) {
      while (task >= first + heads * tiles) {
        first += heads * tiles;
        tiles = QTiles(++batch);
      }
      const uint32_t in_batch = task - first;
      RowBlock blk;
      if (MakeRowBlock(batch, in_batch / tiles, in_batch % tiles, blk)) ComputeRowBlock(blk);
    }
  }

 private:
  __aicore__ inline uint32_t QTiles(uint32_t batch) {
    const uint32_t sq = uint32_t(cu_q_.GetValue(batch + 1) - cu_q_.GetValue(batch));
    return (sq + 2 * t_->rows_per_aiv - 1) / (2 * t_->rows_per_aiv);
  }

  // Visible keys of sequence row `row`, which sits at position row + sk - sq.
  __aicore__ inline int64_t FirstKey(const RowBlock& b, int64_t row) const {
    return FirstVisibleKey(row + b.seqlen_k - b.seqlen_q, t_->window_left);
  }
  __aicore__ inline int64_t EndKey(const RowBlock& b, int64_t row) const {
    return EndVisibleKey(row + b.seqlen_k - b.seqlen_q, b.seqlen_k, t_->window_right);
  }

  __aicore__ inline bool MakeRowBlock(uint32_t batch, uint32_t head, uint32_t q_tile, RowBlock& b) {
    b.head = head;
    b.kv_head = head / (t_->num_heads / t_->num_kv_heads);
    b.q_token0 = uint32_t(cu_q_.GetValue(batch));
    b.k_token0 = uint32_t(cu_k_.GetValue(batch));
    b.seqlen_q = cu_q_.GetValue(batch + 1) - int64_t(b.q_token0);
    b.seqlen_k = cu_k_.GetValue(batch + 1) - int64_t(b.k_token0);
    const uint32_t rows = t_->rows_per_aiv;
    b.q_row0 = (2 * q_tile + uint32_t(AscendC::GetSubBlockIdx())) * rows;
    if (b.q_row0 >= b.seqlen_q) return false;
    b.rows = uint32_t(b.seqlen_q - b.q_row0 < rows ? b.seqlen_q - b.q_row0 : rows);
    b.key_lo = FirstKey(b, b.q_row0);
    b.key_hi = EndKey(b, b.q_row0 + b.rows - 1);
    return true;
  }

  // S, P and O_tmp slots of one pipeline stage, at `base` in this AIV's workspace.
  __aicore__ inline SoftmaxSlots<T> Slots(__gm__ uint8_t* base) const {
    SoftmaxSlots<T> slots;
    slots.s.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(base), uint64_t(t_->rows_per_aiv) * t_->block_cols);
    slots.p.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(base + t_->ws_p_offset),
                            uint64_t(t_->rows_per_aiv) * t_->block_cols);
    slots.o.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(base + t_->ws_o_offset),
                            uint64_t(t_->rows_per_aiv) * t_->head_dim_v);
    return slots;
  }

  // KV tile j (keys [k0, k0 + cols)) goes through slot j % 2. Cube order: S(0), S(1), PV(0), S(2), PV(1), ...;
  // each request is waited for before the next (End between objects), right before the vector needs its result.
  __aicore__ inline void ComputeRowBlock(const RowBlock& b) {
    softmax_.Reset(b.rows);
    const int64_t bc = t_->block_cols;  // fully masked KV tiles never start
    const uint32_t tiles = b.key_hi > b.key_lo ? uint32_t((b.key_hi - b.key_lo + bc - 1) / bc) : 0;
    if (tiles > 0) {
      IssueScores(b, 0);
      WaitCube(mm_qk);
    }
    if (tiles > 1) IssueScores(b, 1);
    for (uint32_t j = 0; j < tiles; ++j) {
      const int64_t k0 = b.key_lo + int64_t(j) * bc;
      const uint32_t cols = uint32_t(b.key_hi - k0 < bc ? b.key_hi - k0 : bc);
      softmax_.Tile(j % 2, b.rows, cols,
                    FlashVisible{b.q_row0, b.seqlen_q, b.seqlen_k, k0, t_->window_left, t_->window_right});
      if (j + 1 < tiles) WaitCube(mm_qk);  // S(j + 1), computed during that softmax
      IssuePV(b, uint32_t(k0), cols, j % 2);
      if (j > 0) softmax_.AccumulatePV((j - 1) % 2, b.rows);  // during P V of tile j
      WaitCube(mm_pv);
      if (j + 2 < tiles) IssueScores(b, j + 2);
    }
    if (tiles > 0) softmax_.AccumulatePV((tiles - 1) % 2, b.rows);
    softmax_.Finish(b.rows);
    for (uint32_t r0 = 0; r0 < b.rows; r0 += softmax_.ChunkRows()) {
      const uint32_t n = b.rows - r0 < softmax_.ChunkRows() ? b.rows - r0 : softmax_.ChunkRows();
      StoreO(b, r0, n, softmax_.Normalize(r0, n));
    }
    // lse [heads, total_q]: this block's rows are contiguous.
    if (t_->return_lse)
      softmax_.StoreLse(lse_[uint64_t(b.head) * t_->total_q + b.q_token0 + b.q_row0], 0, b.rows, 1, 0);
  }

  template <class Mm>
  __aicore__ inline void WaitCube(Mm& mm) {
    mm.WaitIterateAll();
    mm.End();
  }

  // S[rows, cols] = Q[rows, d] K[k0 : k0 + cols, d]^T of KV tile j into slot j % 2 (row stride Bc), asynchronously.
  __aicore__ inline void IssueScores(const RowBlock& b, uint32_t j) {
    const uint32_t h = t_->num_heads, hk = t_->num_kv_heads, d = t_->head_dim;
    const int64_t k0 = b.key_lo + int64_t(j) * t_->block_cols;
    const uint32_t cols = uint32_t(b.key_hi - k0 < t_->block_cols ? b.key_hi - k0 : t_->block_cols);
    mm_qk.SetOrgShape(int(b.rows), int(cols), int(h * d), int(hk * d), int(t_->block_cols));
    mm_qk.SetTensorA(q_[(uint64_t(b.q_token0) + b.q_row0) * h * d + uint64_t(b.head) * d]);
    mm_qk.SetTensorB(k_[(uint64_t(b.k_token0) + uint64_t(k0)) * hk * d + uint64_t(b.kv_head) * d], true);
    mm_qk.SetTail(int(b.rows), int(cols), int(d));
    mm_qk.template IterateAll<false>(softmax_.Slot(j % 2).s, 0, false, true);
  }

  // O_tmp[rows, dv] = P[rows, cols] V[k0 : k0 + cols, dv] from and to slot `slot`, asynchronously.
  __aicore__ inline void IssuePV(const RowBlock& b, uint32_t k0, uint32_t cols, uint32_t slot) {
    const uint32_t hk = t_->num_kv_heads, dv = t_->head_dim_v;
    mm_pv.SetOrgShape(int(b.rows), int(hk * dv), int(t_->block_cols), int(cols), int(dv));
    mm_pv.SetTensorA(softmax_.Slot(slot).p);
    mm_pv.SetTensorB(v_[(uint64_t(b.k_token0) + k0) * hk * dv + uint64_t(b.kv_head) * dv]);
    mm_pv.SetTail(int(b.rows), int(dv), int(cols));
    mm_pv.template IterateAll<false>(softmax_.Slot(slot).o, 0, false, true);
  }

  // Normalized rows [r0, r0 + n) in the output dtype to out [total_q, heads, dv].
  __aicore__ inline void StoreO(const RowBlock& b, uint32_t r0, uint32_t n, const AscendC::LocalTensor<float>& o) {
    const uint32_t dv = t_->head_dim_v, row_stride = t_->num_heads * dv;
    AscendC::LocalTensor<T> y = softmax_.CastOut(o, n * dv);
    const uint64_t token = uint64_t(b.q_token0) + b.q_row0 + r0;
    AscendC::DataCopyPad(out_[token * row_stride + uint64_t(b.head) * dv], y,
                         AscendC::DataCopyExtParams(uint16_t(n), dv * sizeof(T), 0, (row_stride - dv) * sizeof(T), 0));
    softmax_.FreeOut(y);
  }

  const FlashAttentionTiling* t_ = nullptr;
  AscendC::GlobalTensor<T> q_, k_, v_, out_;
  AscendC::GlobalTensor<int32_t> cu_q_, cu_k_;
  AscendC::GlobalTensor<float> lse_;
  OnlineSoftmaxRows<T> softmax_;
};

}  // namespace ascend_attn_kernel
