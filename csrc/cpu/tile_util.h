// Small helpers shared by the forward and backward CPU kernels: scratch rounding, the key range a set of queries can
// see within a tile, and zeroing NR-wide columns of a transposed score tile. Included after gemm_ukernel.h, inside
// the per-ISA anonymous namespace.
#pragma once
#include "cpu/gemm_ukernel.h"

inline int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

inline vf vabs(vf x) { return x < 0.f ? -x : x; }

// Key range [lo, hi) (tile-relative, clipped to [0, n)) seen by any of queries [q0, q1); empty when lo >= hi.
inline void key_union(const int32_t* lo, const int32_t* hi, int q0, int q1, int64_t j0, int n, int* out_lo,
                      int* out_hi) {
  int a = n, b = 0;
  for (int q = q0; q < q1; ++q) {
    const int qa = static_cast<int>(lo[q] - j0 > 0 ? lo[q] - j0 : 0);
    const int qb = static_cast<int>(hi[q] - j0 < n ? hi[q] - j0 : n);
    if (qa < qb) {
      a = qa < a ? qa : a;
      b = qb > b ? qb : b;
    }
  }
  *out_lo = a;
  *out_hi = b;
}

// Zeroes rows [a, b) of one NR-wide column panel of a transposed tile (row j at st + j * ld).
inline void zero_rows(float* st, int64_t ld, int a, int b) {
  for (int j = a; j < b; ++j) {
    vstore(st + j * ld, vf{});
    vstore(st + j * ld + W, vf{});
  }
}
