// UB layout of the vector side of flash_attention_grad (grad_vector.h), as a pure function the host tiling also uses
// to choose how many rows fit. No kernel API here: host code includes it.
#pragma once
#include <cstdint>

#include "../common/softmax_ub.h"  // Round32, kAivUbBudget, kStatLanes, __host_aicore__

namespace ascend_attn_kernel {

// S and dP chunks of one step and of the next (the next chunk's copy-in overlaps this one's vector work).
constexpr uint32_t kGradInBuffers = 4;
// P and dS chunks on their way out.
constexpr uint32_t kGradOutBuffers = 2;

// UB one AIV carves for GradVector (bytes).
struct GradUbPlan {
  uint32_t buffer_bytes;  // one of the kGradInBuffers + kGradOutBuffers queue buffers: a [chunk_rows, width] fp32
                          // chunk (or a step's raw lse and D rows, two 32-byte-padded runs of block_rows floats)
  uint32_t work_bytes;    // two fp32 chunks (the softcap derivative; dO and O widened) and the 64-lane fold
  uint32_t stat_bytes;    // lse and D of a step's query rows as [block_rows, 8] fp32
  __host_aicore__ constexpr uint32_t total() const {
    return (kGradInBuffers + kGradOutBuffers) * buffer_bytes + work_bytes + stat_bytes;
  }
};

// width: the widest row of any chunk, max(Bk, head_dim, head_dim_v).
__host_aicore__ constexpr GradUbPlan GradUbLayout(uint32_t width, uint32_t chunk_rows, uint32_t block_rows) {
  const uint32_t chunk = Round32(chunk_rows * width * 4), stats_in = 2 * Round32(block_rows * 4);
  return GradUbPlan{chunk > stats_in ? chunk : stats_in, 2 * chunk + Round32(chunk_rows * 64 * 4),
                    2 * block_rows * kStatLanes * 4};
}

}  // namespace ascend_attn_kernel
