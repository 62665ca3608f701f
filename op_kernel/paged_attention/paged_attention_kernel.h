// PagedAttention for Atlas A2, vector-master C+V like flash_attention: every AIV is a worker running a contiguous
// range of (sequence, kv head group, token block, KV split) items. The query rows of an item are its tokens x the q
// heads of heads_per_item consecutive kv heads (GQA packed into the matmul's M; the tiling explains the grouping).
// K/V pages are read in place through the block table, one Matmul per page for all the item's rows. The cube works one
// KV tile ahead of the vector, as in flash_attention: S of tile j + 1 during the softmax of tile j, P V of tile j
// during the rescale of tile j - 1. With more than one split (flash-decoding), items leave normalized partial O and lse
// in the workspace; after SyncAll every AIV combines a share of the (token, head) rows.
#pragma once
#include "../common/online_softmax.h"
#include "../common/visible_keys.h"
#include "kernel_operator.h"
#include "lib/matmul_intf.h"
#include "paged_attention_tiling.h"
#include "paged_combine.h"

namespace ascend_attn_kernel {

// One work item: `rows` = tokens x heads_per_item x group query rows of sequence `seq` and kv heads [kv_head,
// kv_head + heads_per_item), over keys [key_lo, key_hi). Row r is token r / row_heads and q head
// kv_head * group + r % row_heads.
struct PagedItem {
  uint32_t seq, kv_head, split;
  uint32_t token0, tokens, rows;  // packed index of the first query token of the item; its tokens; their rows
  int64_t q_len, ctx;             // the sequence's query tokens and keys; token t sits at position ctx - q_len + t
  uint32_t first_q;               // token index of the item's first query within the sequence
  int64_t key_lo, key_hi;
};

// The keys row i of an item may see, relative to the first key k0 of the current KV tile (a functor: device code
// cannot call a lambda). Row i is query token first_q + i / row_heads of the sequence, at position ctx - q_len +
// token.
struct PagedVisible {
  int64_t ctx, q_len, first_q, key_lo, key_hi, k0;
  uint32_t row_heads;
  int32_t window_left, window_right;
  __aicore__ inline void operator()(uint32_t i, int64_t& lo, int64_t& hi) const {
    const int64_t pos = ctx - q_len + first_q + i / row_heads;
    const int64_t first = FirstVisibleKey(pos, window_left), end = EndVisibleKey(pos, ctx, window_right);
    lo = (first > key_lo ? first : key_lo) - k0;
    hi = (end < key_hi ? end : key_hi) - k0;
  }
};

template <typename T>
class PagedAttentionKernel {
 public:
  using AType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, T>;
  using BTransType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, T, true>;
  using CType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, float>;
  matmul::Matmul<AType, BTransType, CType> mm_qk;  // S_page = Q_slot K_page^T
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
    __gm__ uint8_t* aiv = user + AscendC::GetBlockIdx() * t_->ws_per_aiv;
    const uint64_t parts = t_->num_tokens * h * t_->max_splits;
    if (t_->max_splits > 1) {
      part_o_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(user + t_->ws_part_o_offset), parts * t_->head_dim_v);
      part_lse_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(user + t_->ws_part_lse_offset), parts);
    }
    // One 64-byte data-cache line per worker: cores writing one line would overwrite each other's flag.
    error_.SetGlobalBuffer(
        reinterpret_cast<__gm__ uint32_t*>(user + t_->ws_error_offset + AscendC::GetBlockIdx() * kPagedErrorSlotBytes),
        kPagedErrorSlotBytes / 4);
    q_slot_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(aiv + t_->ws_q_offset),
                            uint64_t(kPagedRowsPerAiv) * t_->heads_per_item * t_->head_dim);
    softmax_.Init(pipe,
                  SoftmaxShape{kPagedRowsPerAiv, t_->block_cols, t_->head_dim_v, t_->chunk_rows, t_->scale, t_->softcap,
                               t_->heads_per_item, Group()},
                  Slots(aiv), Slots(aiv + t_->ws_slot_bytes));
    pipe->InitBuffer(q_buf_, PagedQueryUbBytes(t_->query_piece_rows, t_->head_dim, sizeof(T)));
    q_ub_ = q_buf_.Get<T>();
    if (t_->max_splits > 1) combine_.Init(pipe, t_->max_splits, t_->head_dim_v, part_o_, part_lse_);
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
      AscendC::SyncAll();  // every split's partial O and lse are in GM
      Combine(worker);
    }
  }

 private:
  __aicore__ inline uint32_t Group() const { return t_->num_heads / t_->num_kv_heads; }
  __aicore__ inline uint32_t RowHeads() const { return t_->heads_per_item * Group(); }  // q heads of a token
  __aicore__ inline uint32_t SplitsOf(int64_t ctx) const {
    const int64_t n = (ctx + t_->split_keys - 1) / t_->split_keys;
    return n < 1 ? 1 : uint32_t(n);
  }
  __aicore__ inline uint32_t ItemsOf(uint32_t seq) {
    const int64_t q_len = cu_q_.GetValue(seq + 1) - cu_q_.GetValue(seq);
    const uint32_t blocks = uint32_t((q_len + t_->tokens_per_item - 1) / t_->tokens_per_item);
    return t_->num_kv_heads / t_->heads_per_item * blocks * SplitsOf(ctx_.GetValue(seq));
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
    it.kv_head = index / splits / blocks * t_->heads_per_item;
    it.first_q = block * t_->tokens_per_item;
    it.tokens = uint32_t(it.q_len - it.first_q < t_->tokens_per_item ? it.q_len - it.first_q : t_->tokens_per_item);
    it.token0 = uint32_t(q0) + it.first_q;
    it.rows = it.tokens * RowHeads();
    // This split's keys, narrowed to what the item's rows can see (fully masked pages are never read).
    const int64_t split_lo = PagedSplitBound(it.ctx, t_->block_size, splits, it.split);
    const int64_t split_hi = PagedSplitBound(it.ctx, t_->block_size, splits, it.split + 1);
    const int64_t lo = FirstKey(it, it.first_q), hi = EndKey(it, it.first_q + it.tokens - 1);
    it.key_lo = lo > split_lo ? lo : split_lo;
    it.key_hi = hi < split_hi ? hi : split_hi;
    return true;
  }

  // S, P and O_tmp slots of one pipeline stage, at `base` in this AIV's workspace.
  __aicore__ inline SoftmaxSlots<T> Slots(__gm__ uint8_t* base) const {
    SoftmaxSlots<T> slots;
    slots.s.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(base), uint64_t(kPagedRowsPerAiv) * t_->block_cols);
    slots.p.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(base + t_->ws_p_offset),
                            uint64_t(kPagedRowsPerAiv) * t_->block_cols);
    slots.o.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(base + t_->ws_o_offset),
                            uint64_t(kPagedRowsPerAiv) * t_->heads_per_item * t_->head_dim_v);
    return slots;
  }

  // KV tile j (whole pages from key k0) goes through slot j % 2; cube order S(0), S(1), PV(0), S(2), PV(1), ...
  __aicore__ inline void ComputeItem(const PagedItem& it) {
    softmax_.Reset(it.rows);
    const int64_t bs = t_->block_size, bc = t_->block_cols, first = it.key_lo / bs * bs;
    const uint32_t tiles = it.key_hi > first ? uint32_t((it.key_hi - first + bc - 1) / bc) : 0;
    if (tiles > 0) {
      if (!QueryInPlace(it)) LoadQuery(it);
      IssueScores(it, first, 0);
      WaitCube(mm_qk, qk_pending_);
    }
    if (tiles > 1) IssueScores(it, first + bc, 1);
    for (uint32_t j = 0; j < tiles; ++j) {
      const int64_t k0 = first + int64_t(j) * bc;
      const uint32_t cols = uint32_t(it.key_hi - k0 < bc ? it.key_hi - k0 : bc);
      softmax_.Tile(j % 2, it.rows, cols,
                    PagedVisible{it.ctx, it.q_len, it.first_q, it.key_lo, it.key_hi, k0, RowHeads(), t_->window_left,
                                 t_->window_right});
      if (j + 1 < tiles) WaitCube(mm_qk, qk_pending_);  // S(j + 1), computed during that softmax
      IssuePV(it, k0, cols, j % 2);
      if (j > 0) softmax_.AccumulatePV((j - 1) % 2, it.rows);  // during P V of tile j
      WaitCube(mm_pv, pv_pending_);
      if (j + 2 < tiles) IssueScores(it, k0 + 2 * bc, j % 2);
    }
    if (tiles > 0) softmax_.AccumulatePV((tiles - 1) % 2, it.rows);
    softmax_.Finish(it.rows);
    for (uint32_t r0 = 0; r0 < it.rows; r0 += softmax_.ChunkRows()) {
      const uint32_t n = it.rows - r0 < softmax_.ChunkRows() ? it.rows - r0 : softmax_.ChunkRows();
      const AscendC::LocalTensor<float> o = softmax_.Normalize(r0, n);
      if (t_->max_splits > 1) {
        StorePartial(it, r0, n, o);
      } else {
        StoreO(it, r0, n, o);
      }
    }
    if (t_->max_splits > 1) {
      StorePartialLse(it);
    } else if (t_->return_lse) {
      StoreLse(it);
    }
  }

  // Cache row of key `key` of the item's sequence, or -1 (and the error flag) for a block index outside the cache.
  __aicore__ inline int64_t PageBlock(const PagedItem& it, int64_t key) {
    const int32_t block = tables_.GetValue(uint64_t(it.seq) * t_->max_blocks_per_seq + key / t_->block_size);
    if (block < 0 || uint32_t(block) >= t_->num_blocks) {
      // The host reads the flag after the launch: write the line back (the scalar write sits in the data cache).
      error_.SetValue(0, 1);
      AscendC::DataCacheCleanAndInvalid<uint32_t, AscendC::CacheLine::SINGLE_CACHE_LINE,
                                        AscendC::DcciDst::CACHELINE_OUT>(error_);
      return -1;
    }
    return block;
  }

  // One request of `mm`, sent asynchronously once its previous one is done (one request in flight per object).
  template <class Mm>
  __aicore__ inline void Send(Mm& mm, const AscendC::GlobalTensor<float>& c, uint8_t accumulate, bool& pending) {
    if (pending) mm.WaitIterateAll();
    mm.template IterateAll<false>(c, accumulate, false, true);
    pending = true;
  }
  template <class Mm>
  __aicore__ inline void WaitCube(Mm& mm, bool& pending) {
    if (pending) mm.WaitIterateAll();
    pending = false;
    mm.End();
  }

  // One token's rows of one kv head are already [rows, d] in q: the cube reads them there.
  __aicore__ inline bool QueryInPlace(const PagedItem& it) const { return t_->heads_per_item == 1 && it.tokens == 1; }
  // The item's first query row in q [num_tokens, heads, d]: its first token's q head kv_head * group.
  __aicore__ inline AscendC::GlobalTensor<T> ItemQuery(const PagedItem& it) const {
    return q_[(uint64_t(it.token0) * t_->num_heads + uint64_t(it.kv_head) * Group()) * t_->head_dim];
  }

  // The item's query rows into its Q slot as the cube reads them, [rows, hp * d]: row r, of kv head a = (r / group) %
  // hp, holds its query in columns [a * d, (a + 1) * d) and zeros elsewhere (ZeroQueryRows), so one product against a
  // page's K rows of the item's kv heads gives every row the scores of its own head alone. The rows go through UB in
  // pieces of query_piece_rows: whole tokens in one strided copy (each token's row_heads heads are consecutive in q),
  // else part of a token; out to the slot in one copy, or one per run of a kv head's rows.
  __aicore__ inline void LoadQuery(const PagedItem& it) {
    const uint32_t d = t_->head_dim, hp = t_->heads_per_item, g = Group(), rh = RowHeads();
    const uint32_t piece = t_->query_piece_rows;
    const AscendC::GlobalTensor<T> query = ItemQuery(it);
    const uint16_t blocks = uint16_t(d * sizeof(T) / 32);
    if (hp > 1 && it.rows > zeroed_rows_) ZeroQueryRows(it.rows);
    for (uint32_t r0 = 0; r0 < it.rows;) {
      const uint32_t tt = r0 / rh, h0 = r0 % rh;
      const AscendC::GlobalTensor<T> src = query[(uint64_t(tt) * t_->num_heads + h0) * d];
      uint32_t n = 0;
      if (piece >= rh) {  // whole tokens
        const uint32_t tokens = piece / rh < it.tokens - tt ? piece / rh : it.tokens - tt;
        n = tokens * rh;
        AscendC::DataCopy(q_ub_, src,
                          AscendC::DataCopyParams(uint16_t(tokens), uint16_t(rh * blocks),
                                                  uint16_t((t_->num_heads - rh) * blocks), 0));
      } else {
        n = piece < rh - h0 ? piece : rh - h0;
        AscendC::DataCopy(q_ub_, src, n * d);
      }
      const AscendC::TEventID mte2_mte3 = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE2_MTE3);
      AscendC::SetFlag<AscendC::HardEvent::MTE2_MTE3>(mte2_mte3);
      AscendC::WaitFlag<AscendC::HardEvent::MTE2_MTE3>(mte2_mte3);
      if (hp == 1) {
        AscendC::DataCopy(q_slot_[uint64_t(r0) * d], q_ub_, n * d);
      } else {
        for (uint32_t r = r0; r < r0 + n; r += g) {
          AscendC::DataCopy(q_slot_[(uint64_t(r) * hp + (r / g) % hp) * d], q_ub_[(r - r0) * d],
                            AscendC::DataCopyParams(uint16_t(g), blocks, 0, uint16_t((hp - 1) * blocks)));
        }
      }
      r0 += n;
      if (r0 < it.rows) {  // the next piece's copy-in reuses q_ub_
        const AscendC::TEventID mte3_mte2 = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE3_MTE2);
        AscendC::SetFlag<AscendC::HardEvent::MTE3_MTE2>(mte3_mte2);
        AscendC::WaitFlag<AscendC::HardEvent::MTE3_MTE2>(mte3_mte2);
      }
    }
    // The cube reads the slot next (the scalar unit sends the request); this wait also orders the next item's
    // copy-in to q_ub_ after these reads of it.
    const AscendC::TEventID mte3_s = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE3_S);
    AscendC::SetFlag<AscendC::HardEvent::MTE3_S>(mte3_s);
    AscendC::WaitFlag<AscendC::HardEvent::MTE3_S>(mte3_s);
  }

  // Zeros over rows [zeroed_rows_, rows) of the Q slot, the first time an item of this worker has that many rows
  // (LoadQuery only ever writes the diagonal blocks), from a UB piece of zeros.
  __aicore__ inline void ZeroQueryRows(uint32_t rows) {
    const uint32_t d = t_->head_dim, hp = t_->heads_per_item, piece = t_->query_piece_rows;
    const uint16_t blocks = uint16_t(d * sizeof(T) / 32);
    AscendC::Duplicate(q_ub_, T(0.0f), int32_t(piece * d));
    const AscendC::TEventID v_mte3 = GetTPipePtr()->FetchEventID(AscendC::HardEvent::V_MTE3);
    AscendC::SetFlag<AscendC::HardEvent::V_MTE3>(v_mte3);
    AscendC::WaitFlag<AscendC::HardEvent::V_MTE3>(v_mte3);
    for (uint32_t r0 = zeroed_rows_; r0 < rows; r0 += piece) {
      const uint32_t n = rows - r0 < piece ? rows - r0 : piece;
      for (uint32_t a = 0; a < hp; ++a) {
        AscendC::DataCopy(q_slot_[(uint64_t(r0) * hp + a) * d], q_ub_,
                          AscendC::DataCopyParams(uint16_t(n), blocks, 0, uint16_t((hp - 1) * blocks)));
      }
    }
    const AscendC::TEventID mte3_mte2 = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE3_MTE2);
    AscendC::SetFlag<AscendC::HardEvent::MTE3_MTE2>(mte3_mte2);
    AscendC::WaitFlag<AscendC::HardEvent::MTE3_MTE2>(mte3_mte2);
    zeroed_rows_ = rows;
  }

  // S[rows, cols] = Q K^T for the pages of the tile starting at key k0 into slot `slot`, one Matmul per page (K
  // [keys, hp * d]: the item's kv heads side by side, rows hk * d apart); the last request is left in flight.
  __aicore__ inline void IssueScores(const PagedItem& it, int64_t k0, uint32_t slot) {
    const uint32_t d = t_->head_dim, hk = t_->num_kv_heads, bs = t_->block_size, width = t_->heads_per_item * d;
    const uint32_t cols = uint32_t(it.key_hi - k0 < t_->block_cols ? it.key_hi - k0 : t_->block_cols);
    const AscendC::GlobalTensor<T> query = QueryInPlace(it) ? ItemQuery(it) : q_slot_;
    for (uint32_t off = 0; off < cols; off += bs) {
      const uint32_t keys = cols - off < bs ? cols - off : bs;
      const int64_t block = PageBlock(it, k0 + off);
      if (block < 0) continue;  // the softmax sees stale scores there; the launch fails on the flag
      mm_qk.SetOrgShape(int(it.rows), int(keys), int(width), int(hk * d), int(t_->block_cols));
      mm_qk.SetTensorA(query);
      mm_qk.SetTensorB(k_[(uint64_t(block) * bs * hk + it.kv_head) * d], true);
      mm_qk.SetTail(int(it.rows), int(keys), int(width));
      Send(mm_qk, softmax_.Slot(slot).s[off], 0, qk_pending_);
    }
  }

  // O_tmp[rows, hp * dv] = sum over the tile's pages of P[:, page] V_page (V [keys, hp * dv], the item's kv heads
  // side by side), from and to slot `slot`; the last request is left in flight.
  __aicore__ inline void IssuePV(const PagedItem& it, int64_t k0, uint32_t cols, uint32_t slot) {
    const uint32_t dv = t_->head_dim_v, hk = t_->num_kv_heads, bs = t_->block_size, width = t_->heads_per_item * dv;
    bool first = true;
    for (uint32_t off = 0; off < cols; off += bs) {
      const uint32_t keys = cols - off < bs ? cols - off : bs;
      const int64_t block = PageBlock(it, k0 + off);
      if (block < 0) continue;
      mm_pv.SetOrgShape(int(it.rows), int(hk * dv), int(t_->block_cols), int(keys), int(width));
      mm_pv.SetTensorA(softmax_.Slot(slot).p[off]);
      mm_pv.SetTensorB(v_[(uint64_t(block) * bs * hk + it.kv_head) * dv]);
      mm_pv.SetTail(int(it.rows), int(width), int(keys));
      Send(mm_pv, softmax_.Slot(slot).o, first ? 0 : 1, pv_pending_);  // later pages accumulate into O_tmp
      first = false;
    }
  }

  // Rows [r0, r0 + n) are (token, head-in-item) pairs; the item's heads of one token are contiguous in out.
  __aicore__ inline void StoreO(const PagedItem& it, uint32_t r0, uint32_t n, const AscendC::LocalTensor<float>& o) {
    const uint32_t rh = RowHeads(), dv = t_->head_dim_v;
    AscendC::LocalTensor<T> y = softmax_.CastOut(o, n * dv);
    for (uint32_t r = r0; r < r0 + n;) {
      const uint32_t tt = r / rh, seg = (tt + 1) * rh < r0 + n ? (tt + 1) * rh - r : r0 + n - r;
      const uint64_t head = uint64_t(it.kv_head) * Group() + r % rh;
      AscendC::DataCopyPad(out_[((it.token0 + tt) * uint64_t(t_->num_heads) + head) * dv], y[(r - r0) * dv],
                           AscendC::DataCopyExtParams(1, seg * dv * sizeof(T), 0, 0, 0));
      r += seg;
    }
    softmax_.FreeOut(y);
  }

  // lse [heads, num_tokens]: for each head of the item, the item's tokens are contiguous.
  __aicore__ inline void StoreLse(const PagedItem& it) {
    const uint32_t rh = RowHeads();
    for (uint32_t hh = 0; hh < rh; ++hh) {
      softmax_.StoreLse(lse_[(uint64_t(it.kv_head) * Group() + hh) * t_->num_tokens + it.token0], hh, it.tokens, rh, 0);
    }
  }

  // Partial O rows (fp32, normalized over this split) at [token, head, split]: the item's heads of one token are
  // one strided copy. o lives in a TBuf, so the MTE3 read is ordered by hand after the vector's writes and before its
  // next ones (the next item's Reset).
  __aicore__ inline void StorePartial(const PagedItem& it, uint32_t r0, uint32_t n,
                                      const AscendC::LocalTensor<float>& o) {
    const uint32_t rh = RowHeads(), dv = t_->head_dim_v, splits = t_->max_splits;
    const AscendC::TEventID v_mte3 = GetTPipePtr()->FetchEventID(AscendC::HardEvent::V_MTE3);
    AscendC::SetFlag<AscendC::HardEvent::V_MTE3>(v_mte3);
    AscendC::WaitFlag<AscendC::HardEvent::V_MTE3>(v_mte3);
    for (uint32_t r = r0; r < r0 + n;) {
      const uint32_t tt = r / rh, seg = (tt + 1) * rh < r0 + n ? (tt + 1) * rh - r : r0 + n - r;
      const uint64_t row = (it.token0 + tt) * uint64_t(t_->num_heads) + it.kv_head * Group() + r % rh;
      const uint16_t blocks = uint16_t(dv * 4 / 32), gap = uint16_t((splits - 1) * dv * 4 / 32);
      AscendC::DataCopy(part_o_[(row * splits + it.split) * dv], o[(r - r0) * dv],
                        AscendC::DataCopyParams(uint16_t(seg), blocks, 0, gap));
      r += seg;
    }
    const AscendC::TEventID mte3_v = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE3_V);
    AscendC::SetFlag<AscendC::HardEvent::MTE3_V>(mte3_v);
    AscendC::WaitFlag<AscendC::HardEvent::MTE3_V>(mte3_v);
  }

  // Partial lse at [token, head, split]: per token, the item's heads are `splits` floats apart.
  __aicore__ inline void StorePartialLse(const PagedItem& it) {
    const uint32_t rh = RowHeads(), splits = t_->max_splits;
    for (uint32_t tt = 0; tt < it.tokens; ++tt) {
      const uint64_t row = (it.token0 + tt) * uint64_t(t_->num_heads) + it.kv_head * Group();
      softmax_.StoreLse(part_lse_[row * splits + it.split], tt * rh, rh, 1, (splits - 1) * 4);
    }
  }

  // This worker's share of the (token, head) rows, combined over their sequence's splits.
  __aicore__ inline void Combine(uint32_t worker) {
    const uint32_t workers = uint32_t(AscendC::GetBlockNum()) * 2;
    const uint64_t rows = uint64_t(t_->num_tokens) * t_->num_heads;
    uint32_t seq = 0;
    for (uint64_t row = rows * worker / workers; row < rows * (worker + 1) / workers; ++row) {
      const uint32_t token = uint32_t(row / t_->num_heads);
      while (uint32_t(cu_q_.GetValue(seq + 1)) <= token) ++seq;
      const AscendC::GlobalTensor<float> lse = lse_[uint64_t(row % t_->num_heads) * t_->num_tokens + token];
      combine_.Row(row, SplitsOf(ctx_.GetValue(seq)), out_[row * t_->head_dim_v], t_->return_lse ? &lse : nullptr);
    }
  }

  const PagedAttentionTiling* t_ = nullptr;
  AscendC::GlobalTensor<T> q_, k_, v_, out_, q_slot_;
  AscendC::GlobalTensor<int32_t> tables_, ctx_, cu_q_;
  AscendC::GlobalTensor<float> lse_, part_o_, part_lse_;
  AscendC::GlobalTensor<uint32_t> error_;
  OnlineSoftmaxRows<T> softmax_;
  PagedCombine<T> combine_;
  AscendC::TBuf<AscendC::TPosition::VECCALC> q_buf_;
  AscendC::LocalTensor<T> q_ub_;                  // the item's query rows [rows, d] between q and the Q slot
  bool qk_pending_ = false, pv_pending_ = false;  // a request of mm_qk / mm_pv not yet waited for
  uint32_t zeroed_rows_ = 0;                      // rows of the Q slot whose off-diagonal blocks are zero
};

}  // namespace ascend_attn_kernel
