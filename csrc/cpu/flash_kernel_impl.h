// The CPU flash-attention work item: tiled online softmax over K/V tiles, never materializing S x S.
// Included after vec.h and gemm_ukernel.h, inside the per-ISA anonymous namespace.
//
// One work item stacks `head_count` q heads x `rows` query rows into M rows that share one kv head, so each K/V tile
// is converted and packed once for all of them. Per K/V tile and per block of MR rows:
//   S = (scale Q) Kᵀ  ->  softcap, alibi, mask  ->  online softmax (running max m, sum l)  ->  O = alpha O + P V
// Only the keys some row of the block can see are computed, so causal and window masks skip whole micro-tiles.
#pragma once
#include "cpu/gemm_ukernel.h"

// Per-thread scratch, in floats, every region 64-byte aligned.
struct ScratchLayout {
  int64_t ldq, lds, ldo, v_panel_stride;
  int64_t q, kp, vp, s, o, m, l, lo, hi, total;
};

inline int64_t round_up16(int64_t x) { return (x + 15) & ~int64_t{15}; }

inline ScratchLayout scratch_layout(const FlashParams& p, const FlashTiling& t) {
  ScratchLayout s;
  const int64_t rows = static_cast<int64_t>(t.block_q) * t.heads_per_item;
  const int64_t k_panels = (t.block_k + NR - 1) / NR;
  const int64_t v_panels = (p.head_dim_v + NR - 1) / NR;
  s.ldq = p.head_dim;
  s.lds = k_panels * NR;
  s.ldo = v_panels * NR;
  s.v_panel_stride = static_cast<int64_t>(t.block_k) * NR;
  int64_t at = 0;
  auto take = [&at](int64_t floats) {
    const int64_t start = at;
    at += round_up16(floats);
    return start;
  };
  s.q = take(rows * s.ldq);
  s.kp = take(k_panels * p.head_dim * NR);
  s.vp = take(v_panels * s.v_panel_stride);
  s.s = take(MR * s.lds);
  s.o = take(rows * s.ldo);
  s.m = take(rows);
  s.l = take(rows);
  s.lo = take(rows);  // int32 key bounds stored in float-sized slots
  s.hi = take(rows);
  s.total = at;
  return s;
}

inline size_t flash_scratch_floats(const FlashParams& p, const FlashTiling& t) {
  return static_cast<size_t>(scratch_layout(p, t).total);
}

inline vf iota_vf() {
  vf v;
  for (int i = 0; i < W; ++i) v[i] = static_cast<float>(i);
  return v;
}

inline void softcap_row(float* s, int n, float cap) {
  const float inv = 1.0f / cap;
  int j = 0;
  for (; j + W <= n; j += W) vstore(s + j, vtanh(vload(s + j) * inv) * cap);
  for (; j < n; ++j) s[j] = vtanh(vsplat(s[j] * inv))[0] * cap;
}

// s[j] -= slope * |pos - (first_key + j)|
inline void alibi_row(float* s, int n, float slope, int64_t pos, int64_t first_key) {
  const float d0 = static_cast<float>(pos - first_key);
  const vf iota = iota_vf();
  int j = 0;
  for (; j + W <= n; j += W) {
    const vf d = (d0 - static_cast<float>(j)) - iota;
    vstore(s + j, vload(s + j) - (d < 0.f ? -d : d) * slope);
  }
  for (; j < n; ++j) {
    const float d = d0 - static_cast<float>(j);
    s[j] -= (d < 0.f ? -d : d) * slope;
  }
}

inline float max_row(const float* s, int n) {
  vf mv = vsplat(-__builtin_inff());
  int j = 0;
  for (; j + W <= n; j += W) {
    const vf x = vload(s + j);
    mv = x > mv ? x : mv;
  }
  float m = hmax(mv);
  for (; j < n; ++j) m = s[j] > m ? s[j] : m;
  return m;
}

// s[j] = exp(s[j] - m) in place; returns the sum.
inline float exp_sum_row(float* s, int n, float m) {
  vf acc = vf{};
  int j = 0;
  for (; j + W <= n; j += W) {
    const vf e = vexp(vload(s + j) - m);
    vstore(s + j, e);
    acc += e;
  }
  float sum = hsum(acc);
  if (j < n) {
    float tail[W];
    for (int t = 0; t < W; ++t) tail[t] = t < n - j ? s[j + t] : -__builtin_inff();
    const vf e = vexp(vload(tail) - m);
    for (int t = 0; t < n - j; ++t) {
      s[j + t] = e[t];
      sum += e[t];
    }
  }
  return sum;
}

inline void scale_row(float* o, int n, float a) {
  for (int j = 0; j < n; j += W) vstore(o + j, vload(o + j) * a);
}

template <ElemType E>
void flash_run(const FlashParams& p, const FlashTiling& t, const WorkItem& item, float* scratch) {
  using T = typename Elem<E>::T;
  const ScratchLayout L = scratch_layout(p, t);
  const SeqDesc& sd = p.seqs[item.seq];
  const int64_t Sq = sd.seqlen_q, Sk = sd.seqlen_k;
  const int rows = item.row_end - item.row_begin;
  const int M = rows * item.head_count;
  const int kv_head = item.head_begin / (p.heads / p.kv_heads);
  const int D = p.head_dim, Dv = p.head_dim_v;
  const int Bc = t.block_k;
  const T* q = static_cast<const T*>(p.q) + sd.q_offset;
  const T* k = static_cast<const T*>(p.k) + sd.k_offset + kv_head * p.k_head_stride;
  const T* v = static_cast<const T*>(p.v) + sd.v_offset + kv_head * p.v_head_stride;
  T* out = static_cast<T*>(p.out) + sd.o_offset;

  float* Q = scratch + L.q;
  float* Kp = scratch + L.kp;
  float* Vp = scratch + L.vp;
  float* S = scratch + L.s;
  float* O = scratch + L.o;
  float* m = scratch + L.m;
  float* l = scratch + L.l;
  int32_t* lo = reinterpret_cast<int32_t*>(scratch + L.lo);
  int32_t* hi = reinterpret_cast<int32_t*>(scratch + L.hi);

  // 1. Scaled Q rows, running statistics, and each row's visible keys.
  int64_t key_lo = Sk, key_hi = 0;
  for (int r = 0; r < M; ++r) {
    const int64_t i = item.row_begin + r % rows;
    const int h = item.head_begin + r / rows;
    load_row<E>(Q + r * L.ldq, q + i * p.q_row_stride + h * p.q_head_stride, D, p.scale);
    int64_t a, b;
    visible_keys(i, Sq, Sk, p.window_left, p.window_right, &a, &b);
    if (b <= a) a = b = 0;
    lo[r] = static_cast<int32_t>(a);
    hi[r] = static_cast<int32_t>(b);
    if (a < b) {
      key_lo = a < key_lo ? a : key_lo;
      key_hi = b > key_hi ? b : key_hi;
    }
    m[r] = -__builtin_inff();
    l[r] = 0.f;
    for (int64_t c = 0; c < L.ldo; ++c) O[r * L.ldo + c] = 0.f;
  }

  // 2. Stream the K/V tiles that any row can see.
  for (int64_t j0 = key_lo; j0 < key_hi; j0 += Bc) {
    const int n = static_cast<int>(key_hi - j0 < Bc ? key_hi - j0 : Bc);
    pack_transposed<E>(Kp, k + j0 * p.k_row_stride, p.k_row_stride, n, D);
    pack_rows<E>(Vp, v + j0 * p.v_row_stride, p.v_row_stride, n, Dv, static_cast<int>(L.v_panel_stride));

    for (int rb = 0; rb < M; rb += MR) {
      const int mr = M - rb < MR ? M - rb : MR;
      // Keys of this tile that some row of the block sees: [blo, bhi).
      int blo = n, bhi = 0;
      for (int r = rb; r < rb + mr; ++r) {
        const int a = static_cast<int>(lo[r] - j0 > 0 ? lo[r] - j0 : 0);
        const int b = static_cast<int>(hi[r] - j0 < n ? hi[r] - j0 : n);
        if (a < b) {
          blo = a < blo ? a : blo;
          bhi = b > bhi ? b : bhi;
        }
      }
      if (blo >= bhi) continue;
      const int p0 = blo / NR, p1 = (bhi + NR - 1) / NR;

      // S = Q Kᵀ on the panels that cover [blo, bhi).
      for (int pp = p0; pp < p1; ++pp)
        ukernel_rows(mr, D, Q + rb * L.ldq, L.ldq, Kp + static_cast<int64_t>(pp) * D * NR, S + pp * NR, L.lds, false);

      // Online softmax per row; P overwrites S, zero where the row sees nothing.
      for (int rr = 0; rr < mr; ++rr) {
        const int r = rb + rr;
        float* s = S + rr * L.lds;
        const int a = static_cast<int>(lo[r] - j0 > blo ? lo[r] - j0 : blo);
        const int b = static_cast<int>(hi[r] - j0 < bhi ? hi[r] - j0 : bhi);
        if (a >= b) {
          for (int j = blo; j < bhi; ++j) s[j] = 0.f;
          continue;
        }
        const int64_t i = item.row_begin + r % rows;
        if (p.softcap > 0.f) softcap_row(s + a, b - a, p.softcap);
        if (p.alibi != nullptr) {
          const int h = item.head_begin + r / rows;
          const float slope = p.alibi[item.seq * p.alibi_seq_stride + h];
          alibi_row(s + a, b - a, slope, i + Sk - Sq, j0 + a);
        }
        const float m_tile = max_row(s + a, b - a);
        const float m_new = m_tile > m[r] ? m_tile : m[r];
        const float alpha = m[r] == -__builtin_inff() ? 0.f : __builtin_expf(m[r] - m_new);
        const float sum = exp_sum_row(s + a, b - a, m_new);
        for (int j = blo; j < a; ++j) s[j] = 0.f;
        for (int j = b; j < bhi; ++j) s[j] = 0.f;
        l[r] = l[r] * alpha + sum;
        m[r] = m_new;
        if (alpha != 1.f) scale_row(O + r * L.ldo, static_cast<int>(L.ldo), alpha);
      }

      // O += P V over keys [blo, bhi).
      for (int64_t c = 0; c < L.ldo; c += NR)
        ukernel_rows(mr, bhi - blo, S + blo, L.lds, Vp + (c / NR) * L.v_panel_stride + blo * NR, O + rb * L.ldo + c,
                     L.ldo, true);
    }
  }

  // 3. Normalize, convert, and write out (and lse).
  for (int r = 0; r < M; ++r) {
    const int64_t i = item.row_begin + r % rows;
    const int h = item.head_begin + r / rows;
    const float inv = l[r] > 0.f ? 1.0f / l[r] : 0.f;
    store_row<E>(out + i * p.o_row_stride + h * p.o_head_stride, O + r * L.ldo, Dv, inv);
    if (p.lse != nullptr)
      p.lse[sd.lse_offset + h * p.lse_head_stride + i] = l[r] > 0.f ? m[r] + __builtin_logf(l[r]) : -__builtin_inff();
  }
}

inline void flash_run_any(const FlashParams& p, const FlashTiling& t, const WorkItem& item, float* scratch) {
  switch (p.dtype) {
    case ElemType::kFloat32:
      return flash_run<ElemType::kFloat32>(p, t, item, scratch);
    case ElemType::kFloat16:
      return flash_run<ElemType::kFloat16>(p, t, item, scratch);
    case ElemType::kBFloat16:
      return flash_run<ElemType::kBFloat16>(p, t, item, scratch);
  }
}
