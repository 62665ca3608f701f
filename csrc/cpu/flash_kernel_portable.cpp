// Baseline build (SSE2 on x86-64, NEON on aarch64): the fallback for CPUs without AVX2. The kernel source is shared by
// every ISA: see flash_kernel_impl.h.
#include <cstdint>

#include "cpu/flash_kernel.h"

namespace ascend_attn::cpu {
namespace {
#define ASCEND_ATTN_VEC_WIDTH 4
#include "cpu/flash_kernel_impl.h"
}  // namespace
}  // namespace ascend_attn::cpu

namespace ascend_attn::cpu {

const FlashKernel& flash_kernel_portable() {
  static const FlashKernel kernel{"portable", flash_scratch_floats, flash_run_any};
  return kernel;
}

}  // namespace ascend_attn::cpu
