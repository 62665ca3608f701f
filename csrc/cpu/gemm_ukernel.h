// Register-blocked fp32 GEMM micro-kernel and the panel packers that feed it. Included after vec.h, inside the
// per-ISA anonymous namespace.
//
// C[m x NR] (+)= A[m x K] * B[K x NR]. A is strided both ways (element (i, k) at A[i * a_row + k * a_col]) so the
// same kernel reads row-major K tiles and the transposed probabilities Pᵀ; row k of B is at B + k * ldb: a packed
// panel (ldb = NR) or NR columns of a row-major matrix whose row length is a multiple of NR.
// MR x NR = 6 x 2W keeps 12 accumulators plus 2 B vectors and one broadcast in 16 registers on AVX2.
#pragma once
#include "cpu/vec.h"

constexpr int MR = 6;
constexpr int NR = 2 * W;

template <int M>
inline void ukernel(int K, const float* __restrict A, int64_t a_row, int64_t a_col, const float* __restrict B,
                    int64_t ldb, float* __restrict C, int64_t ldc, bool accumulate) {
  vf c0[M], c1[M];
  for (int i = 0; i < M; ++i) {
    c0[i] = accumulate ? vload(C + i * ldc) : vf{};
    c1[i] = accumulate ? vload(C + i * ldc + W) : vf{};
  }
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) {
    const vf b0 = vload(B + k * ldb);
    const vf b1 = vload(B + k * ldb + W);
    for (int i = 0; i < M; ++i) {
      const float a = A[i * a_row + k * a_col];
      c0[i] += b0 * a;
      c1[i] += b1 * a;
    }
  }
  for (int i = 0; i < M; ++i) {
    vstore(C + i * ldc, c0[i]);
    vstore(C + i * ldc + W, c1[i]);
  }
}

// Dispatches a row count 1..MR to the matching compile-time kernel.
inline void ukernel_rows(int m, int K, const float* A, int64_t a_row, int64_t a_col, const float* B, int64_t ldb,
                         float* C, int64_t ldc, bool accumulate) {
  switch (m) {
    case 6:
      return ukernel<6>(K, A, a_row, a_col, B, ldb, C, ldc, accumulate);
    case 5:
      return ukernel<5>(K, A, a_row, a_col, B, ldb, C, ldc, accumulate);
    case 4:
      return ukernel<4>(K, A, a_row, a_col, B, ldb, C, ldc, accumulate);
    case 3:
      return ukernel<3>(K, A, a_row, a_col, B, ldb, C, ldc, accumulate);
    case 2:
      return ukernel<2>(K, A, a_row, a_col, B, ldb, C, ldc, accumulate);
    default:
      return ukernel<1>(K, A, a_row, a_col, B, ldb, C, ldc, accumulate);
  }
}

// Packs n rows of `cols` elements (row r at row(r)) transposed into panels: dst[p][c][j] = scale * row(p * NR + j)[c],
// zero for j beyond n. Used once per work item for Qᵀ.
template <ElemType E, typename RowFn>
inline void pack_transposed(float* __restrict dst, int n, int cols, float scale, RowFn row) {
  // Rows are scattered (one per head and token): request them all before the strided copy waits on each.
  for (int r = 0; r < n; ++r)
    for (int b = 0; b < cols * static_cast<int>(sizeof(typename Elem<E>::T)); b += 64)
      __builtin_prefetch(reinterpret_cast<const char*>(row(r)) + b, 0, 3);
  const int panels = (n + NR - 1) / NR;
  for (int p = 0; p < panels; ++p) {
    float* panel = dst + static_cast<int64_t>(p) * cols * NR;
    for (int j = 0; j < NR; ++j) {
      const int r = p * NR + j;
      if (r < n) {
        const typename Elem<E>::T* src = row(r);
        for (int c = 0; c < cols; ++c) panel[c * NR + j] = Elem<E>::load(src[c]) * scale;
      } else {
        for (int c = 0; c < cols; ++c) panel[c * NR + j] = 0.f;
      }
    }
  }
}

// Prefetches rows [r0, r1) (row j at row(j)), `bytes` bytes each, into L2 (not L1: a whole tile would evict the
// working set). K/V rows of one head lie heads * head_dim elements apart (or on scattered pages), so every row starts
// a new stream the hardware prefetcher has not seen yet.
template <typename RowFn>
inline void prefetch_rows(RowFn row, int64_t r0, int64_t r1, int bytes) {
  for (int64_t r = r0; r < r1; ++r) {
    const char* p = reinterpret_cast<const char*>(row(r));
    for (int b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 2);
  }
}

// Packs n rows of `cols` elements into column panels: dst[p][r][j] = row(r)[p * NR + j], zero beyond cols.
// This is V for O += P V, with panels over head_dim_v.
template <ElemType E, typename RowFn>
inline void pack_panels(float* __restrict dst, RowFn row, int n, int cols, int64_t panel_stride) {
  const int panels = (cols + NR - 1) / NR;
  for (int r = 0; r < n; ++r) {
    const typename Elem<E>::T* src = row(r);
    for (int p = 0; p < panels; ++p) {
      float* out = dst + p * panel_stride + static_cast<int64_t>(r) * NR;
      const int c0 = p * NR;
      const int w = cols - c0 < NR ? cols - c0 : NR;
      if (w == NR) {
        load_row<E>(out, src + c0, NR, 1.0f);
      } else {
        for (int j = 0; j < w; ++j) out[j] = Elem<E>::load(src[c0 + j]);
        for (int j = w; j < NR; ++j) out[j] = 0.f;
      }
    }
  }
}
