// Argument-check macros shared by every backend. Each message names the argument and the rule it broke.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <limits>

#define CHECK_DIM(x, n) \
  TORCH_CHECK((x).dim() == (n), #x " must have " #n " dimensions, got ", (x).dim(), " (shape ", (x).sizes(), ")")

#define CHECK_DTYPE(x, dt) \
  TORCH_CHECK((x).scalar_type() == (dt), #x " must have dtype ", dt, ", got ", (x).scalar_type())

#define CHECK_SAME_DTYPE(x, ref)                                                                      \
  TORCH_CHECK((x).scalar_type() == (ref).scalar_type(), #x " must have the same dtype as " #ref " (", \
              (ref).scalar_type(), "), got ", (x).scalar_type())

#define CHECK_SAME_DEVICE(x, ref)                                                                             \
  TORCH_CHECK((x).device() == (ref).device(), #x " must be on the same device as " #ref " (", (ref).device(), \
              "), got ", (x).device())

#define CHECK_SIZE(x, d, n) \
  TORCH_CHECK((x).size(d) == (n), #x ".size(" #d ") must be ", (n), ", got ", (x).size(d), " (shape ", (x).sizes(), ")")

// The kernels index tokens, heads and keys with int32 (as cu_seqlens, context_lens and block_tables do): a larger
// size is an error here, never a silent wrap-around further down.
#define CHECK_INT32_SIZE(value, what)                               \
  TORCH_CHECK((value) <= std::numeric_limits<int32_t>::max(), what, \
              " must be at most 2^31 - 1 (the kernels index it with int32), got ", (value))
