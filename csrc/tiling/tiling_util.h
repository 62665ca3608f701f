// Helpers shared by the host tilings (and the host flows: no kernel headers here).
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

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

// Smallest-maximum contiguous split of `weights` into at most `parts` ranges; returns the range starts plus the end.
std::vector<uint32_t> partition_contiguous(const std::vector<uint32_t>& weights, uint32_t parts);

}  // namespace ascend_attn
