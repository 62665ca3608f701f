// The simulator's execution model: a launch starts one AIC and two AIV threads per logical core (or one thread per
// core for vector- or cube-only kernels), each with its own local-memory arenas and pipes; GM buffers are
// registered by the host; synchronisation carries happens-before between pipes and threads; the first violated rule
// aborts the launch.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "sim_base.h"
#include "sim_cache.h"
#include "sim_config.h"
#include "sim_sync.h"

namespace ascend_sim {

// Per logical core (AIC index): what the model converts into time. AIV work folds into its core; vector cycles are
// kept per AIV, since the two AIVs run in parallel.
struct CoreCounters {
  std::atomic<uint64_t> gm_read_bytes{0}, gm_write_bytes{0}, cube_macs{0}, vector_elems{0};
  std::atomic<uint64_t> vector_cycles[2]{{0}, {0}};  // per AIV: elements divided by each instruction's lanes
  std::atomic<uint64_t> gm_workspace_bytes{0};       // the part of the GM traffic to and from scratch buffers
};

// A GM buffer the host passed to the launch, with the shadow of the accesses to it.
struct GmBuffer {
  const uint8_t* base = nullptr;
  uint64_t bytes = 0;
  std::string name;
  GmRole role = GmRole::kInput;
  std::mutex mutex;  // guards the shadow
  Shadow shadow;
};

struct Arena {
  std::vector<uint8_t> data;  // `capacity` bytes once the first InitBuffer carves it
  uint32_t capacity = 0;      // bytes a kernel may carve
  uint32_t used = 0;
};

class Launch;

// A SetFlag waiting for its WaitFlag.
struct PendingFlag {
  Clock clock;
  Loc loc;
  bool by_queue;  // set by a TQue operation (EnQue, FreeTensor), not by the kernel
};

// Everything one simulated core thread owns.
struct ThreadCtx {
  Launch* launch = nullptr;
  CoreType type = CoreType::kAiv;
  uint32_t core = 0;   // AIC index
  uint32_t sub = 0;    // 0/1 on the AIVs of a mix launch
  uint32_t index = 0;  // position among the launch's threads (clock components)
  Arena arenas[5];
  Shadow local[5];  // per arena
  PipeSync sync;
  std::map<std::pair<int, int>, PendingFlag> flags;  // (HardEvent, event id) -> pending SetFlag
  // TPipe event ids per HardEvent (bit i = id i): held by AllocEventID or a TQue, handed out by FetchEventID.
  std::map<int, uint8_t> ids_held, ids_by_queue, ids_fetched;
  int tpipes = 0;                   // live TPipe objects
  void* tpipe = nullptr;            // the innermost one (GetTPipePtr)
  bool init_buffer_called = false;  // REGIST_MATMUL_OBJ must come before any InitBuffer
  CoreCounters* counters = nullptr;
  // Matmul objects (vector-master, on the AIV): how many the kernel registered, the one in use until End().
  int matmul_objects = 0;
  const void* matmul_active = nullptr;
  std::string describe() const;  // "AIV 3"
};

ThreadCtx& ctx();  // the calling kernel thread's context (fails outside a launch)
bool dry_run();    // counts traffic and work without doing the arithmetic (for modelling large shapes)

struct LaunchOptions {
  bool dry_run = false;
  // When set, threads run one at a time, switching at instruction boundaries in an order drawn from this seed:
  // reproducible interleavings for tests (the race detector does not depend on the interleaving).
  bool serialize = false;
  uint64_t seed = 0;
};

class Launch {
 public:
  Launch(KernelType type, uint32_t block_dim, LaunchOptions options);
  ~Launch();
  // Registers a GM buffer for the next run (bounds, role, shadow).
  void add_buffer(const uint8_t* base, uint64_t bytes, std::string name, GmRole role);
  // Runs `kernel` on every simulated core thread; throws SimError with the first violation.
  void run(const std::function<void()>& kernel);

  GmBuffer* find_buffer(const void* p, uint64_t bytes);
  uint32_t block_dim() const { return block_dim_; }
  KernelType type() const { return type_; }
  bool is_dry_run() const { return options_.dry_run; }
  std::vector<CoreCounters>& counters() { return counters_; }
  uint32_t thread_count() const { return uint32_t(contexts_.size()); }

  // GM accesses: race detection against every thread, the scalar data cache's rules, counters.
  void gm_access(GmBuffer& b, uint64_t lo, uint64_t hi, bool write, const Access& a, bool scalar);
  void clean_invalidate(GmBuffer* b, uint64_t offset, bool entire, const Loc& loc);

  // Cross-core synchronisation; every wait gives up when another thread failed or all live threads are blocked.
  void sync_all(bool aiv_only, const Loc& loc);
  void cross_core_set(int mode, Pipe pipe, int flag_id, const Loc& loc);
  void cross_core_wait(int flag_id, const Loc& loc);
  void note_matmul_objects(int n);  // REGIST_MATMUL_OBJ: its flag ids are reserved
  // Serialized mode: a possible switch to another thread (called at every instruction).
  void yield();
  void record_failure(const std::string& message);

 private:
  struct Waiter {
    ThreadCtx* thread;
    const std::function<bool()>* ready;
    std::string what;
  };
  struct Round {
    uint32_t sets = 0;
    Clock clock;
  };
  struct FlagGroup {  // the setters of one cross-core flag round and whom a completed round releases
    std::vector<uint32_t> setters, targets;
    std::map<uint32_t, uint64_t> sets_by;  // setter -> rounds it contributed to
    uint64_t first = 0;                    // index of rounds.front()
    std::vector<Round> rounds;
  };
  void wait_until(std::unique_lock<std::mutex>& lock, ThreadCtx& c, const std::string& what,
                  const std::function<bool()>& ready);
  [[noreturn]] void deadlock(std::unique_lock<std::mutex>& lock);
  bool any_runnable_other(const ThreadCtx& self) const;
  void hand_over(std::unique_lock<std::mutex>& lock, ThreadCtx& c, bool keep_if_alone);
  void thread_main(ThreadCtx& c, const std::function<void()>& kernel);
  void check_exit(ThreadCtx& c);
  void race(ThreadCtx& c, const std::string& region, const Access& earlier, bool earlier_wrote, const Access& now,
            bool now_writes, uint64_t lo, uint64_t hi);
  friend void record_local(ThreadCtx& c, Memory m, uint64_t lo, uint64_t hi, bool write, const Access& a);

  KernelType type_;
  uint32_t block_dim_;
  LaunchOptions options_;
  std::vector<std::unique_ptr<GmBuffer>> buffers_;
  std::vector<std::unique_ptr<ThreadCtx>> contexts_;
  std::vector<CoreCounters> counters_;
  DataCaches caches_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool failed_ = false;
  std::string failure_;
  uint32_t live_ = 0;
  std::vector<Waiter*> waiters_;
  // SyncAll: arrivals of the current generation and the clock they carry; the clock each participant receives.
  uint32_t barrier_arrived_ = 0;
  uint64_t barrier_generation_ = 0;
  Clock barrier_clock_;
  Loc barrier_loc_;
  bool barrier_aiv_only_ = true;
  uint32_t barrier_expected_ = 0;
  std::vector<Clock> barrier_result_;
  std::vector<uint8_t> exited_;
  std::map<std::tuple<int, uint32_t, int, int>, FlagGroup> flag_groups_;  // (mode, group, flag id, side)
  std::map<std::pair<uint32_t, int>, std::vector<Clock>> semaphores_;     // (thread, flag id) -> released rounds
  int matmul_flag_ids_ = 0;
  // Serialized mode.
  uint32_t running_ = 0;
  std::mt19937_64 rng_;
};

// Local-memory accesses of the calling thread (race detection within its core).
void record_local(ThreadCtx& c, Memory m, uint64_t lo, uint64_t hi, bool write, const Access& a);

// Model of a launch on an Atlas 910B2 (see sim_config.h); an estimate, never a measurement.
struct ModelledTime {
  double us = 0.0;                 // max over cores of the per-core roofline, plus the launch overhead
  std::vector<double> core_us;     // per AIC core, without the overhead
  std::vector<std::string> bound;  // "cube", "vector" or "gm" per core
};
struct CoreWork {
  uint64_t gm_bytes = 0, cube_macs = 0, vector_cycles_max = 0;  // vector: the busier AIV of the core
};
ModelledTime model_time(const std::vector<CoreWork>& work);

}  // namespace ascend_sim
