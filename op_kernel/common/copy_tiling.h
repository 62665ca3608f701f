// Reads a kernel's POD tiling struct from GM into scalar memory, word by word.
#pragma once
#include "kernel_operator.h"

namespace ascend_attn_kernel {

template <typename Tiling>
__aicore__ inline void CopyTiling(Tiling* dst, GM_ADDR tiling) {
  static_assert(sizeof(Tiling) % sizeof(uint32_t) == 0, "tiling structs are whole 32-bit words");
  constexpr uint32_t kWords = sizeof(Tiling) / sizeof(uint32_t);
  AscendC::GlobalTensor<uint32_t> src;
  src.SetGlobalBuffer(reinterpret_cast<__gm__ uint32_t*>(tiling), kWords);
  uint32_t* words = reinterpret_cast<uint32_t*>(dst);
  for (uint32_t i = 0; i < kWords; ++i) words[i] = src.GetValue(i);
}

}  // namespace ascend_attn_kernel
