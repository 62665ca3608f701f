// Runtime choice of the CPU kernels' instruction set (never -march=native: one wheel runs on every x86-64 CPU).
#pragma once
#include <string>

#include "cpu/flash_backward_kernel.h"
#include "cpu/flash_kernel.h"

namespace ascend_attn::cpu {

// The best ISA this CPU supports, or the one named by the environment variable ASCEND_ATTN_CPU_ISA
// (avx512 | avx2 | portable), read on every call so tests can switch it in-process.
const FlashKernel& select_flash_kernel();

// The backward kernel of the same ISA (same choice and override as select_flash_kernel).
const FlashBackwardKernel& select_flash_backward_kernel();

// Name of the ISA select_flash_kernel() picks now; backs the op ascend_attn::cpu_isa.
std::string cpu_isa();

}  // namespace ascend_attn::cpu
