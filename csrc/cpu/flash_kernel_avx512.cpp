// AVX-512 build. The kernel source is shared by every ISA: see flash_kernel_impl.h.
#include <immintrin.h>

#include <cstdint>

#include "cpu/flash_kernel.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,fma")

namespace ascend_attn::cpu {
namespace {
#define ASCEND_ATTN_VEC_WIDTH 16
#include "cpu/flash_kernel_impl.h"
}  // namespace
}  // namespace ascend_attn::cpu

#pragma GCC pop_options

namespace ascend_attn::cpu {

const FlashKernel& flash_kernel_avx512() {
  static const FlashKernel kernel{"avx512", flash_scratch_floats, flash_run_any};
  return kernel;
}

}  // namespace ascend_attn::cpu
