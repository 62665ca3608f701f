// FlashAttention backward for Atlas A2 (FlashAttention-2 with P recomputed from lse), vector-master C+V like the
// forward: every AIV is a worker that drives the cube through the high-level Matmul API (products into its GM
// workspace slots) and does the elementwise work in UB (grad_vector.h).
// Phases, separated by SyncAll:
//   1. rows: D = rowsum(dO * O) per (query, head), and (default mode) the fp32 dQ accumulator zeroed;
//   2. tasks: a kv task owns Bk keys of one kv head and steps over the Bq-row query blocks of the q heads that read it
//      (those some row of which sees the keys): S = Q K^T and dP = dO V^T on the cube, P and dS on the vector,
//      dV += P^T dO and dK += dS^T Q on the cube into the task's own fp32 slots (two consecutive blocks of a head in
//      one product), and (default mode) dQ += dS K into the shared fp32 dQ accumulator by the cube's atomic add; the
//      task ends with dK, dV in the output dtype. In
//      deterministic mode dQ comes instead from query-major tasks, each owning Bq rows of one q head and stepping over
//      the keys they see (S, dP, P, dS, dQ += dS K into its own slot, then dQ in the output dtype);
//   3. rows (default mode): dQ = scale * accumulator in the output dtype.
// The cube works one step ahead: S of step i + 1 is computed during the vector work of step i (two S slots); every
// request is waited for before the next (End between Matmul objects, End.md), so one is in flight per AIV and the
// two AIVs of a core keep its cube busy between them.
// Determinism: dK, dV, D and (deterministic mode) dQ are each written by one AIV in a fixed order. The default dQ
// gathers atomic adds from every kv task that sees the rows, in whatever order the cores reach them: floating-point
// addition does not associate, so its last bits may differ run to run.
#pragma once
#include "../common/visible_keys.h"
#include "flash_attention_grad_tiling.h"
#include "grad_vector.h"
#include "kernel_operator.h"
#include "lib/matmul_intf.h"

namespace ascend_attn_kernel {

// One sequence of the packed batch.
struct GradSeq {
  uint32_t q_token0, k_token0;  // packed index of its first query / key
  int64_t seqlen_q, seqlen_k;
};

// One step: `rows` query rows of q head `head` from sequence row `row0` against `cols` keys of kv head `kv_head`
// from sequence key `k0`.
struct GradStep {
  uint32_t head, kv_head;
  int64_t row0, k0;
  uint32_t rows, cols;
};

template <typename T>
class FlashAttentionGradKernel {
 public:
  using AType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, T>;
  using TransType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, T, true>;
  using CType = matmul::MatmulType<AscendC::TPosition::GM, CubeFormat::ND, float>;
  matmul::Matmul<AType, TransType, CType> mm_s;  // S = Q K^T and dP = dO V^T
  matmul::Matmul<TransType, AType, CType> mm_t;  // dV (+)= P^T dO and dK (+)= dS^T Q
  matmul::Matmul<AType, AType, CType> mm_dq;     // dQ (+)= dS K

  // dout, out [total_q, heads, dv], q [total_q, heads, d], k [total_k, kv_heads, d], v [total_k, kv_heads, dv],
  // lse fp32 [heads, total_q], cu_seqlens_q/k int32 [batch + 1]; dq, dk, dv as q, k, v.
  __aicore__ inline void Init(GM_ADDR dout, GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR out, GM_ADDR lse,
                              GM_ADDR cu_seqlens_q, GM_ADDR cu_seqlens_k, GM_ADDR dq, GM_ADDR dk, GM_ADDR dv,
                              GM_ADDR workspace, const FlashAttentionGradTiling* tiling, AscendC::TPipe* pipe) {
    t_ = tiling;
    const uint64_t tq = t_->total_q, tk = t_->total_k, h = t_->num_heads, hk = t_->num_kv_heads;
    const uint64_t d = t_->head_dim, dim_v = t_->head_dim_v;
    dout_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(dout), tq * h * dim_v);
    q_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(q), tq * h * d);
    k_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(k), tk * hk * d);
    v_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(v), tk * hk * dim_v);
    out_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(out), tq * h * dim_v);
    lse_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(lse), h * tq);
    cu_q_.SetGlobalBuffer(reinterpret_cast<__gm__ int32_t*>(cu_seqlens_q), t_->batch + 1);
    cu_k_.SetGlobalBuffer(reinterpret_cast<__gm__ int32_t*>(cu_seqlens_k), t_->batch + 1);
    dq_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(dq), tq * h * d);
    dk_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(dk), tk * hk * d);
    dv_out_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(dv), tk * hk * dim_v);
    __gm__ uint8_t* user = AscendC::GetUserWorkspace(workspace);
    d_ws_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(user + t_->ws_d_offset), h * tq);
    if (!t_->deterministic)
      dq_ws_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(user + t_->ws_dq_offset), tq * h * d);
    __gm__ uint8_t* mine = user + t_->ws_worker_offset + uint64_t(AscendC::GetBlockIdx()) * t_->ws_per_worker;
    const uint64_t step = uint64_t(t_->block_rows) * t_->block_keys;
    for (uint32_t i = 0; i < 2; ++i) {
      slots_[i].s.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(mine + t_->ws_s_offset + i * t_->ws_s_bytes), step);
      slots_[i].dp.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(mine + t_->ws_dp_offset), step);
      // P (and dS) slot 1 follows slot 0 directly, so a pair of steps' P is one [2 Bq, Bk] matrix from slot 0 on.
      slots_[i].p.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(mine + t_->ws_p_offset) + i * step, (2 - i) * step);
      slots_[i].ds.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(mine + t_->ws_ds_offset) + i * step, (2 - i) * step);
    }
    dk_acc_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(mine + t_->ws_dk_offset), uint64_t(t_->block_keys) * d);
    dv_acc_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(mine + t_->ws_dv_offset), uint64_t(t_->block_keys) * dim_v);
    if (t_->deterministic) {
      dq_acc_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(mine + t_->ws_dq_acc_offset),
                              uint64_t(t_->block_rows) * d);
    }
    const uint32_t widest = t_->block_keys > t_->head_dim ? t_->block_keys : t_->head_dim;
    vec_.Init(pipe, GradShape{t_->block_keys, t_->block_rows, t_->chunk_rows,
                              widest > t_->head_dim_v ? widest : t_->head_dim_v, t_->scale, t_->softcap});
  }

  __aicore__ inline void Process() {
    const uint64_t worker = uint64_t(AscendC::GetBlockIdx()), workers = 2 * uint64_t(AscendC::GetBlockNum());
    const uint64_t rows = uint64_t(t_->total_q) * t_->num_heads;  // (query, head) rows
    const uint64_t first = rows * worker / workers, end = rows * (worker + 1) / workers;
    RowSums(first, end);
    if (!t_->deterministic) vec_.FillZeros(dq_ws_[first * t_->head_dim], (end - first) * t_->head_dim);
    AscendC::SyncAll();  // D of every row is in GM (and the dQ accumulator is zero)
    const uint32_t begin = t_->worker_task_begin[worker], stop = t_->worker_task_begin[worker + 1];
    const uint32_t kv = t_->num_kv_tasks;
    if (begin < kv) RunTasks(begin, stop < kv ? stop : kv, true);
    if (stop > kv) RunTasks((begin > kv ? begin : kv) - kv, stop - kv, false);
    if (!t_->deterministic) {
      AscendC::SyncAll();  // every atomic add to the dQ accumulator is done
      vec_.Store(dq_ws_[first * t_->head_dim], uint32_t(end - first), t_->head_dim, t_->grad_scale,
                 dq_[first * t_->head_dim], t_->head_dim);
    }
  }

 private:
  __aicore__ inline uint32_t Group() const { return t_->num_heads / t_->num_kv_heads; }

  __aicore__ inline GradSeq Seq(uint32_t batch) {
    GradSeq s;
    s.q_token0 = uint32_t(cu_q_.GetValue(batch));
    s.k_token0 = uint32_t(cu_k_.GetValue(batch));
    s.seqlen_q = cu_q_.GetValue(batch + 1) - int64_t(s.q_token0);
    s.seqlen_k = cu_k_.GetValue(batch + 1) - int64_t(s.k_token0);
    return s;
  }

  // Tiles of a sequence along the axis a pass splits: Bk-key tiles (kv pass) or Bq-row tiles (dQ pass).
  __aicore__ inline uint32_t TilesOf(const GradSeq& s, bool kv_pass) const {
    const int64_t n = kv_pass ? s.seqlen_k : s.seqlen_q, tile = kv_pass ? t_->block_keys : t_->block_rows;
    return uint32_t((n + tile - 1) / tile);
  }

  // Tasks [begin, end) of a pass, whose batch b holds (head group, tile) tasks in that order. A run of consecutive
  // tasks of one (batch, group) is done head by head, each head over the run's tiles, so the AIVs sharing a group
  // walk its heads in step and a head's Q, dO and dQ (or K and V) are read from L2 while they do.
  __aicore__ inline void RunTasks(uint32_t begin, uint32_t end, bool kv_pass) {
    const uint32_t units = kv_pass ? t_->num_kv_heads : t_->num_heads;
    const uint32_t per_group = kv_pass ? t_->kv_heads_per_group : t_->q_heads_per_group;
    const uint32_t groups = (units + per_group - 1) / per_group;
    uint32_t batch = 0, first = 0;
    GradSeq seq = Seq(0);
    uint32_t tiles = TilesOf(seq, kv_pass);
    for (uint32_t task = begin; task < end;) {
      while (task >= first + groups * tiles) {
        first += groups * tiles;
        seq = Seq(++batch);
        tiles = TilesOf(seq, kv_pass);
      }
      const uint32_t group = (task - first) / tiles, tile0 = (task - first) % tiles;
      const uint32_t group_end = first + (group + 1) * tiles, run_end = end < group_end ? end : group_end;
      const uint32_t unit_end = (group + 1) * per_group < units ? (group + 1) * per_group : units;
      for (uint32_t unit = group * per_group; unit < unit_end; ++unit) {
        for (uint32_t tile = tile0; tile < tile0 + (run_end - task); ++tile) {
          if (kv_pass) {
            KvTile(seq, unit, tile);
          } else {
            QTile(seq, unit, tile);
          }
        }
      }
      task = run_end;
    }
  }

  // dK and dV of keys [tile * Bk, + Bk) of kv head `kv_head` (and, by default, their share of dQ).
  __aicore__ inline void KvTile(const GradSeq& seq, uint32_t kv_head, uint32_t tile) {
    const uint32_t hk = t_->num_kv_heads, d = t_->head_dim, dv = t_->head_dim_v;
    const int64_t k0 = int64_t(tile) * t_->block_keys;
    const uint32_t cols = uint32_t(seq.seqlen_k - k0 < t_->block_keys ? seq.seqlen_k - k0 : t_->block_keys);
    const int64_t q_lo = FirstSeeingQuery(k0, seq.seqlen_q, seq.seqlen_k, t_->window_right);
    const int64_t q_hi = EndSeeingQuery(k0 + cols, seq.seqlen_q, seq.seqlen_k, t_->window_left);
    const uint32_t blocks = q_hi > q_lo ? uint32_t((q_hi - q_lo + t_->block_rows - 1) / t_->block_rows) : 0;
    const uint32_t steps = Group() * blocks;
    const uint64_t key = uint64_t(seq.k_token0) + uint64_t(k0);
    const AscendC::GlobalTensor<T> dk = dk_[key * hk * d + kv_head * d],
                                   dv_rows = dv_out_[key * hk * dv + kv_head * dv];
    if (steps == 0) {  // no query sees these keys
      vec_.StoreZeros(cols, d, dk, uint64_t(hk) * d);
      vec_.StoreZeros(cols, dv, dv_rows, uint64_t(hk) * dv);
      return;
    }
    GradStep cur = KvStep(kv_head, k0, cols, q_lo, q_hi, blocks, 0), next = cur;
    IssueScores(seq, cur, 0);
    WaitCube(mm_s);
    IssueDp(seq, cur);
    WaitCube(mm_s);
    // dV and dK take two steps at once where the second continues the first's rows (same head, the first full): one
    // [2 Bq]-deep product reads and rewrites the fp32 accumulators half as often. `pair` is the first step of the
    // pending pair (its P and dS in slot 0).
    GradStep pair = cur;
    bool pending = false, added = false;
    for (uint32_t i = 0; i < steps; ++i) {
      LoadStats(seq, cur);
      if (i + 1 < steps) {
        next = KvStep(kv_head, k0, cols, q_lo, q_hi, blocks, i + 1);
        IssueScores(seq, next, (i + 1) % 2);
      }
      Vector(seq, cur, i % 2);
      if (i + 1 < steps) {
        WaitCube(mm_s);
        IssueDp(seq, next);
        WaitCube(mm_s);
      }
      if (!t_->deterministic) {
        const uint64_t row = uint64_t(seq.q_token0) + uint64_t(cur.row0);
        IssueDq(seq, cur, i % 2, dq_ws_[row * t_->num_heads * d + cur.head * d], t_->num_heads * d, true);
        WaitCube(mm_dq);
      }
      if (pending) {  // cur is the pair's second step
        pair.rows += cur.rows;
      } else {
        pair = cur;
      }
      pending = !pending && i % 2 == 0 && i + 1 < steps && cur.rows == t_->block_rows && next.head == cur.head &&
                next.row0 == cur.row0 + int64_t(cur.rows);
      if (!pending) {
        const uint32_t slot = pair.rows > cur.rows ? 0 : i % 2;  // a closed pair starts in slot 0, a single in its own
        IssueTransposed(seq, pair, slot, true, added);
        WaitCube(mm_t);
        IssueTransposed(seq, pair, slot, false, added);
        WaitCube(mm_t);
        added = true;
      }
      cur = next;
    }
    vec_.Store(dk_acc_, cols, d, t_->grad_scale, dk, uint64_t(hk) * d);
    vec_.Store(dv_acc_, cols, dv, 1.0f, dv_rows, uint64_t(hk) * dv);
  }

  // Step i of a kv task: query block i % blocks of q head i / blocks of the kv head's group.
  __aicore__ inline GradStep KvStep(uint32_t kv_head, int64_t k0, uint32_t cols, int64_t q_lo, int64_t q_hi,
                                    uint32_t blocks, uint32_t i) const {
    GradStep st;
    st.kv_head = kv_head;
    st.head = kv_head * Group() + i / blocks;
    st.row0 = q_lo + int64_t(i % blocks) * t_->block_rows;
    st.rows = uint32_t(q_hi - st.row0 < t_->block_rows ? q_hi - st.row0 : t_->block_rows);
    st.k0 = k0;
    st.cols = cols;
    return st;
  }

  // Deterministic mode: dQ of query rows [tile * Bq, + Bq) of q head `head`, over the keys they see.
  __aicore__ inline void QTile(const GradSeq& seq, uint32_t head, uint32_t tile) {
    const uint32_t h = t_->num_heads, d = t_->head_dim;
    GradStep st;
    st.head = head;
    st.kv_head = head / Group();
    st.row0 = int64_t(tile) * t_->block_rows;
    st.rows = uint32_t(seq.seqlen_q - st.row0 < t_->block_rows ? seq.seqlen_q - st.row0 : t_->block_rows);
    const int64_t offset = seq.seqlen_k - seq.seqlen_q;  // query row i sits at position i + offset
    const int64_t k_lo = FirstVisibleKey(st.row0 + offset, t_->window_left);
    const int64_t k_hi = EndVisibleKey(st.row0 + st.rows - 1 + offset, seq.seqlen_k, t_->window_right);
    const uint32_t tiles = k_hi > k_lo ? uint32_t((k_hi - k_lo + t_->block_keys - 1) / t_->block_keys) : 0;
    const AscendC::GlobalTensor<T> dq = dq_[(uint64_t(seq.q_token0) + uint64_t(st.row0)) * h * d + head * d];
    if (tiles == 0) {  // the rows see no key
      vec_.StoreZeros(st.rows, d, dq, uint64_t(h) * d);
      return;
    }
    LoadStats(seq, st);
    GradStep next = st;
    st.k0 = k_lo;
    st.cols = uint32_t(k_hi - k_lo < t_->block_keys ? k_hi - k_lo : t_->block_keys);
    IssueScores(seq, st, 0);
    WaitCube(mm_s);
    IssueDp(seq, st);
    WaitCube(mm_s);
    for (uint32_t j = 0; j < tiles; ++j) {
      if (j + 1 < tiles) {
        next.k0 = st.k0 + t_->block_keys;
        next.cols = uint32_t(k_hi - next.k0 < t_->block_keys ? k_hi - next.k0 : t_->block_keys);
        IssueScores(seq, next, (j + 1) % 2);
      }
      Vector(seq, st, j % 2);
      if (j + 1 < tiles) {
        WaitCube(mm_s);
        IssueDp(seq, next);
        WaitCube(mm_s);
      }
      IssueDq(seq, st, j % 2, dq_acc_, d, j > 0);
      WaitCube(mm_dq);
      st = next;
    }
    vec_.Store(dq_acc_, st.rows, d, t_->grad_scale, dq, uint64_t(h) * d);
  }

  // lse and D of the step's query rows.
  __aicore__ inline void LoadStats(const GradSeq& seq, const GradStep& st) {
    const uint64_t at = uint64_t(st.head) * t_->total_q + seq.q_token0 + uint64_t(st.row0);
    vec_.LoadStats(lse_[at], d_ws_[at], st.rows);
  }

  __aicore__ inline void Vector(const GradSeq& seq, const GradStep& st, uint32_t slot) {
    vec_.Step(slots_[slot], st.rows, st.cols,
              FlashVisible{st.row0, seq.seqlen_q, seq.seqlen_k, st.k0, t_->window_left, t_->window_right});
  }

  // D = rowsum(dO * O) of the (head, query) rows [first, end), in D's [heads, total_q] order.
  __aicore__ inline void RowSums(uint64_t first, uint64_t end) {
    const uint64_t tq = t_->total_q, h = t_->num_heads, dv = t_->head_dim_v;
    for (uint64_t row = first; row < end;) {
      const uint64_t head = row / tq, token = row % tq;
      const uint64_t n = end - row < tq - token ? end - row : tq - token;  // within one head
      const uint64_t at = token * h * dv + head * dv;
      vec_.RowDots(dout_[at], out_[at], uint32_t(n), uint32_t(dv), h * dv, d_ws_[row]);
      row += n;
    }
  }

  template <class Mm>
  __aicore__ inline void WaitCube(Mm& mm) {
    mm.WaitIterateAll();
    mm.End();
  }

  // S[rows, cols] = Q K^T of the step into S slot `slot` (row stride Bk), asynchronously.
  __aicore__ inline void IssueScores(const GradSeq& seq, const GradStep& st, uint32_t slot) {
    const uint32_t h = t_->num_heads, hk = t_->num_kv_heads, d = t_->head_dim;
    mm_s.SetOrgShape(int(st.rows), int(st.cols), int(h * d), int(hk * d), int(t_->block_keys));
    mm_s.SetTensorA(q_[(uint64_t(seq.q_token0) + uint64_t(st.row0)) * h * d + st.head * d]);
    mm_s.SetTensorB(k_[(uint64_t(seq.k_token0) + uint64_t(st.k0)) * hk * d + st.kv_head * d], true);
    mm_s.SetTail(int(st.rows), int(st.cols), int(d));
    mm_s.template IterateAll<false>(slots_[slot].s, 0, false, true);
  }

  // dP[rows, cols] = dO V^T of the step into the dP slot, asynchronously.
  __aicore__ inline void IssueDp(const GradSeq& seq, const GradStep& st) {
    const uint32_t h = t_->num_heads, hk = t_->num_kv_heads, dv = t_->head_dim_v;
    mm_s.SetOrgShape(int(st.rows), int(st.cols), int(h * dv), int(hk * dv), int(t_->block_keys));
    mm_s.SetTensorA(dout_[(uint64_t(seq.q_token0) + uint64_t(st.row0)) * h * dv + st.head * dv]);
    mm_s.SetTensorB(v_[(uint64_t(seq.k_token0) + uint64_t(st.k0)) * hk * dv + st.kv_head * dv], true);
    mm_s.SetTail(int(st.rows), int(st.cols), int(dv));
    mm_s.template IterateAll<false>(slots_[0].dp, 0, false, true);
  }

  // dV[cols, dv] (+)= P^T dO (`value`) or dK[cols, d] (+)= dS^T Q into the task's accumulator, asynchronously, over
  // the st.rows rows whose P and dS start at slot `slot` (up to 2 Bq rows from slot 0); `add` accumulates onto what
  // the accumulator holds (the cube's atomic add; only this AIV writes it).
  __aicore__ inline void IssueTransposed(const GradSeq& seq, const GradStep& st, uint32_t slot, bool value, bool add) {
    const uint32_t h = t_->num_heads, width = value ? t_->head_dim_v : t_->head_dim;
    const uint64_t row = uint64_t(seq.q_token0) + uint64_t(st.row0);
    mm_t.SetOrgShape(int(t_->block_keys), int(h * width), int(st.rows), int(st.rows), int(width));
    mm_t.SetTensorA(value ? slots_[slot].p : slots_[slot].ds, true);
    mm_t.SetTensorB(value ? dout_[row * h * width + st.head * width] : q_[row * h * width + st.head * width]);
    mm_t.SetTail(int(st.cols), int(width), int(st.rows));
    mm_t.template IterateAll<false>(value ? dv_acc_ : dk_acc_, add ? 1 : 0, false, true);
  }

  // dQ[rows, d] (+)= dS K of the step (its dS in slot `slot`) into `dst` (rows dst_stride apart), asynchronously,
  // adding atomically when `add`.
  __aicore__ inline void IssueDq(const GradSeq& seq, const GradStep& st, uint32_t slot,
                                 const AscendC::GlobalTensor<float>& dst, uint32_t dst_stride, bool add) {
    const uint32_t hk = t_->num_kv_heads, d = t_->head_dim;
    mm_dq.SetOrgShape(int(st.rows), int(hk * d), int(t_->block_keys), int(st.cols), int(dst_stride));
    mm_dq.SetTensorA(slots_[slot].ds);
    mm_dq.SetTensorB(k_[(uint64_t(seq.k_token0) + uint64_t(st.k0)) * hk * d + st.kv_head * d]);
    mm_dq.SetTail(int(st.rows), int(d), int(st.cols));
    mm_dq.template IterateAll<false>(dst, add ? 1 : 0, false, true);
  }

  const FlashAttentionGradTiling* t_ = nullptr;
  AscendC::GlobalTensor<T> dout_, q_, k_, v_, out_, dq_, dk_, dv_out_;
  AscendC::GlobalTensor<int32_t> cu_q_, cu_k_;
  AscendC::GlobalTensor<float> lse_, d_ws_, dq_ws_, dk_acc_, dv_acc_, dq_acc_;
  GradSlots<T> slots_[2];  // S, P and dS per slot (step parity); dP shared (read by a step before the next writes it)
  GradVector<T> vec_;
};

}  // namespace ascend_attn_kernel
