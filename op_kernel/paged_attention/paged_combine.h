// The combine phase of flash-decoding: after SyncAll, each AIV merges the KV splits of a share of the
// (token, head) rows from the partial O (fp32, normalized per split) and partial lse the splits left in GM:
// out = sum_j w_j O_j / sum_j w_j with w_j = exp(lse_j - m), m = max_j lse_j, and lse = m + ln sum_j w_j.
#pragma once
#include "../common/softmax_ub.h"
#include "kernel_operator.h"
#include "paged_attention_tiling.h"

namespace ascend_attn_kernel {

template <typename T>
class PagedCombine {
 public:
  // part_o fp32 [rows, max_splits, dv], part_lse fp32 [rows, max_splits] (rows = num_tokens x heads, token-major).
  __aicore__ inline void Init(AscendC::TPipe* pipe, uint32_t max_splits, uint32_t head_dim_v,
                              const AscendC::GlobalTensor<float>& part_o,
                              const AscendC::GlobalTensor<float>& part_lse) {
    max_splits_ = max_splits, dv_ = head_dim_v;
    part_o_ = part_o, part_lse_ = part_lse;
    const PagedCombineUb ub = PagedCombineLayout(max_splits, head_dim_v, sizeof(T));
    lse_at_ = ub.parts_bytes / 4;
    lse_out_at_ = ub.y_bytes / sizeof(T);
    pipe->InitBuffer(in_que_, 1, ub.parts_bytes + ub.lse_bytes);
    pipe->InitBuffer(out_que_, 1, ub.y_bytes + ub.lse_out_bytes);
    pipe->InitBuffer(calc_buf_, ub.calc_bytes);
    acc_ = calc_buf_.Get<float>();
    scratch_ = acc_[ub.acc_bytes / 4];
    reduce_ = scratch_[ub.acc_bytes / 4];
  }

  // Row `row` of `splits` splits to out[row] (dv) and, when lse is given, lse[row_lse].
  __aicore__ inline void Row(uint64_t row, uint32_t splits, const AscendC::GlobalTensor<T>& out,
                             const AscendC::GlobalTensor<float>* lse) {
    AscendC::LocalTensor<float> in = in_que_.AllocTensor<float>();
    AscendC::DataCopy(in, part_o_[row * max_splits_ * dv_], splits * dv_);
    AscendC::DataCopyPad(in[lse_at_], part_lse_[row * max_splits_], AscendC::DataCopyExtParams(1, splits * 4, 0, 0, 0),
                         AscendC::DataCopyPadExtParams<float>(false, 0, 0, 0.0f));
    in_que_.EnQue(in);
    in = in_que_.DeQue<float>();
    AscendC::LocalTensor<float> w = in[lse_at_];
    // Scalars read vector results (ordered by the compiler's auto-sync) and only become instruction operands: the
    // instruction stream is the same whatever the values, so a dry run counts exactly what a real run does.
    AscendC::ReduceMax(reduce_, w, reduce_[8], int32_t(splits));
    const float m = reduce_.GetValue(0);
    const float shift = m > -kCombineInf ? m : 0.0f;  // every split empty: all weights exp(-inf) = 0
    AscendC::Adds(w, w, -shift, int32_t(splits));
    AscendC::Exp(w, w, int32_t(splits));
    AscendC::ReduceSum(reduce_, w, reduce_[8], int32_t(splits));
    const float total = reduce_.GetValue(0);
    AscendC::Duplicate(acc_, 0.0f, int32_t(dv_));
    for (uint32_t j = 0; j < splits; ++j) {
      AscendC::Muls(scratch_, in[j * dv_], w.GetValue(j), int32_t(dv_));
      AscendC::Add(acc_, acc_, scratch_, int32_t(dv_));
    }
    AscendC::LocalTensor<T> y = out_que_.AllocTensor<T>();
    AscendC::Muls(acc_, acc_, total > 0.0f ? 1.0f / total : 0.0f, int32_t(dv_));
    AscendC::Cast(y, acc_, AscendC::RoundMode::CAST_RINT, int32_t(dv_));
    AscendC::LocalTensor<float> row_lse = y[lse_out_at_].template ReinterpretCast<float>();
    AscendC::Duplicate(row_lse, total > 0.0f ? total : 1.0f, int32_t(kStatLanes));
    AscendC::Ln(row_lse, row_lse, int32_t(kStatLanes));
    AscendC::Adds(row_lse, row_lse, total > 0.0f ? shift : -kCombineInf, int32_t(kStatLanes));  // -inf: no key
    in_que_.FreeTensor(in);
    out_que_.EnQue(y);
    y = out_que_.DeQue<T>();
    AscendC::DataCopyPad(out, y, AscendC::DataCopyExtParams(1, dv_ * sizeof(T), 0, 0, 0));
    if (lse != nullptr) {
      AscendC::DataCopyPad(*lse, y[lse_out_at_].template ReinterpretCast<float>(),
                           AscendC::DataCopyExtParams(1, 4, 0, 0, 0));
    }
    out_que_.FreeTensor(y);
  }

 private:
  static constexpr float kCombineInf = __builtin_inff();
  uint32_t max_splits_ = 0, dv_ = 0, lse_at_ = 0, lse_out_at_ = 0;
  AscendC::GlobalTensor<float> part_o_, part_lse_;
  AscendC::TQue<AscendC::TPosition::VECIN, 1> in_que_;
  AscendC::TQue<AscendC::TPosition::VECOUT, 1> out_que_;
  AscendC::TBuf<AscendC::TPosition::VECCALC> calc_buf_;
  AscendC::LocalTensor<float> acc_, scratch_, reduce_;
};

}  // namespace ascend_attn_kernel
