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
#include "sim_timeline.h"

namespace ascend_sim {

// Per logical core (AIC index): what the model converts into time. AIV work folds into its core; vector cycles are
// kept per AIV, since the two AIVs run in parallel.
struct CoreCounters {
  std::atomic<uint64_t> gm_read_bytes{0}, gm_write_bytes{0}, cube_macs{0}, vector_elems{0};
  std::atomic<uint64_t> vector_cycles[2]{{0}, {0}};         // per AIV: elements divided by each instruction's lanes
  std::atomic<uint64_t> gm_workspace_bytes{0};              // the part of the GM traffic to and from scratch buffers
  std::atomic<uint64_t> l2_hit_bytes{0}, l2_miss_bytes{0};  // GM traffic that found its bytes in L2, and the rest
};

// A GM buffer the host passed to the launch, with the shadow of the accesses to it.
struct GmBuffer {
  const uint8_t* base = nullptr;
  uint64_t bytes = 0;
  std::string name;
  GmRole role = GmRole::kInput;
  // Where the time model places the buffer: 2^40 bytes apart in the order of registration, so L2 granules and
  // data-cache lines fall the same way whatever addresses the host allocator returned.
  uint64_t model_base = 0;
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
  double time;  // when the flag is set: the source pipe's issued work is done
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
  // The timeline: the times of this thread's pipes, the instruction in progress, the traced instructions.
  Timeline times;
  Instr* instr = nullptr;
  std::vector<TraceEvent> trace;
  std::condition_variable turn;  // signalled when the scheduler hands this thread the baton
  std::string describe() const;  // "AIV 3"
};

ThreadCtx& ctx();  // the calling kernel thread's context (fails outside a launch)
bool dry_run();    // counts traffic and work without doing the arithmetic (for modelling large shapes)

struct LaunchOptions {
  bool dry_run = false;
  // The simulated threads run one at a time. By default the scheduler resumes the thread whose scalar unit is
  // earliest in modelled time, so shared units (a core's GM port and cube, the L2) see requests in time order and the
  // timeline is deterministic; with `seeded`, it switches at instruction boundaries in an order drawn from `seed`
  // (reproducible adversarial interleavings; the race detector does not depend on the interleaving either way).
  bool seeded = false;
  uint64_t seed = 0;
  bool trace = false;  // keep every instruction's pipe, start and end (TraceEvent)
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
  Resource& port(uint32_t core) { return port_[core]; }
  Resource& cube(uint32_t core) { return cube_[core]; }
  L2Model& l2() { return l2_; }
  bool tracing() const { return options_.trace; }
  const std::vector<std::unique_ptr<ThreadCtx>>& threads() const { return contexts_; }
  uint32_t block_dim() const { return block_dim_; }
  KernelType type() const { return type_; }
  bool is_dry_run() const { return options_.dry_run; }
  std::vector<CoreCounters>& counters() { return counters_; }
  uint32_t thread_count() const { return uint32_t(contexts_.size()); }

  // GM accesses: race detection against every thread, the scalar data cache's rules, counters. An atomic add is a
  // DMA or cube write (never scalar).
  void gm_access(GmBuffer& b, uint64_t lo, uint64_t hi, AccessKind kind, const Access& a, bool scalar);
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
  struct Round {  // one round of a cross-core flag: what its setters' work carries, and when the round completes
    uint32_t sets = 0;
    Clock clock;
    double time = 0.0;
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
  bool runnable(const ThreadCtx& t) const;
  // Gives the baton to the next thread to run (the earliest in modelled time, or a seeded pick) other than `c`;
  // returns false when there is none.
  bool hand_over(ThreadCtx& c);
  void wait_turn(std::unique_lock<std::mutex>& lock, ThreadCtx& c, const std::function<bool()>& also);
  void thread_main(ThreadCtx& c, const std::function<void()>& kernel);
  void check_exit(ThreadCtx& c);
  void race(ThreadCtx& c, const std::string& region, const Access& earlier, AccessKind earlier_kind, const Access& now,
            AccessKind now_kind, uint64_t lo, uint64_t hi);
  friend void record_local(ThreadCtx& c, Memory m, uint64_t lo, uint64_t hi, bool write, const Access& a);

  KernelType type_;
  uint32_t block_dim_;
  LaunchOptions options_;
  std::vector<std::unique_ptr<GmBuffer>> buffers_;
  std::vector<std::unique_ptr<ThreadCtx>> contexts_;
  std::vector<CoreCounters> counters_;
  std::vector<Resource> port_, cube_;  // per core
  L2Model l2_;
  DataCaches caches_;
  std::mutex mutex_;
  bool failed_ = false;
  std::string failure_;
  uint32_t live_ = 0;
  std::vector<Waiter*> waiters_;
  // SyncAll: arrivals of the current generation and the clock they carry; the clock each participant receives.
  uint32_t barrier_arrived_ = 0;
  uint64_t barrier_generation_ = 0;
  Clock barrier_clock_;
  double barrier_time_ = 0.0;
  Loc barrier_loc_;
  bool barrier_aiv_only_ = true;
  uint32_t barrier_expected_ = 0;
  std::vector<Clock> barrier_result_;
  std::vector<double> barrier_result_time_;
  std::vector<uint8_t> exited_;
  std::map<std::tuple<int, uint32_t, int, int>, FlagGroup> flag_groups_;  // (mode, group, flag id, side)
  std::map<std::pair<uint32_t, int>, std::vector<Round>> semaphores_;     // (thread, flag id) -> released rounds
  int matmul_flag_ids_ = 0;
  // The baton: the one simulated thread that runs.
  uint32_t running_ = 0;
  std::mt19937_64 rng_;
  uint64_t yields_ = 0;
};

// Local-memory accesses of the calling thread (race detection within its core).
void record_local(ThreadCtx& c, Memory m, uint64_t lo, uint64_t hi, bool write, const Access& a);

}  // namespace ascend_sim
