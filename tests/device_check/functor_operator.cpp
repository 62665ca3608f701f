// Planted bug: a named functor whose operator() lacks __aicore__, called from an instantiated device template.
#include "kernel_operator.h"

namespace {

struct AddBase {
  int64_t base;
  // expect: operator 'AddBase::operator()' reachable from kernel 'functor_operator' is not __aicore__
  int64_t operator()(int64_t x) const { return x + base; }
};

template <class F>
__aicore__ inline int64_t Apply(const F& f, int64_t x) {
  return f(x);
}

}  // namespace

extern "C" __global__ __aicore__ void functor_operator(GM_ADDR out) {
  AscendC::GlobalTensor<int64_t> dst;
  dst.SetGlobalBuffer(reinterpret_cast<__gm__ int64_t*>(out), 8);
  dst.SetValue(0, Apply(AddBase{AscendC::GetBlockIdx()}, 1));
}
