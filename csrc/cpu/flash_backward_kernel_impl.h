// The CPU flash-attention backward work item (FlashAttention-2): one tile of keys of one kv head against every query
// row that sees them, with P recomputed from q, k and the forward's lse, never an S x S matrix.
// Included inside the per-ISA anonymous namespace (see flash_backward_kernel_avx2.cpp).
//
// The item keeps its K and V tile (fp32) and the fp32 dK, dV accumulators of its keys for the whole item; the q heads
// of its kv head and their q tiles stream past. Per (q head, q tile), with queries along the vector lanes as in the
// forward (transposed scores, so per-query lse, D and mask bounds are plain vectors):
//   Sᵀ = K (scale Q)ᵀ, dPᵀ = V dOᵀ  ->  Pᵀ = exp(s - lse) (softcap, alibi, mask), dSᵀ = Pᵀ (dPᵀ - D) [· (1 - tanh²)]
//   dV += Pᵀ dO,  dK += dSᵀ Q,  dQ_tile = dS K  (handed to add_dq, which scales and adds it in kv-tile order)
// Every GEMM covers only the keys (or queries) some row (or key) of its micro-tile can see, so causal and window
// masks skip whole micro-tiles, as in the forward.
#pragma once
#include "cpu/tile_util.h"

// Per-thread scratch, in floats, every region 64-byte aligned.
struct BackwardLayout {
  int64_t mp;               // query rows of a step rounded up to whole panels of NR
  int64_t ldk, ldv;         // head_dim and head_dim_v rounded up to NR
  int64_t kr, vr;           // K and V tile, fp32 rows [block_k][head_dim(_v)]
  int64_t kp;               // K tile in column panels over head_dim: [ldk / NR][block_k][NR]
  int64_t dk, dv;           // accumulators [block_k][ldk], [block_k][ldv]
  int64_t qt, ot;           // (scale Q)ᵀ and dOᵀ in query panels: [mp / NR][head_dim(_v)][NR]
  int64_t qp, op;           // Q and dO in column panels: [ldk / NR][mp][NR], [ldv / NR][mp][NR]
  int64_t st, dt;           // Pᵀ and dPᵀ (then dSᵀ): [block_k][mp]
  int64_t dq;               // the step's dS K: [mp][ldk]
  int64_t lo, hi;           // per query, int32: visible keys [lo, hi), tile-relative
  int64_t lse, delta, rel;  // per query: lse, D, position minus the tile's first key (alibi)
  int64_t total;
};

inline BackwardLayout backward_layout(const BackwardParams& p, const BackwardTiling& t) {
  BackwardLayout s;
  s.mp = round_up(t.block_q, NR);
  s.ldk = round_up(p.head_dim, NR);
  s.ldv = round_up(p.head_dim_v, NR);
  const int64_t bk = t.block_k;
  int64_t at = 0;
  auto take = [&at](int64_t floats) {
    const int64_t start = at;
    at += round_up(floats, 16);
    return start;
  };
  s.kr = take(bk * p.head_dim);
  s.vr = take(bk * p.head_dim_v);
  s.kp = take(bk * s.ldk);
  s.dk = take(bk * s.ldk);
  s.dv = take(bk * s.ldv);
  s.qt = take(s.mp * p.head_dim);
  s.ot = take(s.mp * p.head_dim_v);
  s.qp = take(s.mp * s.ldk);
  s.op = take(s.mp * s.ldv);
  s.st = take(bk * s.mp);
  s.dt = take(bk * s.mp);
  s.dq = take(s.mp * s.ldk);
  s.lo = take(s.mp);
  s.hi = take(s.mp);
  s.lse = take(s.mp);
  s.delta = take(s.mp);
  s.rel = take(s.mp);
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

// One NR-query panel over tile keys [a, b): st holds the scaled scores Sᵀ and dt holds dPᵀ on entry; on exit st holds
// Pᵀ = exp(score - lse) (0 where the query cannot see the key) and dt holds dSᵀ = Pᵀ (dPᵀ - D), times the softcap's
// derivative 1 - tanh² when softcap is on. The score transform is the forward's: softcap, then alibi, then the mask.
inline void probs_and_dscores(const BackwardParams& p, float* st, float* dt, int64_t ld, int a, int b,
                              const int32_t* lo, const int32_t* hi, const float* lse, const float* delta,
                              const float* rel, float slope) {
  bool masked = false;
  for (int q = 0; q < NR; ++q) masked |= lo[q] > a || hi[q] < b;
  const float inv_cap = p.softcap > 0.f ? 1.0f / p.softcap : 0.f;
  for (int h = 0; h < NR; h += W) {
    vi vlo, vhi;
    __builtin_memcpy(&vlo, lo + h, sizeof(vlo));
    __builtin_memcpy(&vhi, hi + h, sizeof(vhi));
    const vf vlse = vload(lse + h);
    const vf vdelta = vload(delta + h);
    const vf vrel = vload(rel + h);
    for (int j = a; j < b; ++j) {
      float* srow = st + j * ld + h;
      float* drow = dt + j * ld + h;
      vf x = vload(srow);
      vf dtanh = vsplat(1.f);
      if (p.softcap > 0.f) {
        const vf t = vtanh(x * inv_cap);
        x = t * p.softcap;
        dtanh = 1.f - t * t;
      }
      if (p.alibi != nullptr) x -= vabs(vrel - static_cast<float>(j)) * slope;
      vf prob = vexp(x - vlse);
      if (masked) {
        const vi key = vi{} + j;
        prob = (key >= vlo && key < vhi) ? prob : vf{};
      }
      vf ds = prob * (vload(drow) - vdelta);
      if (p.softcap > 0.f) ds *= dtanh;
      vstore(srow, prob);
      vstore(drow, ds);
    }
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
  const int64_t mp = L.mp;
  const int64_t k0 = static_cast<int64_t>(item.kv_tile) * Bc;
  const int n = static_cast<int>(Sk - k0 < Bc ? Sk - k0 : Bc);
  const int group = p.heads / p.kv_heads;
  const T* k = static_cast<const T*>(p.k) + sd.k_offset + item.kv_head * p.k_head_stride + k0 * p.k_row_stride;
  const T* v = static_cast<const T*>(p.v) + sd.v_offset + item.kv_head * p.v_head_stride + k0 * p.v_row_stride;

  float* Kr = scratch + L.kr;
  float* Vr = scratch + L.vr;
  float* Kp = scratch + L.kp;
  float* dK = scratch + L.dk;
  float* dV = scratch + L.dv;
  float* Qt = scratch + L.qt;
  float* Ot = scratch + L.ot;
  float* Qp = scratch + L.qp;
  float* Op = scratch + L.op;
  float* St = scratch + L.st;
  float* Dt = scratch + L.dt;
  float* dQ = scratch + L.dq;
  int32_t* lo = reinterpret_cast<int32_t*>(scratch + L.lo);
  int32_t* hi = reinterpret_cast<int32_t*>(scratch + L.hi);
  float* lse = scratch + L.lse;
  float* delta = scratch + L.delta;
  float* rel = scratch + L.rel;

  // 1. The item's K and V tile, once: K and V rows for Sᵀ and dPᵀ, K in column panels for dS K.
  for (int r = 0; r < n; ++r) {
    load_row<E>(Kr + static_cast<int64_t>(r) * D, k + r * p.k_row_stride, D, 1.0f);
    load_row<E>(Vr + static_cast<int64_t>(r) * Dv, v + r * p.v_row_stride, Dv, 1.0f);
  }
  pack_panels<E>(Kp, [&](int r) { return k + r * p.k_row_stride; }, n, D, static_cast<int64_t>(Bc) * NR);
  for (int64_t c = 0; c < n * L.ldk; c += W) vstore(dK + c, vf{});
  for (int64_t c = 0; c < n * L.ldv; c += W) vstore(dV + c, vf{});

  // 2. Every q head of the kv head, every q tile that sees these keys.
  for (int g = 0; g < group; ++g) {
    const int h = item.kv_head * group + g;
    const float slope = p.alibi != nullptr ? p.alibi[item.seq * p.alibi_seq_stride + h] : 0.f;
    const T* q = static_cast<const T*>(p.q) + sd.q_offset + h * p.q_head_stride;
    const T* dout = static_cast<const T*>(p.dout) + sd.do_offset + h * p.do_head_stride;
    for (int qt = item.q_tile_begin; qt < item.q_tile_end; ++qt) {
      const int64_t r0 = static_cast<int64_t>(qt) * Bq;
      const int m = static_cast<int>(Sq - r0 < Bq ? Sq - r0 : Bq);
      // Per query: visible keys of this tile (empty for padding lanes and for rows whose lse says they see nothing),
      // lse, D, and the alibi distance origin.
      for (int r = 0; r < mp; ++r) {
        int64_t a = 0, b = 0;
        float row_lse = 0.f;
        if (r < m) {
          const int64_t i = r0 + r;
          visible_keys(i, Sq, Sk, p.window_left, p.window_right, &a, &b);
          a = a - k0 > 0 ? a - k0 : 0;
          b = b - k0 < n ? b - k0 : n;
          row_lse = p.lse[sd.lse_offset + h * p.lse_head_stride + i];
          if (row_lse == -__builtin_inff()) b = a;
          delta[r] = p.delta[sd.lse_offset + h * p.lse_head_stride + i];
          rel[r] = static_cast<float>(i + Sk - Sq - k0);
        } else {
          delta[r] = 0.f;
          rel[r] = 0.f;
        }
        if (b <= a) a = b = 0;
        lo[r] = static_cast<int32_t>(a);
        hi[r] = static_cast<int32_t>(b);
        lse[r] = row_lse;
      }
      auto q_row = [&](int r) { return q + (r0 + r) * p.q_row_stride; };
      auto do_row = [&](int r) { return dout + (r0 + r) * p.do_row_stride; };
      pack_transposed<E>(Qt, m, D, p.scale, q_row);
      pack_transposed<E>(Ot, m, Dv, 1.0f, do_row);
      pack_panels<E>(Qp, q_row, m, D, mp * NR);
      pack_panels<E>(Op, do_row, m, Dv, mp * NR);

      // Sᵀ and dPᵀ over the keys each query panel can see, then Pᵀ and dSᵀ; other keys read as 0.
      for (int q0 = 0; q0 < mp; q0 += NR) {
        int a, b;
        key_union(lo, hi, q0, q0 + NR, 0, n, &a, &b);
        if (a >= b) a = b = 0;
        zero_rows(St + q0, mp, 0, a);
        zero_rows(St + q0, mp, b, n);
        zero_rows(Dt + q0, mp, 0, a);
        zero_rows(Dt + q0, mp, b, n);
        if (a >= b) continue;
        for (int jb = a; jb < b; jb += MR) {
          const int mr = b - jb < MR ? b - jb : MR;
          ukernel_rows(mr, D, Kr + static_cast<int64_t>(jb) * D, D, 1, Qt + static_cast<int64_t>(q0) * D,
                       St + jb * mp + q0, mp, false);
          ukernel_rows(mr, Dv, Vr + static_cast<int64_t>(jb) * Dv, Dv, 1, Ot + static_cast<int64_t>(q0) * Dv,
                       Dt + jb * mp + q0, mp, false);
        }
        probs_and_dscores(p, St + q0, Dt + q0, mp, a, b, lo + q0, hi + q0, lse + q0, delta + q0, rel + q0, slope);
      }

      // dV += Pᵀ dO and dK += dSᵀ Q, one block of MR keys at a time over the queries that see them.
      for (int jb = 0; jb < n; jb += MR) {
        const int mr = n - jb < MR ? n - jb : MR;
        int qa, qb;
        query_union(lo, hi, m, jb, jb + mr, &qa, &qb);
        if (qa >= qb) continue;
        for (int64_t c = 0; c < L.ldv; c += NR)
          ukernel_rows(mr, qb - qa, St + jb * mp + qa, mp, 1, Op + c * mp + static_cast<int64_t>(qa) * NR,
                       dV + jb * L.ldv + c, L.ldv, true);
        for (int64_t c = 0; c < L.ldk; c += NR)
          ukernel_rows(mr, qb - qa, Dt + jb * mp + qa, mp, 1, Qp + c * mp + static_cast<int64_t>(qa) * NR,
                       dK + jb * L.ldk + c, L.ldk, true);
      }

      // dQ of the tile = dS K, one block of MR queries at a time over the keys they see.
      for (int r = 0; r < m; r += MR) {
        const int mr = m - r < MR ? m - r : MR;
        int ka, kb;
        key_union(lo, hi, r, r + mr, 0, n, &ka, &kb);
        if (ka >= kb) {
          for (int i = r; i < r + mr; ++i)
            for (int64_t c = 0; c < L.ldk; c += W) vstore(dQ + i * L.ldk + c, vf{});
          continue;
        }
        for (int64_t c = 0; c < L.ldk; c += NR)
          ukernel_rows(mr, kb - ka, Dt + static_cast<int64_t>(ka) * mp + r, 1, mp,
                       Kp + c * Bc + static_cast<int64_t>(ka) * NR, dQ + r * L.ldk + c, L.ldk, false);
      }
      p.add_dq(p.add_dq_ctx, item, h, qt, dQ, L.ldk);
    }
  }

  // 3. The item's keys: dK = scale dSᵀ Q (the scale of s = scale q·k), dV as accumulated; every key row is written.
  T* dk = static_cast<T*>(p.dk) + sd.dk_offset + item.kv_head * p.dk_head_stride + k0 * p.dk_row_stride;
  T* dv = static_cast<T*>(p.dv) + sd.dv_offset + item.kv_head * p.dv_head_stride + k0 * p.dv_row_stride;
  for (int r = 0; r < n; ++r) {
    store_row<E>(dk + r * p.dk_row_stride, dK + r * L.ldk, D, p.scale);
    store_row<E>(dv + r * p.dv_row_stride, dV + r * L.ldv, Dv, 1.0f);
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
