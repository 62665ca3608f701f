// AVX2 + FMA + F16C build of the backward kernel. The kernel source is shared by every ISA: see
// flash_backward_kernel_impl.h.
#include <immintrin.h>

#include <cstdint>

#include "cpu/flash_backward_kernel.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace ascend_attn::cpu {
namespace {
#define ASCEND_ATTN_VEC_WIDTH 8
#include "cpu/flash_backward_kernel_impl.h"
}  // namespace
}  // namespace ascend_attn::cpu

#pragma GCC pop_options

namespace ascend_attn::cpu {

const FlashBackwardKernel& flash_backward_kernel_avx2() {
  static const FlashBackwardKernel kernel{"avx2", backward_scratch_floats, backward_run_any};
  return kernel;
}

}  // namespace ascend_attn::cpu
