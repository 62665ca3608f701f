// The simulator's execution model: a launch starts one AIC and two AIV threads per logical core, each with its own
// local-memory arenas; GM buffers are registered by the host; the first violated rule aborts the launch.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "sim_config.h"

namespace ascend_sim {

// Where a kernel called a simulated API: filled at the call site through default arguments.
struct Loc {
  const char* file;
  int line;
  Loc(const char* f = __builtin_FILE(), int l = __builtin_LINE()) : file(f), line(l) {}
};

// Thrown inside a kernel thread when a rule is violated; the launch turns it into one error for the host.
struct SimError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const Loc& loc, const std::string& message);
inline void check(bool ok, const Loc& loc, const std::function<std::string()>& message) {
  if (!ok) fail(loc, message());
}

enum class KernelType { kAivOnly, kAicOnly, kMixAic1To2 };
enum class CoreType { kAic, kAiv };

// Per logical core (AIC index): what the model converts into time. AIV work folds into its core.
struct CoreCounters {
  std::atomic<uint64_t> gm_read_bytes{0}, gm_write_bytes{0}, cube_macs{0}, vector_elems{0};
  std::atomic<uint64_t> vector_cycles{0};       // vector_elems divided by the lanes of each instruction's type
  std::atomic<uint64_t> gm_workspace_bytes{0};  // the part of the GM traffic to and from the workspace
};

struct GmBuffer {
  const uint8_t* base;
  uint64_t bytes;
  std::string name;
};

// Local memory kinds with their own per-thread arena.
enum class Memory { kUb, kL1, kL0a, kL0b, kL0c };

struct Arena {
  std::vector<uint8_t> data;  // `capacity` bytes once the first InitBuffer carves it
  uint32_t capacity = 0;      // bytes a kernel may carve
  uint32_t used = 0;
};

class Launch;

// Everything one simulated core thread owns.
struct ThreadCtx {
  Launch* launch = nullptr;
  CoreType type = CoreType::kAiv;
  uint32_t core = 0;  // AIC index
  uint32_t sub = 0;   // 0/1 on AIV
  Arena arenas[5];
  std::map<std::pair<int, int>, int64_t> pipe_flags;  // (event, id) -> SetFlag minus WaitFlag
  Loc last_flag_loc;
  CoreCounters* counters = nullptr;
};

ThreadCtx& ctx();  // the calling kernel thread's context (fails outside a launch)
bool dry_run();    // counts traffic and work without doing the arithmetic (for modelling large shapes)

class Launch {
 public:
  Launch(KernelType type, uint32_t block_dim, std::vector<GmBuffer> buffers, bool dry_run);
  // Runs `kernel` on every simulated core thread; throws SimError with the first violation.
  void run(const std::function<void()>& kernel);

  const GmBuffer* find_buffer(const void* p, uint64_t bytes) const;
  uint32_t block_dim() const { return block_dim_; }
  KernelType type() const { return type_; }
  bool is_dry_run() const { return dry_run_; }
  std::vector<CoreCounters>& counters() { return counters_; }

  // Synchronization across threads; every wait gives up when another thread failed.
  void sync_all(const Loc& loc);
  void cross_core_set(int mode, int flag_id, const Loc& loc);
  void cross_core_wait(int flag_id, const Loc& loc);
  void record_failure(const std::string& message);

 private:
  void wait_or_abort(std::unique_lock<std::mutex>& lock, const std::function<bool()>& ready);
  int64_t& semaphore(CoreType type, uint32_t thread_index, int flag_id);

  KernelType type_;
  uint32_t block_dim_;
  std::vector<GmBuffer> buffers_;
  bool dry_run_;
  std::vector<CoreCounters> counters_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool failed_ = false;
  std::string failure_;
  uint32_t barrier_expected_ = 0, barrier_arrived_ = 0;
  uint64_t barrier_generation_ = 0;
  std::map<std::tuple<int, uint32_t, int>, int64_t> semaphores_;  // (core type, thread index, flag id)
};

// Model of a launch on an Atlas 910B2 (see sim_config.h); an estimate, never a measurement.
struct ModelledTime {
  double us = 0.0;                 // max over cores of the per-core roofline, plus the launch overhead
  std::vector<double> core_us;     // per AIC core, without the overhead
  std::vector<std::string> bound;  // "cube", "vector" or "gm" per core
};
ModelledTime model_time(const std::vector<CoreCounters>& counters, uint32_t cores_in_model);

}  // namespace ascend_sim
