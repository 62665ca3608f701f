// Planted bug: a helper without __aicore__, reached through a qualified one.
#include "kernel_operator.h"

namespace {

// expect: function 'Twice' reachable from kernel 'helper_not_aicore' is not __aicore__
inline uint32_t Twice(uint32_t x) { return 2 * x; }

__aicore__ inline uint32_t TwicePlusOne(uint32_t x) { return Twice(x) + 1; }

}  // namespace

extern "C" __global__ __aicore__ void helper_not_aicore(GM_ADDR out) {
  AscendC::GlobalTensor<uint32_t> dst;
  dst.SetGlobalBuffer(reinterpret_cast<__gm__ uint32_t*>(out), 8);
  dst.SetValue(0, TwicePlusOne(uint32_t(AscendC::GetBlockIdx())));
}
