// The vector side of a C+V attention kernel for the query rows of one AIV (64 or 128): fp32 online softmax over KV
// tiles whose scores the cube wrote to a GM slot, P written back for the cube, O accumulated in UB. Every step works on
// a whole chunk of rows at once (row maxima and sums by per-repeat reductions, row statistics broadcast from [rows, 8]
// with a block stride of 0), so the vector pipe never waits for the scalar unit and the instruction count does not
// grow with the rows. Two S/P/O_tmp slot pairs and two rescale factors let the caller keep the cube one tile ahead.
// Synchronisation: the TQues order MTE2 -> V -> MTE3; the compiler's auto-sync orders scalar reads of vector results
// (on by default for kernel direct launch; scripts/build.sh passes --cce-auto-sync); what neither sees is ordered
// here by hand.
#pragma once
#include "kernel_operator.h"
#include "row_ops.h"
#include "softmax_ub.h"

namespace ascend_attn_kernel {

// Below every real score; keeps exp(m_old - m_new) finite for rows that have seen no key yet.
constexpr float kNoScore = -3.0e38f;

struct SoftmaxShape {
  uint32_t rows;        // the AIV's query rows at most (a multiple of 8): O and the statistics of all stay in UB
  uint32_t block_cols;  // Bc: row stride of the S and P slots (multiple of 16)
  uint32_t head_dim_v;  // row stride of the O_tmp slot and of O in UB (multiple of 16)
  uint32_t chunk_rows;  // rows kept in UB at once
  float scale, softcap;
  // O_tmp rows may hold the products of `o_heads` heads side by side ([rows, o_heads * dv]): row r's own are the
  // dv columns of head (r / o_group) % o_heads (paged_attention's items of several kv heads).
  uint32_t o_heads = 1, o_group = 1;
};

// The GM slots of one pipeline stage: scores from the cube, probabilities for it, and its P V.
template <typename T>
struct SoftmaxSlots {
  AscendC::GlobalTensor<float> s;  // fp32 [rows, Bc]
  AscendC::GlobalTensor<T> p;      // [rows, Bc]
  AscendC::GlobalTensor<float> o;  // fp32 [rows, o_heads * dv]
};

template <typename T>
class OnlineSoftmaxRows {
 public:
  __aicore__ inline void Init(AscendC::TPipe* pipe, const SoftmaxShape& shape, const SoftmaxSlots<T>& slot0,
                              const SoftmaxSlots<T>& slot1) {
    shape_ = shape;
    slots_[0] = slot0, slots_[1] = slot1;
    const SoftmaxUbPlan ub =
        SoftmaxUbLayout(shape.block_cols, shape.head_dim_v, shape.chunk_rows, sizeof(T), shape.rows);
    pipe->InitBuffer(in_que_, kSoftmaxInDepth, ub.in_bytes);
    pipe->InitBuffer(out_que_, 1, ub.out_bytes);
    pipe->InitBuffer(o_acc_buf_, ub.o_acc_bytes);
    pipe->InitBuffer(stat_buf_, ub.stat_bytes);
    pipe->InitBuffer(work_buf_, ub.work_bytes);
    const uint32_t stat = shape.rows * kStatLanes;  // elements of one [rows, 8] statistic
    o_acc_ = o_acc_buf_.Get<float>();
    row_max_ = stat_buf_.Get<float>();
    row_sum_ = row_max_[stat];
    alpha_[0] = row_max_[2 * stat];
    alpha_[1] = row_max_[3 * stat];
    lse_ = row_max_[4 * stat];
    row_mask_ = row_max_[5 * stat].template ReinterpretCast<uint8_t>();
    tile_stat_ = work_buf_.Get<float>();                         // [rows, 8]: a tile's row max, then its row sum
    new_max_ = tile_stat_[stat];                                 // [rows, 8]
    reduced_ = tile_stat_[2 * stat];                             // [rows]: one value per row
    fold_ = tile_stat_[2 * stat + Round32(shape.rows * 4) / 4];  // [chunk_rows, 64]
  }

  __aicore__ inline uint32_t ChunkRows() const { return shape_.chunk_rows; }
  __aicore__ inline const SoftmaxSlots<T>& Slot(uint32_t i) const { return slots_[i]; }

  __aicore__ inline void Reset(uint32_t rows) {
    AscendC::Duplicate(row_max_, kNoScore, int32_t(rows * kStatLanes));
    AscendC::Duplicate(row_sum_, 0.0f, int32_t(rows * kStatLanes));
    AscendC::Duplicate(o_acc_, 0.0f, int32_t(rows * shape_.head_dim_v));
  }

  // One KV tile of `cols` keys from slot `slot`: scale, softcap, mask, update the running max and sum, write
  // P = exp(S - max) to the slot and keep the tile's rescale factor alpha under the slot's index until
  // AccumulatePV(slot). visible(i, lo, hi), an __aicore__ functor, sets the keys row i may see as [lo, hi) relative
  // to the tile's first key.
  template <class Visible>
  __aicore__ inline void Tile(uint32_t slot, uint32_t rows, uint32_t cols, const Visible& visible) {
    for (uint32_t r0 = 0; r0 < rows; r0 += shape_.chunk_rows) {
      TileChunk(slot, r0, Min(shape_.chunk_rows, rows - r0), cols, visible);
    }
    // P leaves through MTE3 and the cube reads it from GM next: the scalar unit, which sends the Matmul request,
    // waits for the copies (the compiler cannot see that dependency, so it inserts no sync for it).
    const AscendC::TEventID mte3_s = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE3_S);
    AscendC::SetFlag<AscendC::HardEvent::MTE3_S>(mte3_s);
    AscendC::WaitFlag<AscendC::HardEvent::MTE3_S>(mte3_s);
  }

  // O = alpha * O + O_tmp with the alpha of the tile whose P V the cube wrote to slot `slot`.
  __aicore__ inline void AccumulatePV(uint32_t slot, uint32_t rows) {
    const uint32_t dv = shape_.head_dim_v, heads = shape_.o_heads, group = shape_.o_group;
    for (uint32_t r0 = 0; r0 < rows; r0 += shape_.chunk_rows) {
      const uint32_t n = Min(shape_.chunk_rows, rows - r0);
      AscendC::LocalTensor<float> o_tmp = in_que_.AllocTensor<float>();
      if (heads == 1) {
        AscendC::DataCopy(o_tmp, slots_[slot].o[r0 * dv], n * dv);
      } else {  // each run of `group` rows of one head: its dv columns of [rows, heads * dv]
        const uint16_t blocks = uint16_t(dv * sizeof(float) / 32), gap = uint16_t((heads - 1) * blocks);
        for (uint32_t r = r0; r < r0 + n;) {
          const uint32_t run = Min(group - r % group, r0 + n - r);
          AscendC::DataCopy(o_tmp[(r - r0) * dv], slots_[slot].o[(r * heads + (r / group) % heads) * dv],
                            AscendC::DataCopyParams(uint16_t(run), blocks, gap, 0));
          r += run;
        }
      }
      in_que_.EnQue(o_tmp);
      o_tmp = in_que_.DeQue<float>();
      AscendC::LocalTensor<float> o = o_acc_[r0 * dv];
      RowsOp<RowOp::kMul>(o, alpha_[slot][r0 * kStatLanes], n, dv);
      AscendC::Add(o, o, o_tmp, int32_t(n * dv));
      in_que_.FreeTensor(o_tmp);
    }
  }

  // After the last tile of `rows` rows: lse = max + ln(l) per row as [rows, 8] (-inf for rows that saw no key) and
  // the divisor max(l, 1). A row that saw a key has l >= 1 (its max contributes exp(0)); one that saw none has l = 0
  // and O = 0, which stays 0. No scalar work, so the instruction stream never depends on the data.
  __aicore__ inline void Finish(uint32_t rows) {
    const int32_t n = int32_t((rows + 7) / 8 * 8 * kStatLanes);  // whole 256-byte groups, as Compare needs
    AscendC::Maxs(divisor(), row_sum_, 1.0f, n);
    AscendC::Compare(row_mask_, row_sum_, divisor(), AscendC::CMPMODE::EQ, uint32_t(n));
    AscendC::Ln(lse_, divisor(), n);
    AscendC::Add(lse_, lse_, row_max_, n);
    AscendC::Select(lse_, row_mask_, lse_, -kInf, AscendC::SELMODE::VSEL_TENSOR_SCALAR_MODE, uint32_t(n));
  }

  // O[r0 : r0 + n] /= max(l, 1), after Finish; returns the fp32 rows [n, dv].
  __aicore__ inline AscendC::LocalTensor<float> Normalize(uint32_t r0, uint32_t n) {
    AscendC::LocalTensor<float> o = o_acc_[r0 * shape_.head_dim_v];
    RowsOp<RowOp::kDiv>(o, divisor()[r0 * kStatLanes], n, shape_.head_dim_v);
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
  // After the last tile no alpha is pending: slot 0's holds the divisor.
  __aicore__ inline const AscendC::LocalTensor<float>& divisor() const { return alpha_[0]; }

  // The chunk sits in UB as [n, padded] (padded = cols rounded up to 16), read from and written back to slots of row
  // stride Bc, so every whole-chunk instruction covers exactly the tile's columns.
  template <class Visible>
  __aicore__ inline void TileChunk(uint32_t slot, uint32_t r0, uint32_t n, uint32_t cols, const Visible& visible) {
    const uint32_t width = shape_.block_cols, padded = (cols + 15) / 16 * 16, count = n * padded;
    AscendC::LocalTensor<float> s = in_que_.AllocTensor<float>();
    AscendC::DataCopy(s, slots_[slot].s[r0 * width],
                      AscendC::DataCopyParams(uint16_t(n), uint16_t(padded * sizeof(float) / 32),
                                              uint16_t((width - padded) * sizeof(float) / 32), 0));
    in_que_.EnQue(s);
    s = in_que_.DeQue<float>();
    AscendC::Muls(s, s, shape_.scale, int32_t(count));
    if (shape_.softcap > 0.0f) SoftCap(s, count);
    for (uint32_t r = 0; r < n; ++r) {  // instructions only for rows that do not see the whole tile
      int64_t lo = 0, hi = 0;
      visible(r0 + r, lo, hi);
      MaskColumns(s[r * padded], lo, hi, cols, padded);
    }
    // m_new = max(m, rowmax s); alpha = exp(m - m_new); m = m_new.
    const uint32_t st = r0 * kStatLanes, stats = n * kStatLanes;
    RowReduceStat<RowOp::kMax>(tile_stat_, s, n, padded);
    AscendC::LocalTensor<float> m = row_max_[st], alpha = alpha_[slot][st];
    AscendC::Max(new_max_, m, tile_stat_, int32_t(stats));
    AscendC::Sub(alpha, m, new_max_, int32_t(stats));
    AscendC::Exp(alpha, alpha, int32_t(stats));
    AscendC::Adds(m, new_max_, 0.0f, int32_t(stats));
    // p = exp(s - m_new); l = alpha l + rowsum p.
    RowsOp<RowOp::kSub>(s, new_max_, n, padded);
    AscendC::Exp(s, s, int32_t(count));
    RowReduceStat<RowOp::kAdd>(tile_stat_, s, n, padded);
    AscendC::LocalTensor<float> l = row_sum_[st];
    AscendC::Mul(l, l, alpha, int32_t(stats));
    AscendC::Add(l, l, tile_stat_, int32_t(stats));
    AscendC::LocalTensor<T> p = out_que_.AllocTensor<T>();
    AscendC::Cast(p, s, AscendC::RoundMode::CAST_RINT, int32_t(count));
    in_que_.FreeTensor(s);
    out_que_.EnQue(p);
    p = out_que_.DeQue<T>();
    AscendC::DataCopy(slots_[slot].p[r0 * width], p,
                      AscendC::DataCopyParams(uint16_t(n), uint16_t(padded * sizeof(T) / 32), 0,
                                              uint16_t((width - padded) * sizeof(T) / 32)));
    out_que_.FreeTensor(p);
  }

  // dst [n, 8] = the max or sum of each row of block [n, cols], broadcast over the row's 8 lanes by Brcb (dst holds
  // the row's partial results first).
  template <RowOp kOp>
  __aicore__ inline void RowReduceStat(const AscendC::LocalTensor<float>& dst, const AscendC::LocalTensor<float>& block,
                                       uint32_t n, uint32_t cols) {
    RowReduce<kOp>(reduced_, block, n, cols, fold_, dst);
    AscendC::Brcb(dst, reduced_, uint8_t((n + 7) / 8), AscendC::BrcbRepeatParams(1, 8));
  }

  // s = softcap * tanh(s / softcap) in place, with tanh(y) = 1 - 2 / (exp(2y) + 1) (saturates correctly at +-inf).
  __aicore__ inline void SoftCap(const AscendC::LocalTensor<float>& s, uint32_t count) {
    const int32_t c = int32_t(count);
    AscendC::Muls(s, s, 2.0f / shape_.softcap, c);
    AscendC::Exp(s, s, c);
    AscendC::Adds(s, s, 1.0f, c);
    AscendC::Reciprocal(s, s, c);
    AscendC::Muls(s, s, -2.0f * shape_.softcap, c);
    AscendC::Adds(s, s, shape_.softcap, c);
  }

  SoftmaxShape shape_;
  SoftmaxSlots<T> slots_[2];
  AscendC::TQue<AscendC::TPosition::VECIN, kSoftmaxInDepth> in_que_;
  AscendC::TQue<AscendC::TPosition::VECOUT, 1> out_que_;
  AscendC::TBuf<AscendC::TPosition::VECCALC> o_acc_buf_, stat_buf_, work_buf_;
  AscendC::LocalTensor<float> o_acc_, row_max_, row_sum_, alpha_[2], lse_, tile_stat_, new_max_, reduced_, fold_;
  AscendC::LocalTensor<uint8_t> row_mask_;
};

}  // namespace ascend_attn_kernel
