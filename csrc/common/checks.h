// Argument-check macros shared by every backend. Each message names the argument and the rule it broke.
#pragma once
#include <ATen/ATen.h>

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
