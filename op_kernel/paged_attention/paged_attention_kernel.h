// PagedAttention for Atlas A2, vector-master C+V like flash_attention: every AIV is a worker running a contiguous
// range of (sequence, kv head, token block, KV split) items. The query rows of an item are its tokens x the q heads
// of one kv head (GQA packed into the matmul's M). K/V pages are read in place through the block table, one Matmul
// per page. With more than one split (flash-decoding), items leave normalized partial O and lse in the workspace;
// after SyncAll every AIV combines a share of the (token, head) rows.
#pragma once
#include "../common/online_softmax.h"
#include "../common/visible_keys.h"
#include "kernel_operator.h"
#include "lib/matmul_intf.h"
#include "paged_attention_tiling.h"

namespace ascend_attn_kernel {

// One work item: `rows` = tokens x group query rows of sequence `seq` and kv head `kv_head`, over keys [key_lo,
// key_hi).
struct PagedItem {
  uint32_t seq, kv_head, split;
  uint32_t token0, tokens, rows;  // packed index of the first query token of the item; its tokens; their rows
  int64_t q_len, ctx;             // the sequence's query tokens and keys; token t sits at position ctx - q_len + t
  uint32_t first_q;               // token index of the item's first query within the sequence
  int64_t key_lo, key_hi;
};

template <typename T>
class PagedAttentionKernel {
 public:
  using AType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, T>;
  using BTransType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, T, true>;
  using CType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, float>;
  matmul::Matmul<AType, BTransType, CType> mm_qk;  // S_page = Q K_page^T
  matmul::Matmul<AType, AType, CType> mm_pv;       // O_tmp (+)= P_page V_page

  // q [num_tokens, heads, d], key_cache [num_blocks, block_size, kv_heads, d], value_cache [..., dv],
  // block_tables int32 [num_seqs, max_blocks_per_seq], context_lens int32 [num_seqs], cu_seqlens_q int32
  // [num_seqs + 1], out [num_tokens, heads, dv], lse fp32 [heads, num_tokens] (only with return_lse).
  __aicore__ inline void Init(GM_ADDR q, GM_ADDR key_cache, GM_ADDR value_cache, GM_ADDR block_tables,
                              GM_ADDR context_lens, GM_ADDR cu_seqlens_q, GM_ADDR out, GM_ADDR lse, GM_ADDR workspace,
                              const PagedAttentionTiling* tiling, AscendC::TPipe* pipe) {
    t_ = tiling;
    const uint64_t h = t_->num_heads, hk = t_->num_kv_heads, cache_rows = uint64_t(t_->num_blocks) * t_->block_size;
    q_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(q), t_->num_tokens * h * t_->head_dim);
    k_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(key_cache), cache_rows * hk * t_->head_dim);
    v_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(value_cache), cache_rows * hk * t_->head_dim_v);
    tables_.SetGlobalBuffer(reinterpret_cast<__gm__ int32_t*>(block_tables),
                            uint64_t(t_->num_seqs) * t_->max_blocks_per_seq);
    ctx_.SetGlobalBuffer(reinterpret_cast<__gm__ int32_t*>(context_lens), t_->num_seqs);
    cu_q_.SetGlobalBuffer(reinterpret_cast<__gm__ int32_t*>(cu_seqlens_q), t_->num_seqs + 1);
    out_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(out), t_->num_tokens * h * t_->head_dim_v);
    if (t_->return_lse) lse_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(lse), h * t_->num_tokens);
    __gm__ uint8_t* user = AscendC::GetUserWorkspace(workspace);
    __gm__ uint8_t* slot = user + AscendC::GetBlockIdx() * t_->ws_per_aiv;
    ws_s_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(slot), uint64_t(kMaxRowsPerAiv) * t_->block_cols);
    ws_p_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(slot + t_->ws_p_offset),
                          uint64_t(kMaxRowsPerAiv) * t_->block_cols);
    ws_o_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(slot + t_->ws_o_offset),
                          uint64_t(kMaxRowsPerAiv) * t_->head_dim_v);
    const uint64_t parts = t_->num_tokens * h * t_->max_splits;
    if (t_->max_splits > 1) {
      part_o_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(user + t_->ws_part_o_offset), parts * t_->head_dim_v);
      part_lse_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(user + t_->ws_part_lse_offset), parts);
    }
    error_.SetGlobalBuffer(reinterpret_cast<__gm__ uint32_t*>(user + t_->ws_error_offset), 8);
    softmax_.Init(pipe, SoftmaxShape{t_->block_cols, t_->head_dim_v, t_->chunk_rows, t_->scale, t_->softcap}, ws_s_,
                  ws_p_, ws_o_);
    if (t_->max_splits > 1) {
      pipe->InitBuffer(combine_buf_, PagedCombineUbBytes(t_->max_splits, t_->head_dim_v, sizeof(T)));
    }
  }

  __aicore__ inline void Process() {
    const uint32_t worker = uint32_t(AscendC::GetBlockIdx());
    const uint32_t end = t_->worker_item_begin[worker + 1];
    uint32_t item = t_->worker_item_begin[worker];
    uint32_t seq = 0, first = 0, count = ItemsOf(0);
    for (; item < end; ++item) {
      while (item >= first + count) {
        first += count;
        count = ItemsOf(++seq);
      }
      PagedItem it;
      if (MakeItem(seq, item - first, it)) ComputeItem(it);
    }
    if (t_->max_splits > 1) {
      AscendC::SyncAll();
      Combine(worker);
    }
  }

 private:
  __aicore__ inline uint32_t Group() const { return t_->num_heads / t_->num_kv_heads; }
  __aicore__ inline uint32_t SplitsOf(int64_t ctx) const {
    const int64_t n = (ctx + t_->split_keys - 1) / t_->split_keys;
    return n < 1 ? 1 : uint32_t(n);
  }
  __aicore__ inline uint32_t ItemsOf(uint32_t seq) {
    const int64_t q_len = cu_q_.GetValue(seq + 1) - cu_q_.GetValue(seq);
    const uint32_t blocks = uint32_t((q_len + t_->tokens_per_item - 1) / t_->tokens_per_item);
    return t_->num_kv_heads * blocks * SplitsOf(ctx_.GetValue(seq));
  }

  // Visible keys of query token t of the sequence, which sits at position ctx - q_len + t.
  __aicore__ inline int64_t FirstKey(const PagedItem& it, int64_t t) const {
    return FirstVisibleKey(it.ctx - it.q_len + t, t_->window_left);
  }
  __aicore__ inline int64_t EndKey(const PagedItem& it, int64_t t) const {
    return EndVisibleKey(it.ctx - it.q_len + t, it.ctx, t_->window_right);
  }

  __aicore__ inline bool MakeItem(uint32_t seq, uint32_t index, PagedItem& it) {
    it.seq = seq;
    it.ctx = ctx_.GetValue(seq);
    const int64_t q0 = cu_q_.GetValue(seq);
    it.q_len = cu_q_.GetValue(seq + 1) - q0;
    const uint32_t splits = SplitsOf(it.ctx);
    const uint32_t blocks = uint32_t((it.q_len + t_->tokens_per_item - 1) / t_->tokens_per_item);
    it.split = index % splits;
    const uint32_t block = (index / splits) % blocks;
    it.kv_head = index / splits / blocks;
    it.first_q = block * t_->tokens_per_item;
    it.tokens = uint32_t(it.q_len - it.first_q < t_->tokens_per_item ? it.q_len - it.first_q : t_->tokens_per_item);
    it.token0 = uint32_t(q0) + it.first_q;
    it.rows = it.tokens * Group();
    // This split's keys, narrowed to what the item's rows can see (fully masked pages are never read).
    const int64_t split_lo = int64_t(it.split) * t_->split_keys, split_hi = split_lo + t_->split_keys;
    const int64_t lo = FirstKey(it, it.first_q), hi = EndKey(it, it.first_q + it.tokens - 1);
    it.key_lo = lo > split_lo ? lo : split_lo;
    it.key_hi = hi < split_hi ? hi : split_hi;
    return true;
  }

  __aicore__ inline void ComputeItem(const PagedItem& it) {
    softmax_.Reset(it.rows);
    const int64_t bs = t_->block_size;
    for (int64_t k0 = it.key_lo / bs * bs; k0 < it.key_hi; k0 += t_->block_cols) {  // tiles of whole pages
      const uint32_t cols = uint32_t(it.key_hi - k0 < t_->block_cols ? it.key_hi - k0 : t_->block_cols);
      ComputeScores(it, k0, cols);
      softmax_.Tile(it.rows, cols, [&](uint32_t i, int64_t& lo, int64_t& hi) {
        const int64_t t = it.first_q + i / Group();
        const int64_t first = FirstKey(it, t), end = EndKey(it, t);
        lo = (first > it.key_lo ? first : it.key_lo) - k0;
        hi = (end < it.key_hi ? end : it.key_hi) - k0;
      });
      ComputePV(it, k0, cols);
      softmax_.AccumulatePV(it.rows);
    }
    for (uint32_t r0 = 0; r0 < it.rows; r0 += softmax_.ChunkRows()) {
      const uint32_t n = it.rows - r0 < softmax_.ChunkRows() ? it.rows - r0 : softmax_.ChunkRows();
      const AscendC::LocalTensor<float> o = softmax_.Normalize(r0, n);
      if (t_->max_splits > 1) {
        StorePartial(it, r0, n, o);
      } else {
        StoreO(it, r0, n, o);
      }
    }
    if (t_->return_lse && t_->max_splits == 1) StoreLse(it);
  }

  // Cache row of key `key` of the item's sequence, or -1 (and the error flag) for a block index outside the cache.
  __aicore__ inline int64_t PageBlock(const PagedItem& it, int64_t key) {
    const int32_t block = tables_.GetValue(uint64_t(it.seq) * t_->max_blocks_per_seq + key / t_->block_size);
    if (block < 0 || uint32_t(block) >= t_->num_blocks) {
      error_.SetValue(0, 1);
      return -1;
    }
    return block;
  }

  // S[rows, cols] = Q K^T for the pages of the tile starting at key k0, one Matmul per (token, page).
  __aicore__ inline void ComputeScores(const PagedItem& it, int64_t k0, uint32_t cols) {
    const uint32_t g = Group(), d = t_->head_dim, hk = t_->num_kv_heads, bs = t_->block_size;
    for (uint32_t off = 0; off < cols; off += bs) {
      const uint32_t keys = cols - off < bs ? cols - off : bs;
      const int64_t block = PageBlock(it, k0 + off);
      if (block < 0) continue;  // the softmax sees stale scores there; the launch fails on the flag
      for (uint32_t tt = 0; tt < it.tokens; ++tt) {
        mm_qk.SetOrgShape(int(g), int(keys), int(d), int(hk * d), int(t_->block_cols));
        mm_qk.SetTensorA(q_[(uint64_t(it.token0) + tt) * t_->num_heads * d + uint64_t(it.kv_head) * g * d]);
        mm_qk.SetTensorB(k_[(uint64_t(block) * bs * hk + it.kv_head) * d], true);
        mm_qk.SetTail(int(g), int(keys), int(d));
        mm_qk.IterateAll(ws_s_[uint64_t(tt) * g * t_->block_cols + off]);
        mm_qk.End();
      }
    }
  }

  // O_tmp[rows, dv] = sum over the tile's pages of P[:, page] V_page.
  __aicore__ inline void ComputePV(const PagedItem& it, int64_t k0, uint32_t cols) {
    const uint32_t dv = t_->head_dim_v, hk = t_->num_kv_heads, bs = t_->block_size;
    bool first = true;
    for (uint32_t off = 0; off < cols; off += bs) {
      const uint32_t keys = cols - off < bs ? cols - off : bs;
      const int64_t block = PageBlock(it, k0 + off);
      if (block < 0) continue;
      mm_pv.SetOrgShape(int(it.rows), int(hk * dv), int(t_->block_cols), int(keys), int(dv));
      mm_pv.SetTensorA(ws_p_[off]);
      mm_pv.SetTensorB(v_[(uint64_t(block) * bs * hk + it.kv_head) * dv]);
      mm_pv.SetTail(int(it.rows), int(dv), int(keys));
      mm_pv.IterateAll(ws_o_, first ? 0 : 1);  // later pages accumulate into O_tmp
      mm_pv.End();
      first = false;
    }
  }

  // Rows [r0, r0 + n) are (token, head-in-group) pairs; the group's heads of one token are contiguous in out.
  __aicore__ inline void StoreO(const PagedItem& it, uint32_t r0, uint32_t n, const AscendC::LocalTensor<float>& o) {
    const uint32_t g = Group(), dv = t_->head_dim_v;
    AscendC::LocalTensor<T> y = softmax_.CastOut(o, n * dv);
    for (uint32_t r = r0; r < r0 + n;) {
      const uint32_t tt = r / g, seg = (tt + 1) * g < r0 + n ? (tt + 1) * g - r : r0 + n - r;
      const uint64_t head = uint64_t(it.kv_head) * g + r % g;
      AscendC::DataCopyPad(out_[((it.token0 + tt) * uint64_t(t_->num_heads) + head) * dv], y[(r - r0) * dv],
                           AscendC::DataCopyExtParams(1, seg * dv * sizeof(T), 0, 0, 0));
      r += seg;
    }
    softmax_.FreeOut(y);
  }

  __aicore__ inline void StoreLse(const PagedItem& it) {
    const uint32_t g = Group();
    for (uint32_t r = 0; r < it.rows; ++r) {
      const uint64_t head = uint64_t(it.kv_head) * g + r % g;
      lse_.SetValue(head * t_->num_tokens + it.token0 + r / g, softmax_.LseRows().GetValue(r));
    }
  }

  // Partial O rows (fp32, normalized over this split) and their lse, at [token, head, split].
  __aicore__ inline void StorePartial(const PagedItem& it, uint32_t r0, uint32_t n,
                                      const AscendC::LocalTensor<float>& o) {
    const uint32_t g = Group(), dv = t_->head_dim_v;
    AscendC::SetFlag<AscendC::HardEvent::V_MTE3>(0);
    AscendC::WaitFlag<AscendC::HardEvent::V_MTE3>(0);
    for (uint32_t r = r0; r < r0 + n; ++r) {
      const uint64_t row = ((it.token0 + r / g) * uint64_t(t_->num_heads) + it.kv_head * g + r % g);
      const uint64_t at = row * t_->max_splits + it.split;
      part_lse_.SetValue(at, softmax_.LseRows().GetValue(r));
      AscendC::DataCopy(part_o_[at * dv], o[(r - r0) * dv], dv);
    }
  }

  // out = sum_j exp(lse_j - lse) O_j with lse = log sum_j exp(lse_j), for this worker's share of (token, head) rows.
  __aicore__ inline void Combine(uint32_t worker) {
    const uint32_t dv = t_->head_dim_v, workers = uint32_t(AscendC::GetBlockNum()) * 2;
    const uint64_t rows = uint64_t(t_->num_tokens) * t_->num_heads;
    const uint64_t begin = rows * worker / workers, end = rows * (worker + 1) / workers;
    AscendC::LocalTensor<float> parts = combine_buf_.Get<float>();
    AscendC::LocalTensor<float> lse = parts[Round32(t_->max_splits * dv * 4) / 4];
    AscendC::LocalTensor<float> acc = lse[Round32(t_->max_splits * 4) / 4];
    AscendC::LocalTensor<float> scratch = acc[Round32(dv * 4) / 4];
    AscendC::LocalTensor<T> y = scratch[Round32(dv * 4) / 4].template ReinterpretCast<T>();
    AscendC::LocalTensor<float> ln = scratch;
    uint32_t seq = 0;
    for (uint64_t row = begin; row < end; ++row) {
      const uint32_t token = uint32_t(row / t_->num_heads);
      while (uint32_t(cu_q_.GetValue(seq + 1)) <= token) ++seq;
      const uint32_t splits = SplitsOf(ctx_.GetValue(seq));
      AscendC::DataCopy(parts, part_o_[row * t_->max_splits * dv], splits * dv);
      AscendC::DataCopyPad(lse, part_lse_[row * t_->max_splits], AscendC::DataCopyExtParams(1, splits * 4, 0, 0, 0),
                           AscendC::DataCopyPadExtParams<float>(false, 0, 0, 0.0f));
      AscendC::SetFlag<AscendC::HardEvent::MTE2_S>(0);
      AscendC::WaitFlag<AscendC::HardEvent::MTE2_S>(0);
      AscendC::SetFlag<AscendC::HardEvent::MTE2_V>(0);
      AscendC::WaitFlag<AscendC::HardEvent::MTE2_V>(0);
      float m = -kInf;
      for (uint32_t j = 0; j < splits; ++j) m = lse.GetValue(j) > m ? lse.GetValue(j) : m;
      AscendC::Duplicate(acc, 0.0f, int32_t(dv));
      float total = 0.0f, row_lse = -kInf;
      if (m != -kInf) {
        AscendC::Adds(lse, lse, -m, int32_t(splits));
        AscendC::Exp(lse, lse, int32_t(splits));  // weights exp(lse_j - m); an empty split weighs 0
        VectorToScalar();
        for (uint32_t j = 0; j < splits; ++j) {
          const float w = lse.GetValue(j);
          total += w;
          AscendC::Muls(scratch, parts[j * dv], w, int32_t(dv));
          AscendC::Add(acc, acc, scratch, int32_t(dv));
        }
        AscendC::Muls(acc, acc, 1.0f / total, int32_t(dv));
        AscendC::Duplicate(ln, total, int32_t(kStatLanes));
        AscendC::Ln(ln, ln, int32_t(kStatLanes));
        VectorToScalar();
        row_lse = m + ln.GetValue(0);
      }
      AscendC::Cast(y, acc, AscendC::RoundMode::CAST_RINT, int32_t(dv));
      AscendC::SetFlag<AscendC::HardEvent::V_MTE3>(0);
      AscendC::WaitFlag<AscendC::HardEvent::V_MTE3>(0);
      AscendC::DataCopyPad(out_[row * dv], y, AscendC::DataCopyExtParams(1, dv * sizeof(T), 0, 0, 0));
      if (t_->return_lse) lse_.SetValue(uint64_t(row % t_->num_heads) * t_->num_tokens + token, row_lse);
      AscendC::SetFlag<AscendC::HardEvent::MTE3_MTE2>(0);  // the next row's loads reuse the buffers
      AscendC::WaitFlag<AscendC::HardEvent::MTE3_MTE2>(0);
    }
  }

  const PagedAttentionTiling* t_ = nullptr;
  AscendC::GlobalTensor<T> q_, k_, v_, out_, ws_p_;
  AscendC::GlobalTensor<int32_t> tables_, ctx_, cu_q_;
  AscendC::GlobalTensor<float> lse_, ws_s_, ws_o_, part_o_, part_lse_;
  AscendC::GlobalTensor<uint32_t> error_;
  AscendC::TBuf<AscendC::TPosition::VECCALC> combine_buf_;
  OnlineSoftmaxRows<T> softmax_;
};

}  // namespace ascend_attn_kernel
