#include "cpu/scratch.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>

namespace ascend_attn::cpu {
namespace {

std::atomic<int64_t> bytes_held{0};

// One thread's buffer; freed (and uncounted) when the thread exits.
struct Buffer {
  float* data = nullptr;
  size_t bytes = 0;
  ~Buffer() {
    std::free(data);
    bytes_held -= static_cast<int64_t>(bytes);
  }
};

}  // namespace

// Kept across calls: the pool threads are long-lived, and a fresh megabyte per call would cost page faults on every
// call.
float* thread_scratch(size_t floats) {
  thread_local Buffer buffer;
  const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
  if (bytes > buffer.bytes) {
    float* data = static_cast<float*>(std::aligned_alloc(64, bytes));
    TORCH_CHECK(data != nullptr, "attention: out of memory allocating ", bytes, " bytes of scratch");
    std::free(buffer.data);
    bytes_held += static_cast<int64_t>(bytes - buffer.bytes);
    buffer.data = data;
    buffer.bytes = bytes;
  }
  return buffer.data;
}

int64_t scratch_bytes() { return bytes_held.load(); }

}  // namespace ascend_attn::cpu
