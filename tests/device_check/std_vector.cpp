// Planted bug: a std container in device code.
#include <vector>

#include "kernel_operator.h"

extern "C" __global__ __aicore__ void std_vector(GM_ADDR out) {
  AscendC::GlobalTensor<uint32_t> dst;
  dst.SetGlobalBuffer(reinterpret_cast<__gm__ uint32_t*>(out), 8);
  // expect: function 'std_vector' reachable from kernel 'std_vector' uses host-only std::vector
  std::vector<uint32_t> rows(4, 1u);
  // expect: uses host-only std::vector
  dst.SetValue(0, uint32_t(rows.size()));
}
