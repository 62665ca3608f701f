// Planted bugs in a kernel class template: a private method, the constructor and the destructor lack __aicore__
// (found through the instantiation the kernel uses), and so does a function template the destructor calls (found
// through the template's pattern: libclang shows no instantiated destructor).
#include "kernel_operator.h"

namespace {

template <typename T>
// expect: function 'Release' reachable from kernel 'class_template' is not __aicore__
void Release(T) {}

template <typename T>
class Worker {
 public:
  // expect: constructor 'Worker::Worker' reachable from kernel 'class_template' is not __aicore__
  Worker() {}
  // expect: destructor 'Worker::~Worker' reachable from kernel 'class_template' is not __aicore__
  ~Worker() { Release(last_); }
  __aicore__ inline T Process(T x) { return last_ = Step(x) * 2; }

 private:
  // expect: method 'Worker::Step' reachable from kernel 'class_template' is not __aicore__
  T Step(T x) { return x + 1; }

  T last_ = T(0);
};

}  // namespace

extern "C" __global__ __aicore__ void class_template(GM_ADDR out) {
  AscendC::GlobalTensor<float> dst;
  dst.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(out), 8);
  Worker<float> w;
  dst.SetValue(0, w.Process(float(AscendC::GetBlockIdx())));
}
