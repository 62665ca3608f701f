// The vector side of flash_attention_grad for one AIV, in UB and fp32: from the scores S and dP = dO V^T the cube left
// in GM slots, P = exp(S' - lse) and dS = P * (dP - D) (times the softcap derivative) for the cube's next products;
// the row passes around them (D = rowsum(dO * O), zero fills, the scaled casts of the fp32 accumulators to the output
// dtype). Every step works on a whole chunk of rows at once, with per-row statistics broadcast from [rows, 8] with a
// block stride of 0, so the instruction stream never depends on the data.
// Synchronisation: the TQues order MTE2 -> V -> MTE3; the compiler's auto-sync orders the vector's own dependencies;
// what neither sees (the cube reading what MTE3 wrote, or overwriting what MTE2 read) is ordered here by an MTE3 -> S
// wait before the caller's next Matmul request.
#pragma once
#include "../common/online_softmax.h"  // kNoScore
#include "../common/row_ops.h"
#include "grad_ub.h"
#include "kernel_operator.h"

namespace ascend_attn_kernel {

// The GM slots of one step: the cube's S and dP, and the P and dS the vector leaves for the cube.
template <typename T>
struct GradSlots {
  AscendC::GlobalTensor<float> s, dp;  // fp32 [Bq, Bk]
  AscendC::GlobalTensor<T> p, ds;      // [Bq, Bk]
};

struct GradShape {
  uint32_t block_keys;  // Bk: row stride of the slots (multiple of 16)
  uint32_t block_rows;  // Bq: most query rows of a step
  uint32_t chunk_rows;  // rows kept in UB at once
  uint32_t width;       // widest chunk row: max(Bk, head_dim, head_dim_v)
  float scale, softcap;
};

template <typename T>
class GradVector {
 public:
  __aicore__ inline void Init(AscendC::TPipe* pipe, const GradShape& shape) {
    shape_ = shape;
    const GradUbPlan ub = GradUbLayout(shape.width, shape.chunk_rows, shape.block_rows);
    pipe->InitBuffer(in_que_, kGradInBuffers, ub.buffer_bytes);
    pipe->InitBuffer(out_que_, kGradOutBuffers, ub.buffer_bytes);
    pipe->InitBuffer(work_buf_, ub.work_bytes);
    pipe->InitBuffer(stat_buf_, ub.stat_bytes);
    const uint32_t chunk = shape.chunk_rows * shape.width;
    work_a_ = work_buf_.Get<float>();
    work_b_ = work_a_[chunk];
    fold_ = work_a_[2 * chunk];
    lse_ = stat_buf_.Get<float>();
    d_ = lse_[shape.block_rows * kStatLanes];
    buffer_floats_ = ub.buffer_bytes / 4;
  }

  // lse (fp32, the step's `rows` query rows of one head, contiguous) and D (the same rows) as [rows, 8] statistics.
  // lse is floored at kNoScore: a row that sees no key has lse -inf, and exp(-inf - (-inf)) would be NaN, while
  // exp(-inf - kNoScore) is the 0 its P must be.
  __aicore__ inline void LoadStats(const AscendC::GlobalTensor<float>& lse, const AscendC::GlobalTensor<float>& d,
                                   uint32_t rows) {
    const uint32_t at = Round32(rows * 4) / 4;
    AscendC::LocalTensor<float> in = in_que_.AllocTensor<float>();
    const AscendC::DataCopyPadExtParams<float> no_pad(false, 0, 0, 0.0f);
    AscendC::DataCopyPad(in, lse, AscendC::DataCopyExtParams(1, rows * 4, 0, 0, 0), no_pad);
    AscendC::DataCopyPad(in[at], d, AscendC::DataCopyExtParams(1, rows * 4, 0, 0, 0), no_pad);
    in_que_.EnQue(in);
    in = in_que_.DeQue<float>();
    AscendC::Maxs(in, in, kNoScore, int32_t(rows));
    // Brcb reads whole groups of 8 values: the lanes past `rows` carry whatever the buffer held, into stat rows no
    // step reads.
    const uint8_t groups = uint8_t((rows + 7) / 8);
    AscendC::Brcb(lse_, in, groups, AscendC::BrcbRepeatParams(1, 8));
    AscendC::Brcb(d_, in[at], groups, AscendC::BrcbRepeatParams(1, 8));
    in_que_.FreeTensor(in);
  }

  // One step of `rows` query rows x `cols` keys (after LoadStats of those rows): reads S and dP from the slots and
  // writes P = exp(S' - lse) and dS = P * (dP - D) to them, where S' = scale * S, or softcap * tanh(scale * S /
  // softcap) with softcap; then dS carries dS'/dS'' = r (1 - r) with r = 1 / (exp(2 y) + 1), y = scale * S / softcap,
  // a quarter of the softcap derivative 1 - tanh(y)^2 (the tiling folds the 4 into grad_scale). visible(i, lo, hi),
  // an __aicore__ functor, sets the keys row i may see as [lo, hi) relative to the step's first key; the others get
  // P = 0. The cube reads P and dS next: the scalar unit, which sends its requests, waits for the copies.
  template <class Visible>
  __aicore__ inline void Step(const GradSlots<T>& slots, uint32_t rows, uint32_t cols, const Visible& visible) {
    for (uint32_t r0 = 0; r0 < rows; r0 += shape_.chunk_rows) {
      StepChunk(slots, r0, Min(shape_.chunk_rows, rows - r0), cols, visible);
    }
    WaitCopiesOut();
  }

  // fp32 rows acc [rows, width] (row stride width) times `scale`, in the output dtype, to `rows` rows of dst that are
  // `dst_stride` elements apart. The caller's next Matmul request may overwrite acc.
  __aicore__ inline void Store(const AscendC::GlobalTensor<float>& acc, uint32_t rows, uint32_t width, float scale,
                               const AscendC::GlobalTensor<T>& dst, uint64_t dst_stride) {
    const uint32_t per = buffer_floats_ / width;  // rows of `width` floats one queue buffer holds
    for (uint32_t r0 = 0; r0 < rows; r0 += per) {
      const uint32_t n = Min(per, rows - r0), count = n * width;
      AscendC::LocalTensor<float> x = in_que_.AllocTensor<float>();
      AscendC::DataCopy(x, acc[r0 * width], count);
      in_que_.EnQue(x);
      x = in_que_.DeQue<float>();
      AscendC::Muls(x, x, scale, int32_t(count));
      AscendC::LocalTensor<T> y = out_que_.AllocTensor<T>();
      AscendC::Cast(y, x, AscendC::RoundMode::CAST_RINT, int32_t(count));
      in_que_.FreeTensor(x);
      StoreRows(y, n, width, dst[r0 * dst_stride], dst_stride);
    }
    WaitCopiesOut();
  }

  // `rows` rows of `width` zeros in the output dtype, `dst_stride` elements apart (gradients no query or key reaches).
  __aicore__ inline void StoreZeros(uint32_t rows, uint32_t width, const AscendC::GlobalTensor<T>& dst,
                                    uint64_t dst_stride) {
    const uint32_t per = buffer_floats_ / width;
    for (uint32_t r0 = 0; r0 < rows; r0 += per) {
      const uint32_t n = Min(per, rows - r0);
      AscendC::LocalTensor<T> y = out_que_.AllocTensor<T>();
      AscendC::Duplicate(y, T(0.0f), int32_t(n * width));
      StoreRows(y, n, width, dst[r0 * dst_stride], dst_stride);
    }
  }

  // count fp32 zeros to dst (count a multiple of 8: whole 32-byte blocks).
  __aicore__ inline void FillZeros(const AscendC::GlobalTensor<float>& dst, uint64_t count) {
    const uint32_t per = buffer_floats_;
    AscendC::LocalTensor<float> z = out_que_.AllocTensor<float>();
    AscendC::Duplicate(z, 0.0f, int32_t(per));
    out_que_.EnQue(z);
    z = out_que_.DeQue<float>();
    for (uint64_t at = 0; at < count; at += per) {
      AscendC::DataCopy(dst[at], z, uint32_t(count - at < per ? count - at : per));
    }
    out_que_.FreeTensor(z);
  }

  // d[r] = sum_c dout[r, c] * out[r, c] in fp32 for `rows` rows of `width` elements, `src_stride` elements apart in
  // dout and out; d contiguous.
  __aicore__ inline void RowDots(const AscendC::GlobalTensor<T>& dout, const AscendC::GlobalTensor<T>& out,
                                 uint32_t rows, uint32_t width, uint64_t src_stride,
                                 const AscendC::GlobalTensor<float>& d) {
    const uint32_t per = Min(shape_.chunk_rows, buffer_floats_ / width);
    const AscendC::DataCopyExtParams rows_in(1, width * sizeof(T), uint32_t((src_stride - width) * sizeof(T)), 0, 0);
    const AscendC::DataCopyPadExtParams<T> no_pad(false, 0, 0, T(0.0f));
    for (uint32_t r0 = 0; r0 < rows; r0 += per) {
      const uint32_t n = Min(per, rows - r0), count = n * width;
      AscendC::DataCopyExtParams p = rows_in;
      p.blockCount = uint16_t(n);
      AscendC::LocalTensor<T> a = in_que_.AllocTensor<T>();
      AscendC::DataCopyPad(a, dout[r0 * src_stride], p, no_pad);
      in_que_.EnQue(a);
      AscendC::LocalTensor<T> b = in_que_.AllocTensor<T>();
      AscendC::DataCopyPad(b, out[r0 * src_stride], p, no_pad);
      in_que_.EnQue(b);
      a = in_que_.DeQue<T>();
      b = in_que_.DeQue<T>();
      AscendC::Cast(work_a_, a, AscendC::RoundMode::CAST_NONE, int32_t(count));
      AscendC::Cast(work_b_, b, AscendC::RoundMode::CAST_NONE, int32_t(count));
      in_que_.FreeTensor(a);
      in_que_.FreeTensor(b);
      AscendC::Mul(work_a_, work_a_, work_b_, int32_t(count));
      AscendC::LocalTensor<float> y = out_que_.AllocTensor<float>();
      RowReduce<RowOp::kAdd>(y, work_a_, n, width, fold_, work_b_);  // work_b_ is free again after the Mul
      out_que_.EnQue(y);
      y = out_que_.DeQue<float>();
      AscendC::DataCopyPad(d[r0], y, AscendC::DataCopyExtParams(1, n * 4, 0, 0, 0));
      out_que_.FreeTensor(y);
    }
  }

  // The scalar unit waits until every copy to GM issued so far is done (the cube reads or overwrites what they
  // touched next; the compiler cannot see that dependency, so it inserts no sync for it).
  __aicore__ inline void WaitCopiesOut() {
    const AscendC::TEventID mte3_s = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE3_S);
    AscendC::SetFlag<AscendC::HardEvent::MTE3_S>(mte3_s);
    AscendC::WaitFlag<AscendC::HardEvent::MTE3_S>(mte3_s);
  }

 private:
  static __aicore__ inline uint32_t Min(uint32_t a, uint32_t b) { return a < b ? a : b; }

  // y (an out-queue tensor of n rows of `width` values) to n rows of dst `dst_stride` elements apart.
  __aicore__ inline void StoreRows(AscendC::LocalTensor<T>& y, uint32_t n, uint32_t width,
                                   const AscendC::GlobalTensor<T>& dst, uint64_t dst_stride) {
    out_que_.EnQue(y);
    y = out_que_.DeQue<T>();
    AscendC::DataCopyPad(
        dst, y,
        AscendC::DataCopyExtParams(uint16_t(n), width * sizeof(T), 0, uint32_t((dst_stride - width) * sizeof(T)), 0));
    out_que_.FreeTensor(y);
  }

  // Rows [r0, r0 + n) of a step: they sit in UB as [n, padded] (padded = cols rounded up to 16), read from and written
  // back to slots of row stride Bk. Columns past `cols` of S are masked; those of dP hold what the slot held, so dS
  // there is garbage the cube never reads (its products take only the step's `cols` keys).
  template <class Visible>
  __aicore__ inline void StepChunk(const GradSlots<T>& slots, uint32_t r0, uint32_t n, uint32_t cols,
                                   const Visible& visible) {
    const uint32_t width = shape_.block_keys, padded = (cols + 15) / 16 * 16;
    const int32_t count = int32_t(n * padded);
    const AscendC::DataCopyParams rows_in(uint16_t(n), uint16_t(padded * 4 / 32), uint16_t((width - padded) * 4 / 32),
                                          0);
    AscendC::LocalTensor<float> s = in_que_.AllocTensor<float>();
    AscendC::DataCopy(s, slots.s[r0 * width], rows_in);
    in_que_.EnQue(s);
    AscendC::LocalTensor<float> dp = in_que_.AllocTensor<float>();
    AscendC::DataCopy(dp, slots.dp[r0 * width], rows_in);
    in_que_.EnQue(dp);
    s = in_que_.DeQue<float>();
    dp = in_que_.DeQue<float>();
    const bool capped = shape_.softcap > 0.0f;
    if (capped) {
      // r = 1 / (exp(2 y) + 1) with y = scale * S / softcap; tanh(y) = 1 - 2 r (saturates correctly at +-inf), so
      // S' = softcap - 2 softcap r, and (1 - tanh(y)^2) / 4 = r - r^2.
      AscendC::Muls(s, s, 2.0f * shape_.scale / shape_.softcap, count);
      AscendC::Exp(s, s, count);
      AscendC::Adds(s, s, 1.0f, count);
      AscendC::Reciprocal(s, s, count);
      AscendC::Mul(work_a_, s, s, count);
      AscendC::Sub(work_a_, s, work_a_, count);
      AscendC::Muls(s, s, -2.0f * shape_.softcap, count);
      AscendC::Adds(s, s, shape_.softcap, count);
    } else {
      AscendC::Muls(s, s, shape_.scale, count);
    }
    for (uint32_t r = 0; r < n; ++r) {  // instructions only for rows that do not see the whole step
      int64_t lo = 0, hi = 0;
      visible(r0 + r, lo, hi);
      MaskColumns(s[r * padded], lo, hi, cols, padded);
    }
    RowsOp<RowOp::kSub>(s, lse_[r0 * kStatLanes], n, padded);
    AscendC::Exp(s, s, count);  // P
    AscendC::LocalTensor<T> p = out_que_.AllocTensor<T>();
    AscendC::Cast(p, s, AscendC::RoundMode::CAST_RINT, count);
    out_que_.EnQue(p);
    RowsOp<RowOp::kSub>(dp, d_[r0 * kStatLanes], n, padded);
    AscendC::Mul(dp, dp, s, count);  // dS with respect to S'
    if (capped) AscendC::Mul(dp, dp, work_a_, count);
    AscendC::LocalTensor<T> ds = out_que_.AllocTensor<T>();
    AscendC::Cast(ds, dp, AscendC::RoundMode::CAST_RINT, count);
    out_que_.EnQue(ds);
    in_que_.FreeTensor(s);
    in_que_.FreeTensor(dp);
    const AscendC::DataCopyParams rows_out(uint16_t(n), uint16_t(padded * sizeof(T) / 32), 0,
                                           uint16_t((width - padded) * sizeof(T) / 32));
    p = out_que_.DeQue<T>();
    AscendC::DataCopy(slots.p[r0 * width], p, rows_out);
    out_que_.FreeTensor(p);
    ds = out_que_.DeQue<T>();
    AscendC::DataCopy(slots.ds[r0 * width], ds, rows_out);
    out_que_.FreeTensor(ds);
  }

  GradShape shape_;
  uint32_t buffer_floats_ = 0;  // floats of one queue buffer
  AscendC::TQue<AscendC::TPosition::VECIN, 2> in_que_;
  AscendC::TQue<AscendC::TPosition::VECOUT, 2> out_que_;
  AscendC::TBuf<AscendC::TPosition::VECCALC> work_buf_, stat_buf_;
  AscendC::LocalTensor<float> work_a_, work_b_, fold_, lse_, d_;
};

}  // namespace ascend_attn_kernel
