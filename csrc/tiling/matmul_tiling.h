// The Matmul API tilings of the vector-master kernels, shared by the host tilings: one AIV's GEMM of at most
// m x n x k, A [m, k] or (trans_a) [k, m] row-major, B [k, n] or (trans_b) [n, k], C fp32 in GM.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernel_tiling/kernel_tiling.h"

#if defined(ASCEND_ATTN_CANN_MATMUL_TILING)
#include "tiling/tiling_api.h"
#endif

namespace ascend_attn {

// The simulator's tiling, filled by hand within the documented constraints (TCubeTiling结构体.md, table 2; tested in
// tests/test_tiling.py): 128 x 128 x 64 base blocks at most, L0A/L0B and L1 double-buffered, L0C when
// the block leaves room.
inline TCubeTiling matmul_tiling_by_hand(int32_t m, int32_t n, int32_t k) {
  TCubeTiling t{};
  t.usedCoreNum = 1;
  t.M = t.singleCoreM = m;
  t.N = t.singleCoreN = n;
  t.Ka = t.Kb = t.singleCoreK = k;
  t.baseM = std::min<int32_t>(128, (m + 15) / 16 * 16);
  t.baseN = std::min<int32_t>(128, (n + 15) / 16 * 16);
  t.baseK = std::min<int32_t>(64, (k + 15) / 16 * 16);
  t.stepM = t.stepN = t.stepKa = t.stepKb = 1;
  t.depthA1 = t.depthB1 = 2;  // step x step x 2: double-buffered in L1
  t.dbL0A = t.dbL0B = 2;
  // baseM * baseN * sizeof(float) * dbL0C must stay below L0C's 128 KB (same table): a 128 x 128 block fits once.
  constexpr int64_t kL0cBytes = 128 * 1024;
  t.dbL0C = int64_t(t.baseM) * t.baseN * 4 * 2 < kL0cBytes ? 2 : 1;
  return t;
}

#if defined(ASCEND_ATTN_CANN_MATMUL_TILING)
// NPU builds: CANN's host tiling API fills every field the Matmul API of that same CANN reads (the hand fill leaves
// fields such as transLength at 0). Vector-master: each AIV runs single-core GEMMs, so the single-core tiling class.
inline TCubeTiling matmul_tiling(int32_t m, int32_t n, int32_t k, bool bf16, bool trans_b, bool trans_a = false) {
  using namespace matmul_tiling;
  const DataType in = bf16 ? DataType::DT_BF16 : DataType::DT_FLOAT16;
  MatmulApiTiling api;  // Atlas A2/A3: the platform is the one the process runs on
  api.SetAType(TPosition::GM, CubeFormat::ND, in, trans_a);
  api.SetBType(TPosition::GM, CubeFormat::ND, in, trans_b);
  api.SetCType(TPosition::GM, CubeFormat::ND, DataType::DT_FLOAT);
  api.SetShape(m, n, k);
  api.SetOrgShape(m, n, k);
  api.EnableBias(false);
  api.SetBufferSpace(-1, -1, -1);
  TCubeTiling t;
  if (api.GetTiling(t) == -1) {
    throw std::invalid_argument("CANN's matmul tiling failed for a " + std::to_string(m) + " x " + std::to_string(n) +
                                " x " + std::to_string(k) + " GEMM");
  }
  return t;
}
#else
inline TCubeTiling matmul_tiling(int32_t m, int32_t n, int32_t k, bool /*bf16*/, bool /*trans_b*/,
                                 bool /*trans_a*/ = false) {
  return matmul_tiling_by_hand(m, n, k);
}
#endif

}  // namespace ascend_attn
