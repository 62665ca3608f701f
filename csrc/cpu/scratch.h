// Per-thread scratch of the CPU kernels, kept between calls, and how much of it the threads hold.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ascend_attn::cpu {

// This thread's 64-byte aligned scratch of at least `floats` floats (shared by the forward and backward kernels).
float* thread_scratch(size_t floats);

// Bytes of scratch all threads hold now (outside torch's allocator and its profiler); backs the op
// ascend_attn::cpu_scratch_bytes.
int64_t scratch_bytes();

}  // namespace ascend_attn::cpu
