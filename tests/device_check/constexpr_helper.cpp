// Planted bug: a constexpr helper without a qualifier, called with a run-time value (so it runs on the device).
#include "kernel_operator.h"

namespace {

// expect: function 'RoundUp32' reachable from kernel 'constexpr_helper' is not __aicore__
constexpr uint32_t RoundUp32(uint32_t n) { return (n + 31) / 32 * 32; }

}  // namespace

extern "C" __global__ __aicore__ void constexpr_helper(GM_ADDR out) {
  AscendC::GlobalTensor<uint32_t> dst;
  dst.SetGlobalBuffer(reinterpret_cast<__gm__ uint32_t*>(out), 8);
  dst.SetValue(0, RoundUp32(uint32_t(AscendC::GetBlockIdx())));
}
