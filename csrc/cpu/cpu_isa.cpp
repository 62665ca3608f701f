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
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

enum class Isa { kPortable, kAvx2, kAvx512 };

// The best ISA of this CPU, or the one ASCEND_ATTN_CPU_ISA names (checked against the CPU).
Isa selected_isa() {
  const char* env = std::getenv("ASCEND_ATTN_CPU_ISA");
  if (env == nullptr || *env == '\0') {
    if (has_avx512()) return Isa::kAvx512;
    if (has_avx2()) return Isa::kAvx2;
    return Isa::kPortable;
  }
  if (std::strcmp(env, "portable") == 0) return Isa::kPortable;
  if (std::strcmp(env, "avx2") == 0) {
    TORCH_CHECK(has_avx2(), "ASCEND_ATTN_CPU_ISA=avx2, but this CPU lacks AVX2/FMA/F16C");
    return Isa::kAvx2;
  }
  if (std::strcmp(env, "avx512") == 0) {
    TORCH_CHECK(has_avx512(), "ASCEND_ATTN_CPU_ISA=avx512, but this CPU lacks AVX-512 (F, DQ, BW, VL)");
    return Isa::kAvx512;
  }
  TORCH_CHECK(false, "ASCEND_ATTN_CPU_ISA must be one of avx512, avx2, portable (or unset), got '", env, "'");
}

}  // namespace

const FlashKernel& select_flash_kernel() {
  switch (selected_isa()) {
    case Isa::kAvx512:
      return flash_kernel_avx512();
    case Isa::kAvx2:
      return flash_kernel_avx2();
    default:
      return flash_kernel_portable();
  }
}

const FlashBackwardKernel& select_flash_backward_kernel() {
  switch (selected_isa()) {
    case Isa::kAvx512:
      return flash_backward_kernel_avx512();
    case Isa::kAvx2:
      return flash_backward_kernel_avx2();
    default:
      return flash_backward_kernel_portable();
  }
}

std::string cpu_isa() { return select_flash_kernel().isa; }

}  // namespace ascend_attn::cpu
