// Planted bug: the simulator's internals instead of the API (ASCEND_IS_AIV, which expands to them, is fine).
#include "kernel_operator.h"

extern "C" __global__ __aicore__ void sim_internal(GM_ADDR out) {
  if ASCEND_IS_AIV {
    // expect: function 'sim_internal' reachable from kernel 'sim_internal' uses simulator-internal ascend_sim::ctx
    (void)ascend_sim::ctx();
  }
}
