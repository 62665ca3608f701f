// Helpers shared by the host tilings.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel_tiling/kernel_tiling.h"

namespace ascend_attn {

// GM bursts are 512 bytes; a misaligned workspace slot halves FixPipe speed (asc-devkit FA tuning case study).
constexpr uint64_t kWorkspaceAlign = 512;

inline uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

// Tiling rejects what a kernel cannot run with std::invalid_argument; the host flows turn it into a TORCH_CHECK.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

// `what` (e.g. "q: head_dim") must be a multiple of 16 in [16, 512]: fp16/bf16 rows in whole 32-byte blocks.
inline void require_multiple_of_16(uint32_t value, const std::string& what) {
  require(value % 16 == 0 && value >= 16 && value <= 512,
          what + " must be a multiple of 16 in [16, 512] for the Ascend C kernel, got " + std::to_string(value));
}

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

// Smallest-maximum contiguous split of `weights` into at most `parts` ranges; returns the range starts plus the end.
std::vector<uint32_t> partition_contiguous(const std::vector<uint32_t>& weights, uint32_t parts);

}  // namespace ascend_attn
