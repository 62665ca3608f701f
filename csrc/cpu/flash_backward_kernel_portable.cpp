// Baseline build (SSE2 on x86-64, NEON on aarch64) of the backward kernel: the fallback for CPUs without AVX2. The
// kernel source is shared by every ISA: see flash_backward_kernel_impl.h.
#include <cstdint>

#include "cpu/flash_backward_kernel.h"

namespace ascend_attn::cpu {
namespace {
#define ASCEND_ATTN_VEC_WIDTH 4
#include "cpu/flash_backward_kernel_impl.h"
}  // namespace
}  // namespace ascend_attn::cpu

namespace ascend_attn::cpu {

const FlashBackwardKernel& flash_backward_kernel_portable() {
  static const FlashBackwardKernel kernel{"portable", backward_scratch_floats, backward_run_any};
  return kernel;
}

}  // namespace ascend_attn::cpu
