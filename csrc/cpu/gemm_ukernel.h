// Register-blocked fp32 GEMM micro-kernel and the panel packers that feed it. Included after vec.h, inside the
// per-ISA anonymous namespace.
//
// C[m x NR] (+)= A[m x K] (row-major, lda) * B[K x NR], where B is a packed panel: row k at B + k * NR.
// MR x NR = 6 x 2W keeps 12 accumulators plus 2 B vectors and one broadcast in 16 registers on AVX2.
#pragma once
#include "cpu/vec.h"

constexpr int MR = 6;
constexpr int NR = 2 * W;

template <int M>
inline void ukernel(int K, const float* __restrict A, int64_t lda, const float* __restrict B, float* __restrict C,
                    int64_t ldc, bool accumulate) {
  vf c0[M], c1[M];
  for (int i = 0; i < M; ++i) {
    c0[i] = accumulate ? vload(C + i * ldc) : vf{};
    c1[i] = accumulate ? vload(C + i * ldc + W) : vf{};
  }
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) {
    const vf b0 = vload(B + k * NR);
    const vf b1 = vload(B + k * NR + W);
    for (int i = 0; i < M; ++i) {
      const float a = A[i * lda + k];
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
inline void ukernel_rows(int m, int K, const float* A, int64_t lda, const float* B, float* C, int64_t ldc,
                         bool accumulate) {
  switch (m) {
    case 6:
      return ukernel<6>(K, A, lda, B, C, ldc, accumulate);
    case 5:
      return ukernel<5>(K, A, lda, B, C, ldc, accumulate);
    case 4:
      return ukernel<4>(K, A, lda, B, C, ldc, accumulate);
    case 3:
      return ukernel<3>(K, A, lda, B, C, ldc, accumulate);
    case 2:
      return ukernel<2>(K, A, lda, B, C, ldc, accumulate);
    default:
      return ukernel<1>(K, A, lda, B, C, ldc, accumulate);
  }
}

// Packs n rows of a row-major matrix (row r at src + r * row_stride, `cols` elements each) transposed into
// panels: dst[p][c][j] = src[p * NR + j][c], zero for j beyond n. This is Kᵀ for S = Q Kᵀ.
template <ElemType E>
inline void pack_transposed(float* __restrict dst, const typename Elem<E>::T* src, int64_t row_stride, int n,
                            int cols) {
  const int panels = (n + NR - 1) / NR;
  for (int p = 0; p < panels; ++p) {
    float* panel = dst + static_cast<int64_t>(p) * cols * NR;
    const int rows = n - p * NR < NR ? n - p * NR : NR;
    for (int j = 0; j < rows; ++j) {
      const typename Elem<E>::T* row = src + (p * NR + j) * row_stride;
      for (int c = 0; c < cols; ++c) panel[c * NR + j] = Elem<E>::load(row[c]);
    }
    for (int j = rows; j < NR; ++j)
      for (int c = 0; c < cols; ++c) panel[c * NR + j] = 0.f;
  }
}

// Packs n rows of `cols` elements into column panels: dst[p][r][j] = src[r][p * NR + j], zero beyond cols.
// This is V for O += P V, with panels over head_dim_v.
template <ElemType E>
inline void pack_rows(float* __restrict dst, const typename Elem<E>::T* src, int64_t row_stride, int n, int cols,
                      int panel_stride) {
  const int panels = (cols + NR - 1) / NR;
  for (int r = 0; r < n; ++r) {
    const typename Elem<E>::T* row = src + r * row_stride;
    for (int p = 0; p < panels; ++p) {
      float* out = dst + static_cast<int64_t>(p) * panel_stride + static_cast<int64_t>(r) * NR;
      const int c0 = p * NR;
      const int w = cols - c0 < NR ? cols - c0 : NR;
      for (int j = 0; j < w; ++j) out[j] = Elem<E>::load(row[c0 + j]);
      for (int j = w; j < NR; ++j) out[j] = 0.f;
    }
  }
}
