#include "cpu/cpu_isa.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>

namespace ascend_attn::cpu {
namespace {

bool has_avx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

bool has_avx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

}  // namespace

const FlashKernel& select_flash_kernel() {
  const char* env = std::getenv("ASCEND_ATTN_CPU_ISA");
  if (env == nullptr || *env == '\0') {
    if (has_avx512()) return flash_kernel_avx512();
    if (has_avx2()) return flash_kernel_avx2();
    return flash_kernel_portable();
  }
  if (std::strcmp(env, "portable") == 0) return flash_kernel_portable();
  if (std::strcmp(env, "avx2") == 0) {
    TORCH_CHECK(has_avx2(), "ASCEND_ATTN_CPU_ISA=avx2, but this CPU lacks AVX2/FMA");
    return flash_kernel_avx2();
  }
  if (std::strcmp(env, "avx512") == 0) {
    TORCH_CHECK(has_avx512(), "ASCEND_ATTN_CPU_ISA=avx512, but this CPU lacks AVX-512 (F, DQ, BW, VL)");
    return flash_kernel_avx512();
  }
  TORCH_CHECK(false, "ASCEND_ATTN_CPU_ISA must be one of avx512, avx2, portable (or unset), got '", env, "'");
}

std::string cpu_isa() { return select_flash_kernel().isa; }

}  // namespace ascend_attn::cpu
