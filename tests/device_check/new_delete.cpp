// Planted bug: heap allocation in device code.
#include "kernel_operator.h"

namespace {

__aicore__ inline uint32_t Scratch(uint32_t x) {
  // expect: function 'Scratch' reachable from kernel 'new_delete' uses a new expression
  uint32_t* p = new uint32_t(x);
  const uint32_t y = *p + 1;
  // expect: function 'Scratch' reachable from kernel 'new_delete' uses a delete expression
  delete p;
  return y;
}

}  // namespace

extern "C" __global__ __aicore__ void new_delete(GM_ADDR out) {
  AscendC::GlobalTensor<uint32_t> dst;
  dst.SetGlobalBuffer(reinterpret_cast<__gm__ uint32_t*>(out), 8);
  dst.SetValue(0, Scratch(uint32_t(AscendC::GetBlockIdx())));
}
