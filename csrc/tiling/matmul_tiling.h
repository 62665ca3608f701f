// The Matmul API tilings of the vector-master kernels, shared by the host tilings.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernel_tiling/kernel_tiling.h"

namespace ascend_attn {

// TCubeTiling of one AIV's GEMM (vector-master Matmul): m x n x k at most, 128 x 128 x 64 base blocks.
// NOTE: on an NPU build this struct is CANN's and the Matmul API may read fields set here to 0; filling it with
// CANN's matmul tiling API (MultiCoreMatmulTiling) is the safer route and is left for the NPU bring-up.
inline TCubeTiling matmul_tiling(int32_t m, int32_t n, int32_t k) {
  TCubeTiling t{};
  t.usedCoreNum = 1;
  t.M = t.singleCoreM = m;
  t.N = t.singleCoreN = n;
  t.Ka = t.Kb = t.singleCoreK = k;
  t.baseM = std::min<int32_t>(128, m);
  t.baseN = std::min<int32_t>(128, (n + 15) / 16 * 16);
  t.baseK = std::min<int32_t>(64, k);
  t.depthA1 = t.depthB1 = 2;
  t.stepM = t.stepN = t.stepKa = t.stepKb = 1;
  t.dbL0A = t.dbL0B = t.dbL0C = 2;
  return t;
}

}  // namespace ascend_attn
