// Planted bugs: exceptions and a C library call in device code.
#include <cstdio>

#include "kernel_operator.h"

extern "C" __global__ __aicore__ void exceptions(GM_ADDR out) {
  // expect: function 'exceptions' reachable from kernel 'exceptions' uses try
  try {
    // expect: function 'exceptions' reachable from kernel 'exceptions' uses throw
    if (out == nullptr) throw 1;
    // expect: function 'exceptions' reachable from kernel 'exceptions' uses catch
  } catch (int) {
    // expect: function 'exceptions' reachable from kernel 'exceptions' calls host function 'printf'
    printf("no output\n");
  }
}
