// AVX2 + FMA + F16C build. The kernel source is shared by every ISA: see flash_kernel_impl.h.
#include <immintrin.h>

#include <cstdint>

#include "cpu/flash_kernel.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace ascend_attn::cpu {
namespace {
#define ASCEND_ATTN_VEC_WIDTH 8
#include "cpu/flash_kernel_impl.h"
}  // namespace
}  // namespace ascend_attn::cpu

#pragma GCC pop_options

namespace ascend_attn::cpu {

const FlashKernel& flash_kernel_avx2() {
  static const FlashKernel kernel{"avx2", flash_scratch_floats, flash_run_any};
  return kernel;
}

}  // namespace ascend_attn::cpu
