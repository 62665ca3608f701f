// UB layout of the vector side of the attention kernels (op_kernel/common/online_softmax.h), as a pure function the
// host tilings also use to choose how many rows fit. No kernel API here: host code includes it.
#pragma once
#include <cstdint>

// Kernel builds get __host_aicore__ from kernel_operator.h (included before this header); host builds
// (csrc/tiling) see plain functions.
#ifndef __host_aicore__
#define __host_aicore__
#endif

namespace ascend_attn_kernel {

// Row statistics of one AIV as [rows, 8] fp32 each (max, sum, two rescale factors alpha, lse): 8 lanes, one 32-byte
// block per row, so a row's value broadcasts with a block stride of 0.
constexpr uint32_t kStatLanes = 8;
// Score chunks in flight: the next chunk's copy-in overlaps this one's vector work.
constexpr uint32_t kSoftmaxInDepth = 2;

// UB one AIV carves for OnlineSoftmaxRows (bytes); the host tilings use it to choose chunk_rows.
struct SoftmaxUbPlan {
  uint32_t in_bytes, out_bytes, o_acc_bytes, stat_bytes, work_bytes;  // in_bytes: one of the kSoftmaxInDepth buffers
  __host_aicore__ constexpr uint32_t total() const {
    return kSoftmaxInDepth * in_bytes + out_bytes + o_acc_bytes + stat_bytes + work_bytes;
  }
};
__host_aicore__ constexpr uint32_t Round32(uint32_t n) { return (n + 31) / 32 * 32; }
// `rows`: the AIV's query rows (a multiple of 8), all of whose O and statistics stay in UB.
__host_aicore__ constexpr SoftmaxUbPlan SoftmaxUbLayout(uint32_t block_cols, uint32_t head_dim_v, uint32_t chunk_rows,
                                                        uint32_t elem_bytes, uint32_t rows) {
  const uint32_t width = block_cols > head_dim_v ? block_cols : head_dim_v;  // S rows and O_tmp rows share a buffer
  const uint32_t stat = rows * kStatLanes * 4;
  return SoftmaxUbPlan{Round32(chunk_rows * width * 4), Round32(chunk_rows * width * elem_bytes),
                       Round32(rows * head_dim_v * 4),
                       5 * stat + Round32(rows * kStatLanes / 8),  // + a row-mask of bits
                       // a tile's row stats and the new max [rows, 8] each, one value per row, the 64-lane fold
                       2 * stat + Round32(rows * 4) + chunk_rows * 64 * 4};
}

// UB a mix kernel's AIV may carve: 192 KB minus the 8 KB the Ascend C framework reserves and 256 B for the runtime.
constexpr uint32_t kAivUbBudget = 192 * 1024 - 8 * 1024 - 256;

}  // namespace ascend_attn_kernel
