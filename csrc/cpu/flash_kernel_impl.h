// The CPU flash-attention work item: tiled online softmax over K/V tiles, never materializing S x S.
// Included inside the per-ISA anonymous namespace (see flash_kernel_avx2.cpp).
//
// One work item stacks `head_count` q heads x `rows` query rows into M "queries" that share one kv head, so each K/V
// tile is converted and packed once for all of them. Scores are computed transposed, Sᵀ = K (scale Q)ᵀ, so queries
// run along the vector lanes: the online softmax (running max m, sum l per query) is then plain element-wise vector
// code, and Qᵀ is packed once per item instead of transposing every K tile. Per K/V tile:
//   Sᵀ = K Qᵀ  ->  softcap, alibi, mask  ->  online softmax  ->  O = alpha O + P V
// Only keys that some query of a panel (QK) or of a row block (PV) can see are computed, so causal and window masks
// skip whole micro-tiles.
#pragma once
#include "cpu/tile_util.h"

// Largest K/V tile (FlashTiling::block_k) a kernel accepts: bounds the per-tile row-pointer arrays.
constexpr int kMaxBlockK = 512;
// How many keys ahead of its dot products the few-query path prefetches K rows.
constexpr int kFewPrefetchKeys = 16;

// Per-thread scratch, in floats, every region 64-byte aligned.
struct ScratchLayout {
  int64_t mp;                 // queries rounded up to whole panels of NR
  int64_t ldo;                // head_dim_v rounded up to NR
  int64_t v_panel_stride;     // floats per packed V panel
  int64_t qt, kt, vp, st, o;  // Qᵀ panels (few-query rows), K tile, V panels, Sᵀ [block_k][mp] (S), O [mp][ldo]
  int64_t m, l, alpha;        // per query: running max, sum, rescale
  int64_t lo, hi, pos;        // per query, int32 (floats are inexact past 2^24): visible keys [lo, hi), position
  int64_t slope;              // per query: alibi slope
  int64_t total;
};

inline ScratchLayout scratch_layout(const FlashParams& p, const FlashTiling& t) {
  ScratchLayout s;
  s.mp = round_up(static_cast<int64_t>(t.block_q) * t.heads_per_item, NR);
  s.ldo = round_up(p.head_dim_v, NR);
  s.v_panel_stride = static_cast<int64_t>(t.block_k) * NR;
  int64_t at = 0;
  auto take = [&at](int64_t floats) {
    const int64_t start = at;
    at += round_up(floats, 16);
    return start;
  };
  const int64_t dp = round_up(p.head_dim, W);  // few-query items keep zero-padded fp32 rows of dp floats
  s.qt = take(s.mp * dp);
  s.kt = take(static_cast<int64_t>(t.block_k) * p.head_dim);
  s.vp = take(s.ldo / NR * s.v_panel_stride);
  s.st = take(static_cast<int64_t>(t.block_k) * s.mp);
  s.o = take(s.mp * s.ldo);
  s.m = take(s.mp);
  s.l = take(s.mp);
  s.alpha = take(s.mp);
  s.lo = take(s.mp);
  s.hi = take(s.mp);
  s.pos = take(s.mp);
  s.slope = take(s.mp);
  s.total = at;
  return s;
}

inline size_t flash_scratch_floats(const FlashParams& p, const FlashTiling& t) {
  return static_cast<size_t>(scratch_layout(p, t).total);
}

inline void scale_row(float* o, int n, float a) {
  for (int j = 0; j < n; j += W) vstore(o + j, vload(o + j) * a);
}

// Online-softmax update of one panel of NR queries over Sᵀ rows [a, b) (keys j0 + a .. j0 + b). Scores that the
// query cannot see become 0 in P; m, l and alpha of the panel's queries are updated.
inline void softmax_panel(const FlashParams& p, float* st, int64_t ld, int a, int b, int64_t j0, const int32_t* lo,
                          const int32_t* hi, const float* slope, const int32_t* pos, float* m, float* l, float* alpha) {
  const vf neg_inf = vsplat(-__builtin_inff());
  bool masked = false;
  for (int q = 0; q < NR; ++q) masked |= lo[q] > j0 + a || hi[q] < j0 + b;
  const float inv_cap = p.softcap > 0.f ? 1.0f / p.softcap : 0.f;
  const bool transformed = masked || p.softcap > 0.f || p.alibi != nullptr;
  for (int h = 0; h < NR; h += W) {
    vi vlo, vhi;
    __builtin_memcpy(&vlo, lo + h, sizeof(vlo));
    __builtin_memcpy(&vhi, hi + h, sizeof(vhi));
    // Alibi distances are taken from the tile start (pos - j0, exact in int64), so they stay exact in float for every
    // key within 2^24 of the query, where the bias is small enough to matter.
    vf vrel{}, vslope{};
    if (p.alibi != nullptr) {
      for (int q = 0; q < W; ++q) vrel[q] = static_cast<float>(static_cast<int64_t>(pos[h + q]) - j0);
      vslope = vload(slope + h);
    }
    vf mx = neg_inf;
    for (int j = a; j < b; ++j) {
      float* row = st + j * ld + h;
      vf x = vload(row);
      const vi key = vi{} + static_cast<int32_t>(j0 + j);
      if (p.softcap > 0.f) x = vtanh(x * inv_cap) * p.softcap;
      if (p.alibi != nullptr) x -= vabs(vrel - static_cast<float>(j)) * vslope;
      if (masked) x = (key >= vlo && key < vhi) ? x : neg_inf;
      if (transformed) vstore(row, x);
      mx = x > mx ? x : mx;
    }
    const vf m_old = vload(m + h);
    const vf m_new = mx > m_old ? mx : m_old;
    // A query with no visible key so far keeps m = -inf: subtract 0 instead, so exp(-inf) = 0 rather than NaN.
    const vf shift = m_new == neg_inf ? vf{} : m_new;
    vf sum = vf{};
    for (int j = a; j < b; ++j) {
      float* row = st + j * ld + h;
      const vf e = vexp(vload(row) - shift);
      vstore(row, e);
      sum += e;
    }
    const vf al = vexp(m_old - shift);
    vstore(alpha + h, al);
    vstore(l + h, vload(l + h) * al + sum);
    vstore(m + h, m_new);
  }
}

// ---- few-query items (decode: heads per kv head x new tokens <= kFewQueryRows rows per kv head) ----
// With queries on the vector lanes most lanes would idle, so these items keep scores row-major, S[r][key]: q·k is a
// dot product over head_dim, and the softmax runs along the keys of each row. K and V are read where they lie (no
// converted copy of the tile). Such an item may cover several kv heads (FlashTiling::kv_heads_per_item): its scores
// take a pair of keys at a time, every kv head's rows in turn, so the reads run along whole key rows.

inline float hsum_tree(vf v) {
  float t[W];
  __builtin_memcpy(t, &v, sizeof(t));
  for (int half = W / 2; half > 0; half /= 2)
    for (int i = 0; i < half; ++i) t[i] += t[i + half];
  return t[0];
}

// Lanes [0, W/2) hold the sums of a's lane pairs (a0 + a1, a2 + a3, ...), lanes [W/2, W) those of b's.
inline vf pair_sums(vf a, vf b) {
  vi even, odd;
  for (int i = 0; i < W; ++i) {
    even[i] = 2 * i;
    odd[i] = 2 * i + 1;
  }
  return __builtin_shuffle(a, b, even) + __builtin_shuffle(a, b, odd);
}

// out(i, sum of x[i]'s lanes) for i < N: W vectors at a time are folded pairwise into one whose lane i is x[i]'s sum,
// far fewer instructions than N separate horizontal sums.
template <int N, typename Out>
inline void hsum_each(const vf* x, Out out) {
  for (int g = 0; g < N; g += W) {
    vf y[W];
    for (int i = 0; i < W; ++i) y[i] = g + i < N ? x[g + i] : vf{};
    for (int count = W; count > 1; count /= 2)
      for (int i = 0; i < count / 2; ++i) y[i] = pair_sums(y[2 * i], y[2 * i + 1]);
    for (int i = 0; i < W && g + i < N; ++i) out(g + i, y[0][i]);
  }
}

// Scores of keys [j, j + KEYS) for rows r < M: S[r][j + i] = Q[r] · K[j + i], K row j at rows[j] + off (D elements,
// converted to fp32 as they are loaded: no copy of the tile); Q rows are dp floats apart, zero padded.
template <ElemType E, int M, int KEYS>
inline void dot_keys(const float* Q, int dp, const typename Elem<E>::T* const* rows, int64_t off, int D, int j,
                     float* S, int64_t lds) {
  vf acc[KEYS * M];  // key i, row r at i * M + r
  for (int i = 0; i < KEYS * M; ++i) acc[i] = vf{};
  auto step = [&](int c, const vf* x) {
    for (int r = 0; r < M; ++r) {
      const vf qv = vload(Q + r * dp + c);
      for (int i = 0; i < KEYS; ++i) acc[i * M + r] += qv * x[i];
    }
  };
  const int full = D / W * W;
  vf x[KEYS];
  for (int c = 0; c < full; c += W) {
    for (int i = 0; i < KEYS; ++i) x[i] = load_vec<E>(rows[j + i] + off + c);
    step(c, x);
  }
  if (full < D) {
    for (int i = 0; i < KEYS; ++i) x[i] = load_vec_part<E>(rows[j + i] + off + full, D - full);
    step(full, x);
  }
  hsum_each<KEYS * M>(acc, [&](int i, float sum) { S[i % M * lds + j + i / M] = sum; });
}

// S[r][j] = Q[r] · K[j] for rows r < M and keys j < n (see dot_keys). Up to four rows take two keys per pass, so the
// FMA units see 2M independent chains.
template <ElemType E, int M>
inline void dot_scores(const float* Q, int dp, const typename Elem<E>::T* const* rows, int64_t off, int D, int n,
                       float* S, int64_t lds) {
  int j = 0;
  if (M <= 4)
    for (; j + 2 <= n; j += 2) dot_keys<E, M, 2>(Q, dp, rows, off, D, j, S, lds);
  for (; j < n; ++j) dot_keys<E, M, 1>(Q, dp, rows, off, D, j, S, lds);
}

// Row counts as types, so a run-time count 1..N can pick a kernel compiled for it (with_rows below).
template <int M>
struct Rows {
  static constexpr int value = M;
};

// f(Rows<m>{}) for 1 <= m <= N (m < 1 counts as 1).
template <int N, typename F>
inline void with_rows(int m, F f) {
  if constexpr (N > 1) {
    if (m == N) return f(Rows<N>{});
    return with_rows<N - 1>(m, f);
  } else {
    f(Rows<1>{});
  }
}

// O[r][c] += sum over keys j < n of P[r][j] V[j][c] for rows r < M (P row r at P + r * ldp, O row r at O + r * ldo,
// ldo >= Dv rounded up to NR), V row j at rows[j] + off (Dv elements, converted to fp32 as they are loaded).
template <ElemType E, int M>
inline void pv_accumulate(int n, const float* P, int64_t ldp, const typename Elem<E>::T* const* rows, int64_t off,
                          int Dv, float* O, int64_t ldo) {
  for (int c = 0; c < Dv; c += NR) {
    const int w = Dv - c;  // columns left; the panel is whole when w >= NR
    vf c0[M], c1[M];
    for (int r = 0; r < M; ++r) {
      c0[r] = vload(O + r * ldo + c);
      c1[r] = vload(O + r * ldo + c + W);
    }
    auto step = [&](int j, vf b0, vf b1) {
      for (int r = 0; r < M; ++r) {
        const float pr = P[r * ldp + j];
        c0[r] += b0 * pr;
        c1[r] += b1 * pr;
      }
    };
    if (w >= NR) {
      for (int j = 0; j < n; ++j) step(j, load_vec<E>(rows[j] + off + c), load_vec<E>(rows[j] + off + c + W));
    } else {
      for (int j = 0; j < n; ++j) {
        const typename Elem<E>::T* v = rows[j] + off + c;
        step(j, w >= W ? load_vec<E>(v) : load_vec_part<E>(v, w), w > W ? load_vec_part<E>(v + W, w - W) : vf{});
      }
    }
    for (int r = 0; r < M; ++r) {
      vstore(O + r * ldo + c, c0[r]);
      vstore(O + r * ldo + c + W, c1[r]);
    }
  }
}

// Rows per pv_accumulate call: 2 x kPvRows accumulators, two V vectors and a broadcast fit AVX2's 16 registers.
constexpr int kPvRows = 4;

inline void softcap_row(float* s, int n, float cap) {
  const float inv = 1.0f / cap;
  int j = 0;
  for (; j + W <= n; j += W) vstore(s + j, vtanh(vload(s + j) * inv) * cap);
  for (; j < n; ++j) s[j] = vtanh(vsplat(s[j] * inv))[0] * cap;
}

// s[j] -= slope * |rel - j|, rel = pos - (first key of s): exact in float for keys within 2^24 of the query.
inline void alibi_row(float* s, int n, float slope, float rel) {
  vf iota;
  for (int i = 0; i < W; ++i) iota[i] = static_cast<float>(i);
  int j = 0;
  for (; j + W <= n; j += W) vstore(s + j, vload(s + j) - vabs(rel - (iota + static_cast<float>(j))) * slope);
  for (; j < n; ++j) {
    const float d = rel - static_cast<float>(j);
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
  float sum = hsum_tree(acc);
  for (; j < n; ++j) {
    s[j] = vexp(vsplat(s[j] - m))[0];
    sum += s[j];
  }
  return sum;
}

// Online-softmax update of row r over its visible keys [a, b) of the tile; P = 0 elsewhere in [ulo, uhi).
// Returns alpha, the factor the row's O must be rescaled by.
inline float softmax_row(const FlashParams& p, float* s, int ulo, int uhi, int a, int b, int64_t j0, int64_t pos,
                         float slope, float* m, float* l) {
  if (p.softcap > 0.f) softcap_row(s + a, b - a, p.softcap);
  if (p.alibi != nullptr) alibi_row(s + a, b - a, slope, static_cast<float>(pos - (j0 + a)));
  const float m_tile = max_row(s + a, b - a);
  const float m_new = m_tile > *m ? m_tile : *m;
  const float alpha = *m == -__builtin_inff() ? 0.f : __builtin_expf(*m - m_new);
  const float sum = exp_sum_row(s + a, b - a, m_new);
  for (int j = ulo; j < a; ++j) s[j] = 0.f;
  for (int j = b; j < uhi; ++j) s[j] = 0.f;
  *l = *l * alpha + sum;
  *m = m_new;
  return alpha;
}

template <ElemType E>
void flash_run(const FlashParams& p, const FlashTiling& t, const WorkItem& item, float* scratch) {
  using T = typename Elem<E>::T;
  const ScratchLayout L = scratch_layout(p, t);
  const SeqDesc& sd = p.seqs[item.seq];
  const int64_t Sq = sd.seqlen_q, Sk = sd.seqlen_k;
  const int rows = item.row_end - item.row_begin;
  const int M = rows * item.head_count;
  const int panels = static_cast<int>((M + NR - 1) / NR);
  const int group = p.heads / p.kv_heads;
  const int kv_head = item.head_begin / group;  // the item's first kv head
  const int kvh = item.head_count > group ? item.head_count / group : 1;
  const int mh = M / kvh;  // rows of each kv head: [a * mh, (a + 1) * mh) belong to kv head kv_head + a
  const int D = p.head_dim, Dv = p.head_dim_v;
  const int Bc = t.block_k;
  const int64_t mp = L.mp;
  const T* q = static_cast<const T*>(p.q) + sd.q_offset;
  const T* k = static_cast<const T*>(p.k) + sd.k_offset + kv_head * p.k_head_stride;
  const T* v = static_cast<const T*>(p.v) + sd.v_offset + kv_head * p.v_head_stride;
  T* out = static_cast<T*>(p.out) + sd.o_offset;
  // Row pointers of keys [j, j + n): consecutive rows for packed sequences, looked up page by page in a paged cache
  // (one division per call, not per row).
  const int32_t* table = p.block_table != nullptr ? p.block_table + item.seq * p.block_table_stride : nullptr;
  auto rows_of = [&](const T* base, int64_t row_stride, int64_t block_stride, int64_t j, int n, const T** out) {
    if (table == nullptr) {
      for (int r = 0; r < n; ++r) out[r] = base + (j + r) * row_stride;
      return;
    }
    int64_t page = j / p.block_size;
    int64_t off = j % p.block_size;
    for (int r = 0; r < n; ++r) {
      out[r] = base + table[page] * block_stride + off * row_stride;
      if (++off == p.block_size) off = 0, ++page;
    }
  };
  const T* k_rows[kMaxBlockK];  // this tile's rows
  const T* v_rows[kMaxBlockK];
  const T* k_next[kMaxBlockK];  // the next tile's rows, being prefetched (few-query items: the first tile only)
  const T* v_next[kMaxBlockK];
  auto next_tile = [&](int64_t j, int n) {
    rows_of(k, p.k_row_stride, p.k_block_stride, j, n, k_next);
    rows_of(v, p.v_row_stride, p.v_block_stride, j, n, v_next);
  };
  // Prefetches rows [r0, r1) of the next tile, every kv head of the item.
  auto prefetch_next = [&](int r0, int r1) {
    for (int a = 0; a < kvh; ++a) {
      prefetch_rows([&](int64_t r) { return k_next[r] + a * p.k_head_stride; }, r0, r1, D * sizeof(T));
      prefetch_rows([&](int64_t r) { return v_next[r] + a * p.v_head_stride; }, r0, r1, Dv * sizeof(T));
    }
  };

  float* Qt = scratch + L.qt;
  float* Kt = scratch + L.kt;
  float* Vp = scratch + L.vp;
  float* St = scratch + L.st;
  float* O = scratch + L.o;
  float* m = scratch + L.m;
  float* l = scratch + L.l;
  float* alpha = scratch + L.alpha;
  int32_t* lo = reinterpret_cast<int32_t*>(scratch + L.lo);
  int32_t* hi = reinterpret_cast<int32_t*>(scratch + L.hi);
  int32_t* pos = reinterpret_cast<int32_t*>(scratch + L.pos);
  float* slope = scratch + L.slope;

  // 1. Per query: visible keys, running statistics; then Qᵀ (scaled) once for the whole item.
  for (int r = 0; r < L.mp; ++r) {
    const int rr = r < M ? r : M - 1;  // padding lanes copy the last query's bounds, so they widen no key range
    const int64_t i = item.row_begin + rr % rows;
    const int h = item.head_begin + rr / rows;
    int64_t a, b;
    visible_keys(i, Sq, Sk, p.window_left, p.window_right, &a, &b);
    a = a > item.key_begin ? a : item.key_begin;  // split-KV items see only their key range
    b = b < item.key_end ? b : item.key_end;
    if (b <= a) a = b = 0;
    // Every key index and position fits in int32: the argument checks bound the lengths by 2^31 - 1.
    lo[r] = static_cast<int32_t>(a);
    hi[r] = static_cast<int32_t>(b);
    pos[r] = static_cast<int32_t>(i + Sk - Sq);
    if (p.alibi != nullptr) slope[r] = p.alibi[item.seq * p.alibi_seq_stride + h];
    m[r] = -__builtin_inff();
    l[r] = 0.f;
  }
  for (int64_t c = 0; c < L.mp * L.ldo; c += W) vstore(O + c, vf{});

  int64_t key_lo = Sk, key_hi = 0;
  for (int r = 0; r < M; ++r) {
    if (lo[r] < hi[r]) {
      key_lo = lo[r] < key_lo ? lo[r] : key_lo;
      key_hi = hi[r] > key_hi ? hi[r] : key_hi;
    }
  }
  // The first K/V tile loads while Qᵀ is packed; later tiles are prefetched during the previous tile's work.
  if (key_lo < key_hi) {
    const int n0 = static_cast<int>(key_hi - key_lo < Bc ? key_hi - key_lo : Bc);
    next_tile(key_lo, n0);
    prefetch_next(0, n0);
  }
  auto q_row = [&](int r) {
    return q + (item.row_begin + r % rows) * p.q_row_stride + (item.head_begin + r / rows) * p.q_head_stride;
  };
  const bool few = mh <= kFewQueryRows;
  const int dp = static_cast<int>(round_up(D, W));
  if (few) {
    for (int r = 0; r < M; ++r) load_row_padded<E>(Qt + r * dp, q_row(r), D, dp, p.scale);
  } else {
    pack_transposed<E>(Qt, M, D, p.scale, q_row);
  }

  // 2. Stream the K/V tiles that any query can see.
  for (int64_t j0 = key_lo; j0 < key_hi; j0 += Bc) {
    const int n = static_cast<int>(key_hi - j0 < Bc ? key_hi - j0 : Bc);
    int ulo, uhi;
    key_union(lo, hi, 0, M, j0, n, &ulo, &uhi);
    if (ulo >= uhi) continue;
    rows_of(k, p.k_row_stride, p.k_block_stride, j0 + ulo, uhi - ulo, k_rows);
    rows_of(v, p.v_row_stride, p.v_block_stride, j0 + ulo, uhi - ulo, v_rows);
    const int next_n = static_cast<int>(key_hi - j0 - Bc < Bc ? key_hi - j0 - Bc : Bc);

    if (few) {
      // S[r][key] = q_r · k for every kv head's rows, a pair of keys at a time so the reads run along whole key rows;
      // each row's online softmax; then O += P V, one kv head after the other, over the keys some row sees.
      // Hardware stream prefetchers follow demand reads: the scores read K key by key, and touching one byte of each
      // line of the same keys' V rows starts V's stream too, so the P V pass finds V in cache (on the 2-core EPYC we
      // measure on, software prefetches of V gained less). K rows kFewPrefetchKeys ahead are prefetched as well.
      const int nk = uhi - ulo;
      unsigned touched = 0;
      for (int c = 0; c < nk; c += 2) {
        const int cn = nk - c < 2 ? 1 : 2;
        for (int i = c; i < c + cn; ++i) {
          for (int a = 0; a < kvh; ++a) {
            const unsigned char* vr = reinterpret_cast<const unsigned char*>(v_rows[i] + a * p.v_head_stride);
            for (int b = 0; b < Dv * static_cast<int>(sizeof(T)); b += 64) touched += vr[b];
            if (i + kFewPrefetchKeys < nk)
              prefetch_rows([&](int64_t) { return k_rows[i + kFewPrefetchKeys] + a * p.k_head_stride; }, 0, 1,
                            D * sizeof(T));
          }
        }
        for (int a = 0; a < kvh; ++a)
          with_rows<kFewQueryRows>(mh, [&](auto count) {
            dot_scores<E, decltype(count)::value>(Qt + static_cast<int64_t>(a) * mh * dp, dp, k_rows + c,
                                                  a * p.k_head_stride, D, cn,
                                                  St + static_cast<int64_t>(a) * mh * Bc + ulo + c, Bc);
          });
      }
      __asm__ volatile("" : : "r"(touched));  // keeps the touches: their values are not needed
      for (int r = 0; r < M; ++r) {
        float* s = St + static_cast<int64_t>(r) * Bc;
        const int a = static_cast<int>(lo[r] - j0 > ulo ? lo[r] - j0 : ulo);
        const int b = static_cast<int>(hi[r] - j0 < uhi ? hi[r] - j0 : uhi);
        if (a >= b) {
          for (int j = ulo; j < uhi; ++j) s[j] = 0.f;
          continue;
        }
        const float al = softmax_row(p, s, ulo, uhi, a, b, j0, pos[r], slope[r], m + r, l + r);
        if (al != 1.f) scale_row(O + r * L.ldo, static_cast<int>(L.ldo), al);
      }
      for (int a = 0; a < kvh; ++a) {
        for (int r0 = a * mh; r0 < (a + 1) * mh; r0 += kPvRows) {
          const int mr = (a + 1) * mh - r0 < kPvRows ? (a + 1) * mh - r0 : kPvRows;
          with_rows<kPvRows>(mr, [&](auto count) {
            pv_accumulate<E, decltype(count)::value>(nk, St + static_cast<int64_t>(r0) * Bc + ulo, Bc, v_rows,
                                                     a * p.v_head_stride, Dv, O + r0 * L.ldo, L.ldo);
          });
        }
      }
      continue;
    }

    if (next_n > 0) next_tile(j0 + Bc, next_n);
    for (int r = 0; r < uhi - ulo; ++r)
      load_row_padded<E>(Kt + static_cast<int64_t>(ulo + r) * D, k_rows[r], D, D, 1.0f);
    pack_panels<E>(
        Vp + static_cast<int64_t>(ulo) * NR, [&](int r) { return v_rows[r]; }, uhi - ulo, Dv, L.v_panel_stride);

    // Sᵀ = K Qᵀ and the online softmax, one panel of NR queries at a time, while the next tile's K and V rows are
    // prefetched a slice per panel so their DRAM reads overlap this tile's arithmetic.
    for (int qp = 0; qp < panels; ++qp) {
      if (next_n > 0) prefetch_next(next_n * qp / panels, next_n * (qp + 1) / panels);
      const int q0 = qp * NR;
      int a, b;
      key_union(lo, hi, q0, q0 + NR < M ? q0 + NR : M, j0, n, &a, &b);
      float* st = St + q0;
      if (a >= b) {
        zero_rows(st, mp, ulo, uhi);
        for (int c = 0; c < NR; ++c) alpha[q0 + c] = 1.f;
        continue;
      }
      for (int jb = a; jb < b; jb += MR) {
        const int mr = b - jb < MR ? b - jb : MR;
        ukernel_rows(mr, D, Kt + static_cast<int64_t>(jb) * D, D, 1, Qt + static_cast<int64_t>(qp) * D * NR, NR,
                     st + jb * mp, mp, false);
      }
      softmax_panel(p, st, mp, a, b, j0, lo + q0, hi + q0, slope + q0, pos + q0, m + q0, l + q0, alpha + q0);
      // PV row blocks may span neighbouring panels' key ranges: those keys must read as P = 0 here.
      zero_rows(st, mp, ulo, a);
      zero_rows(st, mp, b, uhi);
    }

    // O = alpha O + P V, one block of MR queries at a time over the keys the block can see.
    for (int r0 = 0; r0 < M; r0 += MR) {
      const int mr = M - r0 < MR ? M - r0 : MR;
      for (int r = r0; r < r0 + mr; ++r)
        if (alpha[r] != 1.f) scale_row(O + r * L.ldo, static_cast<int>(L.ldo), alpha[r]);
      int a, b;
      key_union(lo, hi, r0, r0 + mr, j0, n, &a, &b);
      if (a >= b) continue;
      for (int64_t c = 0; c < L.ldo; c += NR)
        ukernel_rows(mr, b - a, St + static_cast<int64_t>(a) * mp + r0, 1, mp,
                     Vp + (c / NR) * L.v_panel_stride + static_cast<int64_t>(a) * NR, NR, O + r0 * L.ldo + c, L.ldo,
                     true);
    }
  }

  // 3. Normalize, then write out (and lse) or this split's partial result.
  for (int r = 0; r < M; ++r) {
    const int64_t i = item.row_begin + r % rows;
    const int h = item.head_begin + r / rows;
    const float inv = l[r] > 0.f ? 1.0f / l[r] : 0.f;
    const float lse = l[r] > 0.f ? m[r] + __builtin_logf(l[r]) : -__builtin_inff();
    if (item.partial >= 0) {
      const int64_t slot = item.partial * p.partial_rows + r;
      for (int c = 0; c < Dv; ++c) p.partial_out[slot * Dv + c] = O[r * L.ldo + c] * inv;
      p.partial_lse[slot] = lse;
      continue;
    }
    store_row<E>(out + i * p.o_row_stride + h * p.o_head_stride, O + r * L.ldo, Dv, inv);
    if (p.lse != nullptr) p.lse[sd.lse_offset + h * p.lse_head_stride + i] = lse;
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
