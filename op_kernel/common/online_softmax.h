// The vector side of a C+V attention kernel for up to 64 query rows of one AIV: fp32 online softmax over KV tiles
// whose scores the cube wrote to a GM slot, P written back for the cube, O accumulated in UB. Row statistics are
// kept as [rows, 8] fp32 so each row's factor can be broadcast with a block stride of 0. Synchronisation: the TQues
// order MTE2 -> V -> MTE3; the compiler's auto-sync orders the scalar reads of vector results (on by default for
// kernel direct launch; scripts/build.sh passes --cce-auto-sync); what neither sees is ordered here by hand.
#pragma once
#include "kernel_operator.h"
#include "row_ops.h"
#include "softmax_ub.h"

namespace ascend_attn_kernel {

// Below every real score; keeps exp(m_old - m_new) finite for rows that have seen no key yet.
constexpr float kNoScore = -3.0e38f;
constexpr float kInf = __builtin_inff();

struct SoftmaxShape {
  uint32_t block_cols;  // Bc: row stride of the S and P slots (multiple of 16)
  uint32_t head_dim_v;  // row stride of the O_tmp slot and of O in UB (multiple of 16)
  uint32_t chunk_rows;  // rows kept in UB at once
  float scale, softcap;
};

template <typename T>
class OnlineSoftmaxRows {
 public:
  // ws_s: fp32 [64, Bc] scores from the cube; ws_p: [64, Bc] probabilities for the cube; ws_o: fp32 [64, dv] P V.
  __aicore__ inline void Init(AscendC::TPipe* pipe, const SoftmaxShape& shape, const AscendC::GlobalTensor<float>& ws_s,
                              const AscendC::GlobalTensor<T>& ws_p, const AscendC::GlobalTensor<float>& ws_o) {
    shape_ = shape;
    ws_s_ = ws_s, ws_p_ = ws_p, ws_o_ = ws_o;
    const SoftmaxUbPlan ub =
        SoftmaxUbLayout(shape.block_cols, shape.head_dim_v, shape.chunk_rows, sizeof(T), shape.softcap > 0);
    pipe->InitBuffer(in_que_, 1, ub.in_bytes);
    pipe->InitBuffer(out_que_, 1, ub.out_bytes);
    pipe->InitBuffer(o_acc_buf_, ub.o_acc_bytes);
    pipe->InitBuffer(stat_buf_, ub.stat_bytes);
    pipe->InitBuffer(work_buf_, ub.work_bytes);
    if (ub.softcap_bytes) pipe->InitBuffer(cap_buf_, ub.softcap_bytes);
    constexpr uint32_t kStat = kMaxRowsPerAiv * kStatLanes;
    o_acc_ = o_acc_buf_.Get<float>();
    row_max_ = stat_buf_.Get<float>();
    row_sum_ = row_max_[kStat];
    row_alpha_ = row_max_[2 * kStat];
    lse_ = row_max_[3 * kStat];
    row_mask_ = row_max_[4 * kStat].template ReinterpretCast<uint8_t>();
    reduce_out_ = work_buf_.Get<float>();
    reduce_tmp_ = reduce_out_[8];
  }

  __aicore__ inline uint32_t ChunkRows() const { return shape_.chunk_rows; }

  __aicore__ inline void Reset(uint32_t rows) {
    AscendC::Duplicate(row_max_, kNoScore, int32_t(rows * kStatLanes));
    AscendC::Duplicate(row_sum_, 0.0f, int32_t(rows * kStatLanes));
    AscendC::Duplicate(o_acc_, 0.0f, int32_t(rows * shape_.head_dim_v));
  }

  // One KV tile of `cols` keys: scale, softcap, mask, update the running max and sum, write P = exp(S - max).
  // visible(i, lo, hi), an __aicore__ functor, sets the keys row i may see as [lo, hi) relative to the tile's first
  // key.
  template <class Visible>
  __aicore__ inline void Tile(uint32_t rows, uint32_t cols, const Visible& visible) {
    for (uint32_t r0 = 0; r0 < rows; r0 += shape_.chunk_rows) {
      TileChunk(r0, Min(shape_.chunk_rows, rows - r0), cols, visible);
    }
  }

  // O = alpha * O + O_tmp, after the cube wrote this tile's P V into the O_tmp slot.
  __aicore__ inline void AccumulatePV(uint32_t rows) {
    const uint32_t dv = shape_.head_dim_v;
    for (uint32_t r0 = 0; r0 < rows; r0 += shape_.chunk_rows) {
      const uint32_t n = Min(shape_.chunk_rows, rows - r0);
      AscendC::LocalTensor<float> o_tmp = in_que_.AllocTensor<float>();
      AscendC::DataCopy(o_tmp, ws_o_[r0 * dv], n * dv);
      in_que_.EnQue(o_tmp);
      o_tmp = in_que_.DeQue<float>();
      AscendC::LocalTensor<float> o = o_acc_[r0 * dv];
      ScaleRows<false>(o, row_alpha_[r0 * kStatLanes], n, dv);
      AscendC::Add(o, o, o_tmp, int32_t(n * dv));
      in_que_.FreeTensor(o_tmp);
    }
  }

  // After the last tile of `rows` rows: lse = max + ln(l) per row as [rows, 8] (-inf for rows that saw no key) and
  // the divisor max(l, 1) in alpha. A row that saw a key has l >= 1 (its max contributes exp(0)); one that saw none
  // has l = 0 and O = 0, which stays 0. No scalar work, so the instruction stream never depends on the data.
  __aicore__ inline void Finish(uint32_t rows) {
    const int32_t n = int32_t((rows + 7) / 8 * 8 * kStatLanes);  // whole 256-byte groups, as Compare needs
    AscendC::Maxs(row_alpha_, row_sum_, 1.0f, n);
    AscendC::Compare(row_mask_, row_sum_, row_alpha_, AscendC::CMPMODE::EQ, uint32_t(n));
    AscendC::Ln(lse_, row_alpha_, n);
    AscendC::Add(lse_, lse_, row_max_, n);
    AscendC::Select(lse_, row_mask_, lse_, -kInf, AscendC::SELMODE::VSEL_TENSOR_SCALAR_MODE, uint32_t(n));
  }

  // O[r0 : r0 + n] /= max(l, 1), after Finish; returns the fp32 rows [n, dv].
  __aicore__ inline AscendC::LocalTensor<float> Normalize(uint32_t r0, uint32_t n) {
    AscendC::LocalTensor<float> o = o_acc_[r0 * shape_.head_dim_v];
    ScaleRows<true>(o, row_alpha_[r0 * kStatLanes], n, shape_.head_dim_v);
    return o;
  }

  // lse of rows first, first + step, ... (count of them, after Finish) to consecutive GM places `gm_gap_bytes`
  // apart. The stats live in a TBuf, so the MTE3 read is ordered by hand: after the vector wrote them, and before the
  // vector writes them again.
  __aicore__ inline void StoreLse(const AscendC::GlobalTensor<float>& dst, uint32_t first, uint32_t count,
                                  uint32_t step, uint32_t gm_gap_bytes) {
    const AscendC::TEventID v_mte3 = GetTPipePtr()->FetchEventID(AscendC::HardEvent::V_MTE3);
    AscendC::SetFlag<AscendC::HardEvent::V_MTE3>(v_mte3);
    AscendC::WaitFlag<AscendC::HardEvent::V_MTE3>(v_mte3);
    // One 4-byte value per UB row of 32 bytes: the UB-side gap between selected rows is step - 1 blocks.
    AscendC::DataCopyPad(dst, lse_[first * kStatLanes],
                         AscendC::DataCopyExtParams(uint16_t(count), 4, step - 1, gm_gap_bytes, 0));
    const AscendC::TEventID mte3_v = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE3_V);
    AscendC::SetFlag<AscendC::HardEvent::MTE3_V>(mte3_v);
    AscendC::WaitFlag<AscendC::HardEvent::MTE3_V>(mte3_v);
  }

  // fp32 rows -> the output dtype in the out queue; the caller copies them out and calls FreeOut.
  __aicore__ inline AscendC::LocalTensor<T> CastOut(const AscendC::LocalTensor<float>& rows, uint32_t count) {
    AscendC::LocalTensor<T> y = out_que_.AllocTensor<T>();
    AscendC::Cast(y, rows, AscendC::RoundMode::CAST_RINT, int32_t(count));
    out_que_.EnQue(y);
    return out_que_.DeQue<T>();
  }
  __aicore__ inline void FreeOut(AscendC::LocalTensor<T>& y) { out_que_.FreeTensor(y); }

 private:
  static __aicore__ inline uint32_t Min(uint32_t a, uint32_t b) { return a < b ? a : b; }

  template <class Visible>
  __aicore__ inline void TileChunk(uint32_t r0, uint32_t n, uint32_t cols, const Visible& visible) {
    const uint32_t width = shape_.block_cols, padded = (cols + 15) / 16 * 16;
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
      AscendC::Muls(row, row, shape_.scale, int32_t(padded));
      if (shape_.softcap > 0.0f) SoftCap(row, padded);
      int64_t lo = 0, hi = 0;
      visible(i, lo, hi);
      MaskRow(row, lo, hi, cols, padded);
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
    // P leaves through MTE3 and the cube reads it from GM next: the scalar unit, which sends the Matmul request,
    // waits for the copy (the compiler cannot see that dependency, so it inserts no sync for it).
    const AscendC::TEventID mte3_s = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE3_S);
    AscendC::SetFlag<AscendC::HardEvent::MTE3_S>(mte3_s);
    AscendC::WaitFlag<AscendC::HardEvent::MTE3_S>(mte3_s);
  }

  // s = softcap * tanh(s / softcap), with tanh(y) = 1 - 2 / (exp(2y) + 1) (saturates correctly at +-inf).
  __aicore__ inline void SoftCap(const AscendC::LocalTensor<float>& row, uint32_t n) {
    AscendC::LocalTensor<float> e = cap_buf_.Get<float>();
    AscendC::Muls(e, row, 2.0f / shape_.softcap, int32_t(n));
    AscendC::Exp(e, e, int32_t(n));
    AscendC::Adds(e, e, 1.0f, int32_t(n));
    AscendC::Reciprocal(e, e, int32_t(n));
    AscendC::Muls(e, e, -2.0f * shape_.softcap, int32_t(n));
    AscendC::Adds(row, e, shape_.softcap, int32_t(n));
  }

  // Columns outside [lo, hi), and the padding past `cols`, become -inf.
  __aicore__ inline void MaskRow(const AscendC::LocalTensor<float>& row, int64_t lo, int64_t hi, uint32_t cols,
                                 uint32_t padded) {
    lo = lo < 0 ? 0 : (lo > padded ? padded : lo);
    hi = hi > cols ? cols : (hi < lo ? lo : hi);
    if (lo > 0) FillColumns(row, 0, uint32_t(lo), -kInf);
    if (hi < padded) FillColumns(row, uint32_t(hi), padded, -kInf);
  }

  // m' = max(m, rowmax s); p = exp(s - m'); alpha = exp(m - m'); l' = alpha l + rowsum p.
  __aicore__ inline void UpdateRowStats(uint32_t i, const AscendC::LocalTensor<float>& row, uint32_t n) {
    AscendC::ReduceMax(reduce_out_, row, reduce_tmp_, int32_t(n));
    const float m_old = row_max_.GetValue(i * kStatLanes), tile_max = reduce_out_.GetValue(0);
    const float m_new = tile_max > m_old ? tile_max : m_old;
    AscendC::Adds(row, row, -m_new, int32_t(n));
    AscendC::Exp(row, row, int32_t(n));
    AscendC::ReduceSum(reduce_out_, row, reduce_tmp_, int32_t(n));
    AscendC::LocalTensor<float> alpha = row_alpha_[i * kStatLanes];
    AscendC::Duplicate(alpha, m_old - m_new, int32_t(kStatLanes));
    AscendC::Exp(alpha, alpha, int32_t(kStatLanes));
    const float l_new = alpha.GetValue(0) * row_sum_.GetValue(i * kStatLanes) + reduce_out_.GetValue(0);
    AscendC::Duplicate(row_sum_[i * kStatLanes], l_new, int32_t(kStatLanes));
    AscendC::Duplicate(row_max_[i * kStatLanes], m_new, int32_t(kStatLanes));
  }

  SoftmaxShape shape_;
  AscendC::GlobalTensor<float> ws_s_, ws_o_;
  AscendC::GlobalTensor<T> ws_p_;
  AscendC::TQue<AscendC::TPosition::VECIN, 1> in_que_;
  AscendC::TQue<AscendC::TPosition::VECOUT, 1> out_que_;
  AscendC::TBuf<AscendC::TPosition::VECCALC> o_acc_buf_, stat_buf_, work_buf_, cap_buf_;
  AscendC::LocalTensor<float> o_acc_, row_max_, row_sum_, row_alpha_, lse_, reduce_out_, reduce_tmp_;
  AscendC::LocalTensor<uint8_t> row_mask_;
};

}  // namespace ascend_attn_kernel
