// Clean device code: what scripts/check_device_code.py must accept (qualified functors, lambdas and constexpr helpers,
// compile-time std traits, the API and its macros — ASCEND_IS_AIC expands to the simulator's internals), next to host
// code the kernel never reaches.
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernel_operator.h"

namespace {

constexpr uint32_t kRows = 8;

__host_aicore__ constexpr uint32_t RoundUp32(uint32_t n) { return (n + 31) / 32 * 32; }

// Only evaluated by the compiler (static_assert below): no device code, no qualifier needed.
constexpr uint32_t CompileTimeOnly(uint32_t n) { return n + 1; }

struct AddBase {
  int64_t base;
  __aicore__ inline int64_t operator()(int64_t x) const { return x + base; }
};

template <class F, typename = std::enable_if_t<!std::is_same_v<F, int>>>
__aicore__ inline int64_t Apply(const F& f, int64_t x) {
  return f(x);
}

template <typename T>
class Counter {
 public:
  __aicore__ inline Counter() {}
  __aicore__ inline ~Counter() {}
  __aicore__ inline void Add(T v) { total_ += v; }
  __aicore__ inline T Total() const { return total_; }

 private:
  T total_ = T(0);
};

// Host code in a kernel file, never called from the kernel.
inline std::vector<int> HostOnly() { return std::vector<int>{1, 2}; }

}  // namespace

extern "C" __global__ __aicore__ void clean(GM_ADDR out) {
  KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIV_ONLY);
  static_assert(std::is_trivially_copyable<AddBase>::value && CompileTimeOnly(1) == 2, "compile time only");
  if ASCEND_IS_AIC {
    return;
  }
  AscendC::GlobalTensor<int64_t> dst;
  dst.SetGlobalBuffer(reinterpret_cast<__gm__ int64_t*>(out), kRows);
  Counter<int64_t> counter;
  const std::uint32_t core = uint32_t(AscendC::GetBlockIdx());  // std:: aliases of built-in types are allowed
  counter.Add(Apply(AddBase{int64_t(RoundUp32(core))}, 1));
  counter.Add(Apply([](int64_t x) __aicore__ { return x * 2; }, 1));  // a qualified lambda is device code too
  dst.SetValue(0, counter.Total());
}
