// The scalar data cache of every simulated thread. GlobalTensor::GetValue/SetValue go through a per-core cache of
// 64-byte lines that is coherent neither with GM (where the DMA pipes and the cube read and write) nor with other
// cores' caches; DataCacheCleanAndInvalid writes a line back and drops it (DataCacheCleanAndInvalid.md, and the A2
// hardware constraints: "Scalar writes to GM stay in DCache"). A dirty line is written back whole, so two cores
// dirtying one line overwrite each other (the page's example 3).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "sim_base.h"

namespace ascend_sim {

constexpr uint64_t kCacheLineBytes = 64;

class DataCaches {
 public:
  void init(std::vector<std::string> thread_names) { names_ = std::move(thread_names); }
  // Each either fails the launch naming the rule or returns whether thread t's cache held the line already (a hit);
  // `name` and `base` identify the GM buffer.
  bool scalar_read(uint32_t t, const char* name, const uint8_t* base, const uint8_t* p, uint64_t bytes, const Loc& loc);
  bool scalar_write(uint32_t t, const char* name, const uint8_t* base, const uint8_t* p, uint64_t bytes,
                    const Loc& loc);
  // A DMA pipe (MTE2 / MTE3) or the cube of thread t reads or writes [p, p + bytes).
  void dma_read(uint32_t t, const char* what, const char* name, const uint8_t* base, const uint8_t* p, uint64_t bytes,
                const Loc& loc);
  void dma_write(uint32_t t, const char* what, const char* name, const uint8_t* base, const uint8_t* p, uint64_t bytes,
                 const Loc& loc);
  // Writes back (if dirty) and drops the line holding `p`, or every line of thread t when `entire`.
  void clean_invalidate(uint32_t t, const uint8_t* p, bool entire, const Loc& loc);
  // At thread t's exit: a line it still holds dirty is a scalar write nothing guarantees reaches GM before the host
  // (or the next kernel) reads it; stricter than the device may be, which writes lines back at some point.
  void check_exit(uint32_t t);

 private:
  struct Holder {
    bool stale = false;
    Loc changed_at;  // where the GM content of a stale line changed
    std::string changed_by;
  };
  struct Line {
    int64_t dirty_by = -1;
    uint64_t dirty_mask = 0;  // bytes SetValue wrote
    Loc dirty_at;
    std::map<uint32_t, Holder> holders;  // threads caching the line
  };
  void write_back(uint64_t line, Line& l, const Loc& loc);

  std::mutex mutex_;
  std::map<uint64_t, Line> lines_;  // by absolute address / 64
  std::vector<std::string> names_;
};

}  // namespace ascend_sim
