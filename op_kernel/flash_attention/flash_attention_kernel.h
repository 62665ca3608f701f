// FlashAttention forward for Atlas A2, vector-master C+V: each AIV owns up to 64 query rows of a 128-row task and
// drives the cube through the high-level Matmul API (S = Q K^T and O_tmp = P V into its GM workspace slots), while
// it does the fp32 online softmax in UB. Packed varlen TND input; GQA/MQA; causal/window; softcap; optional LSE.
#pragma once
#include "../common/row_ops.h"
#include "flash_attention_tiling.h"
#include "kernel_operator.h"
#include "lib/matmul_intf.h"

namespace ascend_attn_kernel {

// Below every real score; keeps exp(m_old - m_new) finite for rows that have seen no key yet.
constexpr float kNoScore = -3.0e38f;
constexpr float kInf = __builtin_inff();

// One AIV's share of one task: `rows` query rows of (batch, head) starting at sequence row `q_row0`.
struct RowBlock {
  uint32_t batch, head, kv_head;
  uint32_t q_row0, rows;        // rows within the sequence
  uint32_t q_token0, k_token0;  // packed token index of the sequence's first query / key
  uint32_t seqlen_q, seqlen_k;
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
    __gm__ uint8_t* slot = AscendC::GetUserWorkspace(workspace) + AscendC::GetBlockIdx() * t_->ws_per_aiv;
    ws_s_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(slot), uint64_t(kFlashRowsPerAiv) * t_->block_cols);
    ws_p_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(slot + t_->ws_p_offset),
                          uint64_t(kFlashRowsPerAiv) * t_->block_cols);
    ws_o_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(slot + t_->ws_o_offset),
                          uint64_t(kFlashRowsPerAiv) * t_->head_dim_v);

    const FlashUbPlan ub = FlashUbLayout(t_->block_cols, t_->head_dim_v, t_->chunk_rows, sizeof(T), t_->softcap > 0);
    pipe->InitBuffer(in_que_, 1, ub.in_bytes);
    pipe->InitBuffer(out_que_, 1, ub.out_bytes);
    pipe->InitBuffer(o_acc_buf_, ub.o_acc_bytes);
    pipe->InitBuffer(stat_buf_, ub.stat_bytes);
    pipe->InitBuffer(work_buf_, ub.work_bytes);
    if (ub.softcap_bytes) pipe->InitBuffer(cap_buf_, ub.softcap_bytes);
    constexpr uint32_t kStat = kFlashRowsPerAiv * kFlashStatLanes;
    o_acc_ = o_acc_buf_.Get<float>();
    row_max_ = stat_buf_.Get<float>();
    row_sum_ = row_max_[kStat];
    row_alpha_ = row_max_[2 * kStat];
    lse_rows_ = row_max_[3 * kStat];
    reduce_out_ = work_buf_.Get<float>();
    reduce_tmp_ = reduce_out_[8];
  }

  // Runs this core's contiguous task range; each AIV takes its half of every task's rows.
  __aicore__ inline void Process() {
    const uint32_t core = AscendC::GetBlockIdx() / AscendC::GetSubBlockNum();
    uint32_t task = t_->core_task_begin[core];
    const uint32_t end = t_->core_task_begin[core + 1];
    if (task >= end) return;
    // Find the batch holding the first task, then walk tasks in (batch, kv head, group, q tile) order.
    const uint32_t group = t_->num_heads / t_->num_kv_heads;
    uint32_t batch = 0, first = 0, tiles = 0;
    for (;; ++batch) {
      tiles = QTiles(batch);
      const uint32_t n = t_->num_kv_heads * group * tiles;
      if (task < first + n) break;
      first += n;
    }
    for (; task < end; ++task) {
      while (task >= first + t_->num_kv_heads * group * tiles) {
        first += t_->num_kv_heads * group * tiles;
        tiles = QTiles(++batch);
      }
      const uint32_t in_batch = task - first, q_tile = in_batch % tiles, head = in_batch / tiles;
      RowBlock blk;
      if (MakeRowBlock(batch, head, q_tile, blk)) ComputeRowBlock(blk);
    }
  }

 private:
  __aicore__ inline uint32_t QTiles(uint32_t batch) {
    const uint32_t sq = uint32_t(cu_q_.GetValue(batch + 1) - cu_q_.GetValue(batch));
    return (sq + kFlashBlockRows - 1) / kFlashBlockRows;
  }

  // Visible keys of sequence row i: [i + sk - sq - left, i + sk - sq + right] within [0, sk).
  __aicore__ inline int64_t FirstKey(const RowBlock& b, int64_t row) const {
    const int64_t lo = t_->window_left < 0 ? 0 : row + b.seqlen_k - b.seqlen_q - t_->window_left;
    return lo < 0 ? 0 : lo;
  }
  __aicore__ inline int64_t EndKey(const RowBlock& b, int64_t row) const {
    const int64_t hi = t_->window_right < 0 ? b.seqlen_k : row + b.seqlen_k - b.seqlen_q + t_->window_right + 1;
    return hi > b.seqlen_k ? b.seqlen_k : hi;
  }

  __aicore__ inline bool MakeRowBlock(uint32_t batch, uint32_t head, uint32_t q_tile, RowBlock& b) {
    b.batch = batch;
    b.head = head;
    b.kv_head = head / (t_->num_heads / t_->num_kv_heads);
    b.q_token0 = uint32_t(cu_q_.GetValue(batch));
    b.k_token0 = uint32_t(cu_k_.GetValue(batch));
    b.seqlen_q = uint32_t(cu_q_.GetValue(batch + 1)) - b.q_token0;
    b.seqlen_k = uint32_t(cu_k_.GetValue(batch + 1)) - b.k_token0;
    b.q_row0 = q_tile * kFlashBlockRows + AscendC::GetSubBlockIdx() * kFlashRowsPerAiv;
    if (b.q_row0 >= b.seqlen_q) return false;
    b.rows = b.seqlen_q - b.q_row0 < kFlashRowsPerAiv ? b.seqlen_q - b.q_row0 : kFlashRowsPerAiv;
    b.key_lo = FirstKey(b, b.q_row0);
    b.key_hi = EndKey(b, b.q_row0 + b.rows - 1);
    return true;
  }

  __aicore__ inline void ComputeRowBlock(const RowBlock& b) {
    ResetRowState(b.rows);
    for (int64_t k0 = b.key_lo; k0 < b.key_hi; k0 += t_->block_cols) {  // fully masked KV tiles never start
      const uint32_t cols = uint32_t(b.key_hi - k0 < t_->block_cols ? b.key_hi - k0 : t_->block_cols);
      ComputeScores(b, uint32_t(k0), cols);
      for (uint32_t r0 = 0; r0 < b.rows; r0 += t_->chunk_rows) {
        OnlineSoftmax(b, uint32_t(k0), cols, r0, Min(t_->chunk_rows, b.rows - r0));
      }
      ComputePV(b, uint32_t(k0), cols);
      for (uint32_t r0 = 0; r0 < b.rows; r0 += t_->chunk_rows) {
        RescaleAndAccumulateO(r0, Min(t_->chunk_rows, b.rows - r0));
      }
    }
    for (uint32_t r0 = 0; r0 < b.rows; r0 += t_->chunk_rows)
      NormalizeAndStoreO(b, r0, Min(t_->chunk_rows, b.rows - r0));
    if (t_->return_lse) StoreLse(b);
  }

  static __aicore__ inline uint32_t Min(uint32_t a, uint32_t b) { return a < b ? a : b; }
  static __aicore__ inline uint32_t Pad16(uint32_t n) { return (n + 15) / 16 * 16; }

  __aicore__ inline void ResetRowState(uint32_t rows) {
    AscendC::Duplicate(row_max_, kNoScore, int32_t(rows * kFlashStatLanes));
    AscendC::Duplicate(row_sum_, 0.0f, int32_t(rows * kFlashStatLanes));
    AscendC::Duplicate(o_acc_, 0.0f, int32_t(rows * t_->head_dim_v));
  }

  // S[rows, cols] = Q[rows, d] K[k0 : k0 + cols, d]^T into the S slot (row stride Bc).
  __aicore__ inline void ComputeScores(const RowBlock& b, uint32_t k0, uint32_t cols) {
    const uint32_t h = t_->num_heads, hk = t_->num_kv_heads, d = t_->head_dim;
    mm_qk.SetOrgShape(int(b.rows), int(cols), int(h * d), int(hk * d), int(t_->block_cols));
    mm_qk.SetTensorA(q_[(uint64_t(b.q_token0) + b.q_row0) * h * d + uint64_t(b.head) * d]);
    mm_qk.SetTensorB(k_[(uint64_t(b.k_token0) + k0) * hk * d + uint64_t(b.kv_head) * d], true);
    mm_qk.SetTail(int(b.rows), int(cols), int(d));
    mm_qk.IterateAll(ws_s_);
    mm_qk.End();
  }

  // For rows [r0, r0 + n): scale, softcap, mask, update the running max and sum, write P = exp(S - max) to GM.
  __aicore__ inline void OnlineSoftmax(const RowBlock& b, uint32_t k0, uint32_t cols, uint32_t r0, uint32_t n) {
    const uint32_t width = t_->block_cols, padded = Pad16(cols);
    const uint16_t s_gap = uint16_t((width - padded) * sizeof(float) / 32);  // same row stride in GM and UB
    AscendC::LocalTensor<float> s = in_que_.AllocTensor<float>();
    AscendC::DataCopy(s, ws_s_[r0 * width],
                      AscendC::DataCopyParams(uint16_t(n), uint16_t(padded * sizeof(float) / 32), s_gap, s_gap));
    in_que_.EnQue(s);
    s = in_que_.DeQue<float>();
    AscendC::LocalTensor<T> p = out_que_.AllocTensor<T>();
    for (uint32_t r = 0; r < n; ++r) {
      const uint32_t i = r0 + r;
      AscendC::LocalTensor<float> row = s[r * width];
      AscendC::Muls(row, row, t_->scale, int32_t(padded));
      if (t_->softcap > 0.0f) SoftCap(row, padded);
      MaskRow(b, i, k0, cols, padded, row);
      UpdateRowStats(i, row, padded);
      AscendC::Cast(p[r * width], row, AscendC::RoundMode::CAST_RINT, int32_t(padded));
    }
    in_que_.FreeTensor(s);
    out_que_.EnQue(p);
    p = out_que_.DeQue<T>();
    const uint16_t gap = uint16_t((width - padded) * sizeof(T) / 32);
    AscendC::DataCopy(ws_p_[r0 * width], p,
                      AscendC::DataCopyParams(uint16_t(n), uint16_t(padded * sizeof(T) / 32), gap, gap));
    out_que_.FreeTensor(p);
  }

  // s = softcap * tanh(s / softcap), with tanh(y) = 1 - 2 / (exp(2y) + 1) (saturates correctly at +-inf).
  __aicore__ inline void SoftCap(const AscendC::LocalTensor<float>& row, uint32_t n) {
    AscendC::LocalTensor<float> e = cap_buf_.Get<float>();
    AscendC::Muls(e, row, 2.0f / t_->softcap, int32_t(n));
    AscendC::Exp(e, e, int32_t(n));
    AscendC::Adds(e, e, 1.0f, int32_t(n));
    AscendC::Reciprocal(e, e, int32_t(n));
    AscendC::Muls(e, e, -2.0f * t_->softcap, int32_t(n));
    AscendC::Adds(row, e, t_->softcap, int32_t(n));
  }

  // Columns of this tile that row i may not see (and the padding past `cols`) become -inf.
  __aicore__ inline void MaskRow(const RowBlock& b, uint32_t i, uint32_t k0, uint32_t cols, uint32_t padded,
                                 const AscendC::LocalTensor<float>& row) {
    const int64_t row_pos = b.q_row0 + i;
    int64_t lo = FirstKey(b, row_pos) - k0, hi = EndKey(b, row_pos) - k0;
    lo = lo < 0 ? 0 : (lo > padded ? padded : lo);
    hi = hi > cols ? cols : (hi < lo ? lo : hi);
    if (lo > 0) FillColumns(row, 0, uint32_t(lo), -kInf);
    if (hi < padded) FillColumns(row, uint32_t(hi), padded, -kInf);
  }

  // m' = max(m, rowmax s); p = exp(s - m'); alpha = exp(m - m'); l' = alpha l + rowsum p. Stats are [rows, 8].
  __aicore__ inline void UpdateRowStats(uint32_t i, const AscendC::LocalTensor<float>& row, uint32_t n) {
    AscendC::ReduceMax(reduce_out_, row, reduce_tmp_, int32_t(n));
    VectorToScalar();
    const float m_old = row_max_.GetValue(i * kFlashStatLanes), tile_max = reduce_out_.GetValue(0);
    const float m_new = tile_max > m_old ? tile_max : m_old;
    AscendC::Adds(row, row, -m_new, int32_t(n));
    AscendC::Exp(row, row, int32_t(n));
    AscendC::ReduceSum(reduce_out_, row, reduce_tmp_, int32_t(n));
    AscendC::LocalTensor<float> alpha = row_alpha_[i * kFlashStatLanes];
    AscendC::Duplicate(alpha, m_old - m_new, int32_t(kFlashStatLanes));
    AscendC::Exp(alpha, alpha, int32_t(kFlashStatLanes));
    VectorToScalar();
    const float l_new = alpha.GetValue(0) * row_sum_.GetValue(i * kFlashStatLanes) + reduce_out_.GetValue(0);
    AscendC::Duplicate(row_sum_[i * kFlashStatLanes], l_new, int32_t(kFlashStatLanes));
    AscendC::Duplicate(row_max_[i * kFlashStatLanes], m_new, int32_t(kFlashStatLanes));
  }

  // O_tmp[rows, dv] = P[rows, cols] V[k0 : k0 + cols, dv] into the O slot.
  __aicore__ inline void ComputePV(const RowBlock& b, uint32_t k0, uint32_t cols) {
    // P went out through MTE3; the cube reads it from GM.
    AscendC::SetFlag<AscendC::HardEvent::MTE3_S>(0);
    AscendC::WaitFlag<AscendC::HardEvent::MTE3_S>(0);
    const uint32_t hk = t_->num_kv_heads, dv = t_->head_dim_v;
    mm_pv.SetOrgShape(int(b.rows), int(hk * dv), int(t_->block_cols), int(cols), int(dv));
    mm_pv.SetTensorA(ws_p_);
    mm_pv.SetTensorB(v_[(uint64_t(b.k_token0) + k0) * hk * dv + uint64_t(b.kv_head) * dv]);
    mm_pv.SetTail(int(b.rows), int(dv), int(cols));
    mm_pv.IterateAll(ws_o_);
    mm_pv.End();
  }

  // O[r0 : r0 + n] = alpha * O + O_tmp.
  __aicore__ inline void RescaleAndAccumulateO(uint32_t r0, uint32_t n) {
    const uint32_t dv = t_->head_dim_v;
    AscendC::LocalTensor<float> o_tmp = in_que_.AllocTensor<float>();
    AscendC::DataCopy(o_tmp, ws_o_[r0 * dv], n * dv);
    in_que_.EnQue(o_tmp);
    o_tmp = in_que_.DeQue<float>();
    AscendC::LocalTensor<float> o = o_acc_[r0 * dv];
    ScaleRows<false>(o, row_alpha_[r0 * kFlashStatLanes], n, dv);
    AscendC::Add(o, o, o_tmp, int32_t(n * dv));
    in_que_.FreeTensor(o_tmp);
  }

  // out = O / l in the output dtype; rows that saw no key keep O = 0 (l is replaced by 1) and get lse -inf.
  __aicore__ inline void NormalizeAndStoreO(const RowBlock& b, uint32_t r0, uint32_t n) {
    const uint32_t dv = t_->head_dim_v;
    AscendC::LocalTensor<float> ln = reduce_out_;
    for (uint32_t i = r0; i < r0 + n; ++i) {
      AscendC::LocalTensor<float> l = row_sum_[i * kFlashStatLanes];
      AscendC::Ln(ln, l, int32_t(kFlashStatLanes));
      VectorToScalar();
      const bool empty = l.GetValue(0) == 0.0f;
      lse_rows_.SetValue(i, empty ? -kInf : row_max_.GetValue(i * kFlashStatLanes) + ln.GetValue(0));
      if (empty) AscendC::Duplicate(l, 1.0f, int32_t(kFlashStatLanes));
    }
    AscendC::LocalTensor<float> o = o_acc_[r0 * dv];
    ScaleRows<true>(o, row_sum_[r0 * kFlashStatLanes], n, dv);
    AscendC::LocalTensor<T> y = out_que_.AllocTensor<T>();
    AscendC::Cast(y, o, AscendC::RoundMode::CAST_RINT, int32_t(n * dv));
    out_que_.EnQue(y);
    y = out_que_.DeQue<T>();
    const uint32_t row_stride = t_->num_heads * dv;
    const uint64_t token = uint64_t(b.q_token0) + b.q_row0 + r0;
    AscendC::DataCopyPad(out_[token * row_stride + uint64_t(b.head) * dv], y,
                         AscendC::DataCopyExtParams(uint16_t(n), dv * sizeof(T), 0, (row_stride - dv) * sizeof(T), 0));
    out_que_.FreeTensor(y);
  }

  // lse [heads, total_q]: this block's rows are contiguous.
  __aicore__ inline void StoreLse(const RowBlock& b) {
    AscendC::SetFlag<AscendC::HardEvent::S_MTE3>(0);
    AscendC::WaitFlag<AscendC::HardEvent::S_MTE3>(0);
    const uint64_t at = uint64_t(b.head) * t_->total_q + b.q_token0 + b.q_row0;
    AscendC::DataCopyPad(lse_[at], lse_rows_, AscendC::DataCopyExtParams(1, b.rows * sizeof(float), 0, 0, 0));
  }

  const FlashAttentionTiling* t_ = nullptr;
  AscendC::GlobalTensor<T> q_, k_, v_, out_, ws_p_;
  AscendC::GlobalTensor<int32_t> cu_q_, cu_k_;
  AscendC::GlobalTensor<float> lse_, ws_s_, ws_o_;
  AscendC::TQue<AscendC::TPosition::VECIN, 1> in_que_;
  AscendC::TQue<AscendC::TPosition::VECOUT, 1> out_que_;
  AscendC::TBuf<AscendC::TPosition::VECCALC> o_acc_buf_, stat_buf_, work_buf_, cap_buf_;
  AscendC::LocalTensor<float> o_acc_, row_max_, row_sum_, row_alpha_, lse_rows_, reduce_out_, reduce_tmp_;
};

}  // namespace ascend_attn_kernel
