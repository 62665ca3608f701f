// The CPU flash-attention backward work item (FlashAttention-2): one tile of keys of one kv head against every query
// row that sees them, with P recomputed from q, k and the forward's lse, never an S x S matrix.
// Included inside the per-ISA anonymous namespace (see flash_backward_kernel_avx2.cpp).
//
// The item keeps its K and V tile (fp32, scaled K both ways round, V transposed) and the fp32 dK, dV accumulators of
// its keys for the whole item; the q heads of its kv head and their q tiles stream past. Per (q head, q tile), with
// queries along the rows and keys along the vector lanes:
//   S = Q (scale K)ᵀ, dP = dO Vᵀ  ->  P = exp(S - lse) (softcap, alibi, mask), dS = P (dP - D) [· (1 - tanh²)]
//   dV += Pᵀ dO,  dK += dSᵀ Q,  dQ += dS (scale K)  (added in kv-tile order)
// This orientation reads the step's Q and dO only as row-major copies: the GEMMs that need them on the reduction side
// (dV, dK) take them as B with their row stride, so nothing is transposed per step (transposing Q and dO for every
// (kv tile, q tile) pair cost a third of the time). Every GEMM covers only the keys (or queries) some row (or key) of
// its micro-tile can see, so causal and window masks skip whole micro-tiles, as in the forward.
#pragma once
#include "cpu/tile_util.h"

// Per-thread scratch, in floats, every region 64-byte aligned.
struct BackwardLayout {
  int64_t ldk, ldv;  // head_dim and head_dim_v rounded up to NR
  int64_t ldp;       // block_k rounded up to NR: row length of P and dS
  int64_t kt, vt;    // (scale K)ᵀ and Vᵀ in key panels: [ldp / NR][head_dim(_v)][NR]
  int64_t kr;        // scale K, rows [block_k][ldk]
  int64_t dk, dv;    // accumulators [block_k][ldk], [block_k][ldv]
  int64_t qr, or_;   // the step's Q and dO rows: [block_q][ldk], [block_q][ldv]
  int64_t pr, ds;    // P and dP (then dS): [block_q][ldp]
  int64_t dq;        // the step's dS (scale K): [block_q][ldk]
  int64_t lo, hi;    // per query, int32: visible keys [lo, hi), tile-relative
  int64_t total;
};

inline BackwardLayout backward_layout(const BackwardParams& p, const BackwardTiling& t) {
  BackwardLayout s;
  s.ldk = round_up(p.head_dim, NR);
  s.ldv = round_up(p.head_dim_v, NR);
  s.ldp = round_up(t.block_k, NR);
  const int64_t bk = t.block_k, bq = t.block_q;
  int64_t at = 0;
  auto take = [&at](int64_t floats) {
    const int64_t start = at;
    at += round_up(floats, 16);
    return start;
  };
  s.kt = take(s.ldp * p.head_dim);
  s.vt = take(s.ldp * p.head_dim_v);
  s.kr = take(bk * s.ldk);
  s.dk = take(bk * s.ldk);
  s.dv = take(bk * s.ldv);
  s.qr = take(bq * s.ldk);
  s.or_ = take(bq * s.ldv);
  s.pr = take(bq * s.ldp);
  s.ds = take(bq * s.ldp);
  s.dq = take(bq * s.ldk);
  s.lo = take(bq);
  s.hi = take(bq);
  s.total = at;
  return s;
}

inline size_t backward_scratch_floats(const BackwardParams& p, const BackwardTiling& t) {
  return static_cast<size_t>(backward_layout(p, t).total);
}

// Query range [qa, qb) of which some query sees one of the tile keys [j0, j1); empty when qa >= qb.
inline void query_union(const int32_t* lo, const int32_t* hi, int m, int j0, int j1, int* qa, int* qb) {
  int a = m, b = 0;
  for (int q = 0; q < m; ++q) {
    if (lo[q] < j1 && hi[q] > j0 && lo[q] < hi[q]) {
      a = q < a ? q : a;
      b = q + 1;
    }
  }
  *qa = a;
  *qb = b;
}

// One query row over the key lanes [a, b) (multiples of W): pr holds the scaled scores and ds holds dP on entry; on
// exit pr holds P = exp(score - lse) (0 where the query cannot see the key, keys [lo, hi)) and ds holds
// dS = P (dP - D), times the softcap's derivative 1 - tanh² when softcap is on. The score transform is the forward's:
// softcap, then alibi (rel = the query's position minus the tile's first key), then the mask.
inline void probs_and_dscores(const BackwardParams& p, float* pr, float* ds, int a, int b, int lo, int hi, float lse,
                              float delta, float rel, float slope) {
  const float inv_cap = p.softcap > 0.f ? 1.0f / p.softcap : 0.f;
  vi lane;
  for (int i = 0; i < W; ++i) lane[i] = i;
  for (int j = a; j < b; j += W) {
    vf x = vload(pr + j);
    vf dtanh = vsplat(1.f);
    if (p.softcap > 0.f) {
      const vf t = vtanh(x * inv_cap);
      x = t * p.softcap;
      dtanh = 1.f - t * t;
    }
    const vi key = lane + j;
    if (p.alibi != nullptr) x -= vabs(rel - __builtin_convertvector(key, vf)) * slope;
    vf prob = vexp(x - lse);
    if (j < lo || j + W > hi) prob = (key >= lo && key < hi) ? prob : vf{};
    vf d = prob * (vload(ds + j) - delta);
    if (p.softcap > 0.f) d *= dtanh;
    vstore(pr + j, prob);
    vstore(ds + j, d);
  }
}

template <ElemType E>
void backward_run(const BackwardParams& p, const BackwardTiling& t, const BackwardItem& item, float* scratch) {
  using T = typename Elem<E>::T;
  const BackwardLayout L = backward_layout(p, t);
  const BackwardSeq& sd = p.seqs[item.seq];
  const int64_t Sq = sd.seqlen_q, Sk = sd.seqlen_k;
  const int D = p.head_dim, Dv = p.head_dim_v;
  const int Bq = t.block_q, Bc = t.block_k;
  const int64_t ldk = L.ldk, ldv = L.ldv, ldp = L.ldp;
  const int64_t k0 = static_cast<int64_t>(item.kv_tile) * Bc;
  const int n = static_cast<int>(Sk - k0 < Bc ? Sk - k0 : Bc);
  const int npad = static_cast<int>(round_up(n, NR));
  const int group = p.heads / p.kv_heads;
  const T* k = static_cast<const T*>(p.k) + sd.k_offset + item.kv_head * p.k_head_stride + k0 * p.k_row_stride;
  const T* v = static_cast<const T*>(p.v) + sd.v_offset + item.kv_head * p.v_head_stride + k0 * p.v_row_stride;

  float* Kt = scratch + L.kt;
  float* Vt = scratch + L.vt;
  float* Kr = scratch + L.kr;
  float* dK = scratch + L.dk;
  float* dV = scratch + L.dv;
  float* Qr = scratch + L.qr;
  float* Or = scratch + L.or_;
  float* Pr = scratch + L.pr;
  float* dS = scratch + L.ds;
  float* dQ = scratch + L.dq;
  int32_t* lo = reinterpret_cast<int32_t*>(scratch + L.lo);
  int32_t* hi = reinterpret_cast<int32_t*>(scratch + L.hi);

  // 1. The item's K and V tile, once. The softmax scale sits on K: S = Q (scale K)ᵀ and dQ = dS (scale K) need it
  // there, and dK = scale dSᵀ Q gets it when stored.
  auto k_row = [&](int r) { return k + r * p.k_row_stride; };
  auto v_row = [&](int r) { return v + r * p.v_row_stride; };
  pack_transposed<E>(Kt, n, D, p.scale, k_row);
  pack_transposed<E>(Vt, n, Dv, 1.0f, v_row);
  for (int r = 0; r < n; ++r) load_row_padded<E>(Kr + r * ldk, k_row(r), D, static_cast<int>(ldk), p.scale);
  for (int64_t c = 0; c < n * ldk; c += W) vstore(dK + c, vf{});
  for (int64_t c = 0; c < n * ldv; c += W) vstore(dV + c, vf{});

  // 2. Every q tile that sees these keys, every q head of the kv head.
  // q tiles outermost: the group's q heads of one row share pages of q, dout and dQ, so consecutive steps reuse the
  // TLB entries of the last (rows lie heads * head_dim apart, each in its own page).
  for (int qt = item.q_tile_begin; qt < item.q_tile_end; ++qt) {
    const int64_t r0 = static_cast<int64_t>(qt) * Bq;
    const int m = static_cast<int>(Sq - r0 < Bq ? Sq - r0 : Bq);
    for (int g = 0; g < group; ++g) {
      const int h = item.kv_head * group + g;
      const float slope = p.alibi != nullptr ? p.alibi[item.seq * p.alibi_seq_stride + h] : 0.f;
      const T* q = static_cast<const T*>(p.q) + sd.q_offset + h * p.q_head_stride;
      const T* dout = static_cast<const T*>(p.dout) + sd.do_offset + h * p.do_head_stride;
      const float* lse_h = p.lse + sd.lse_offset + h * p.lse_head_stride;
      const float* delta_h = p.delta + sd.lse_offset + h * p.lse_head_stride;
      float* acc = p.dq_acc + sd.dq_row * p.dq_row_stride + static_cast<int64_t>(h) * D;
      // Per query: the keys of this tile it sees (none when its lse says it sees no key at all).
      for (int r = 0; r < m; ++r) {
        int64_t a, b;
        visible_keys(r0 + r, Sq, Sk, p.window_left, p.window_right, &a, &b);
        a = a - k0 > 0 ? a - k0 : 0;
        b = b - k0 < n ? b - k0 : n;
        if (b <= a || lse_h[r0 + r] == -__builtin_inff()) a = b = 0;
        lo[r] = static_cast<int32_t>(a);
        hi[r] = static_cast<int32_t>(b);
      }
      for (int r = 0; r < m; ++r) {
        load_row_padded<E>(Qr + r * ldk, q + (r0 + r) * p.q_row_stride, D, static_cast<int>(ldk), 1.0f);
        load_row_padded<E>(Or + r * ldv, dout + (r0 + r) * p.do_row_stride, Dv, static_cast<int>(ldv), 1.0f);
      }
      // Q and dO rows lie heads * head_dim apart, and the dQ rows this step adds to were last touched a whole chain
      // of steps ago: both come from DRAM unless requested early. The next step's Q and dO rows are requested a slice
      // per query block of this step's S loop, this step's dQ rows a slice per key block of its dV / dK loop.
      const bool last_head = g + 1 == group;
      const int next_h = last_head ? item.kv_head * group : h + 1;
      const int64_t next_r0 = last_head ? r0 + Bq : r0;
      const int next_m = next_r0 < static_cast<int64_t>(item.q_tile_end) * Bq && next_r0 < Sq
                             ? static_cast<int>(Sq - next_r0 < Bq ? Sq - next_r0 : Bq)
                             : 0;
      const T* next_q = static_cast<const T*>(p.q) + sd.q_offset + next_h * p.q_head_stride + next_r0 * p.q_row_stride;
      const T* next_do =
          static_cast<const T*>(p.dout) + sd.do_offset + next_h * p.do_head_stride + next_r0 * p.do_row_stride;
      const int row_blocks = (m + MR - 1) / MR, key_blocks = (n + MR - 1) / MR;

      // S and dP over the key panels each block of MR queries can see, then P and dS; other keys read as 0.
      for (int r = 0; r < m; r += MR) {
        const int mr = m - r < MR ? m - r : MR;
        int a, b;
        key_union(lo, hi, r, r + mr, 0, n, &a, &b);
        const int ca = a < b ? a / NR * NR : 0, cb = a < b ? static_cast<int>(round_up(b, NR)) : 0;
        const int f0 = next_m * (r / MR) / row_blocks, f1 = next_m * (r / MR + 1) / row_blocks;
        prefetch_rows([&](int64_t i) { return next_q + i * p.q_row_stride; }, f0, f1, D * sizeof(T));
        prefetch_rows([&](int64_t i) { return next_do + i * p.do_row_stride; }, f0, f1, Dv * sizeof(T));
        for (int i = r; i < r + mr; ++i) {
          for (int j = 0; j < ca; j += W) vstore(Pr + i * ldp + j, vf{}), vstore(dS + i * ldp + j, vf{});
          for (int j = cb; j < npad; j += W) vstore(Pr + i * ldp + j, vf{}), vstore(dS + i * ldp + j, vf{});
        }
        for (int c = ca; c < cb; c += NR) {
          ukernel_rows(mr, D, Qr + r * ldk, ldk, 1, Kt + static_cast<int64_t>(c) * D, NR, Pr + r * ldp + c, ldp, false);
          ukernel_rows(mr, Dv, Or + r * ldv, ldv, 1, Vt + static_cast<int64_t>(c) * Dv, NR, dS + r * ldp + c, ldp,
                       false);
        }
        for (int i = r; i < r + mr; ++i) {
          const int64_t row = r0 + i;
          if (lo[i] < hi[i])
            probs_and_dscores(p, Pr + i * ldp, dS + i * ldp, ca, cb, lo[i], hi[i], lse_h[row], delta_h[row],
                              static_cast<float>(row + Sk - Sq - k0), slope);
          else
            for (int j = ca; j < cb; j += W) vstore(Pr + i * ldp + j, vf{}), vstore(dS + i * ldp + j, vf{});
        }
      }

      // dV += Pᵀ dO and dK += dSᵀ Q, one block of MR keys at a time over the queries that see them.
      for (int jb = 0; jb < n; jb += MR) {
        const int mr = n - jb < MR ? n - jb : MR;
        const int f0 = m * (jb / MR) / key_blocks, f1 = m * (jb / MR + 1) / key_blocks;
        prefetch_rows([&](int64_t i) { return acc + (r0 + i) * p.dq_row_stride; }, f0, f1, D * sizeof(float));
        int qa, qb;
        query_union(lo, hi, m, jb, jb + mr, &qa, &qb);
        if (qa >= qb) continue;
        for (int64_t c = 0; c < ldv; c += NR)
          ukernel_rows(mr, qb - qa, Pr + qa * ldp + jb, 1, ldp, Or + qa * ldv + c, ldv, dV + jb * ldv + c, ldv, true);
        for (int64_t c = 0; c < ldk; c += NR)
          ukernel_rows(mr, qb - qa, dS + qa * ldp + jb, 1, ldp, Qr + qa * ldk + c, ldk, dK + jb * ldk + c, ldk, true);
      }

      // The tile's dS (scale K), one block of MR queries at a time over the keys they see, then added to dQ after the
      // lower kv tiles' parts. Only rows that see a key of the tile add: the others' dS rows, hence dQ rows, are 0.
      for (int r = 0; r < m; r += MR) {
        const int mr = m - r < MR ? m - r : MR;
        int ka, kb;
        key_union(lo, hi, r, r + mr, 0, n, &ka, &kb);
        for (int64_t c = 0; c < ldk && ka < kb; c += NR)
          ukernel_rows(mr, kb - ka, dS + r * ldp + ka, ldp, 1, Kr + ka * ldk + c, ldk, dQ + r * ldk + c, ldk, false);
      }
      p.dq_wait(p.dq_ctx, item, h, qt);
      for (int i = 0; i < m; ++i) {
        if (lo[i] >= hi[i]) continue;
        float* dst = acc + (r0 + i) * p.dq_row_stride;
        const float* src = dQ + i * ldk;
        int c = 0;
        for (; c + W <= D; c += W) vstore(dst + c, vload(dst + c) + vload(src + c));
        for (; c < D; ++c) dst[c] += src[c];
      }
      p.dq_done(p.dq_ctx, item, h, qt);
    }
  }

  // 3. The item's keys: dK = scale dSᵀ Q (the scale of s = scale q·k), dV as accumulated; every key row is written.
  T* dk = static_cast<T*>(p.dk) + sd.dk_offset + item.kv_head * p.dk_head_stride + k0 * p.dk_row_stride;
  T* dv = static_cast<T*>(p.dv) + sd.dv_offset + item.kv_head * p.dv_head_stride + k0 * p.dv_row_stride;
  for (int r = 0; r < n; ++r) {
    store_row<E>(dk + r * p.dk_row_stride, dK + r * ldk, D, p.scale);
    store_row<E>(dv + r * p.dv_row_stride, dV + r * ldv, Dv, 1.0f);
  }
}

inline void backward_run_any(const BackwardParams& p, const BackwardTiling& t, const BackwardItem& item,
                             float* scratch) {
  switch (p.dtype) {
    case ElemType::kFloat32:
      return backward_run<ElemType::kFloat32>(p, t, item, scratch);
    case ElemType::kFloat16:
      return backward_run<ElemType::kFloat16>(p, t, item, scratch);
    case ElemType::kBFloat16:
      return backward_run<ElemType::kBFloat16>(p, t, item, scratch);
  }
}
