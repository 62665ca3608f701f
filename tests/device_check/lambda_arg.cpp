// Planted bug: a lambda passed to a device template (bisheng needs __aicore__ on the lambda's call operator).
#include "kernel_operator.h"

namespace {

template <class F>
__aicore__ inline int64_t Apply(const F& f, int64_t x) {
  return f(x);
}

}  // namespace

extern "C" __global__ __aicore__ void lambda_arg(GM_ADDR out) {
  AscendC::GlobalTensor<int64_t> dst;
  dst.SetGlobalBuffer(reinterpret_cast<__gm__ int64_t*>(out), 8);
  const int64_t base = AscendC::GetBlockIdx();
  // expect: lambda in function 'lambda_arg' reachable from kernel 'lambda_arg' is not __aicore__
  dst.SetValue(0, Apply([&](int64_t x) { return x + base; }, 1));
}
