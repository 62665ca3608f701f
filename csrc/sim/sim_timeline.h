// The timeline model: every instruction gets a start and an end on its pipe. A pipe runs its instructions one after
// another; an instruction starts when its pipe is free, after the scalar unit issued it, and after whatever the
// synchronisation it waited on imposes (flags, queue events, barriers, cross-core signals, Matmul waits). DMA shares
// its core's port to GM/L2 with the core's other DMA and its cube's traffic; the cube of a core serves both AIVs'
// Matmul requests one at a time; GM reads that hit the chip's L2 move at the L2 rate. Costs: sim_config.h.
#pragma once
#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "sim_base.h"
#include "sim_config.h"
#include "sim_sync.h"

namespace ascend_sim {

// Busy intervals of a unit shared inside a core (its GM port, its cube): a request takes the earliest gap at or after
// the time it is ready.
class Resource {
 public:
  double book(double ready, double duration);  // returns the start
  void forget_before(double t);                // no request can be ready before t any more
  double busy() const { return busy_; }

 private:
  std::map<double, double> intervals_;  // start -> end
  double busy_ = 0.0;
};

// The chip's L2: residency of kModelL2GranuleBytes granules, least recently used out, filled by reads and writes.
class L2Model {
 public:
  // Touches [addr, addr + bytes); returns how many of those bytes were resident before.
  uint64_t touch(uint64_t addr, uint64_t bytes);

 private:
  std::list<uint64_t> lru_;  // most recent first
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> where_;
};

// The times of one thread's pipes (cycles).
struct Timeline {
  double s = 0.0;                   // the scalar unit: when it issues its next instruction
  double free[kPipeCount] = {};     // when each pipe can start its next instruction
  double done[kPipeCount] = {};     // when everything issued to each pipe has completed
  double ready[kPipeCount] = {};    // earliest start the pipe's waits impose on its next instruction
  double busy[kPipeCount] = {};     // busy cycles per pipe
  double end() const;               // when the thread's last instruction completes
  void wait_all(double t);          // every pipe (and the scalar unit) waits until t
  double completion(Pipe p) const;  // when pipe p's issued work is done, seen from the scalar unit's side
  double completion_all() const;
};

// One traced instruction.
struct TraceEvent {
  uint32_t thread;
  Pipe pipe;
  double start, end;
  const char* what;
  Loc loc;
  uint64_t bytes, macs;
};

// The instruction a simulated API call is executing: created at the call's start (a switch point of the scheduler,
// where it gets its identity for the race detector), fed with what the call moves and computes, timed when it ends.
class Instr {
 public:
  Instr(Pipe pipe, const Loc& loc, const char* what);
  ~Instr();
  Instr(const Instr&) = delete;
  const Access& access() const { return access_; }
  Pipe pipe() const { return pipe_; }
  void add_cycles(double cycles) { cycles_ += cycles; }
  void add_macs(uint64_t macs) { macs_ += macs; }
  void add_gm(uint64_t l2_hit_bytes, uint64_t l2_miss_bytes) { hit_ += l2_hit_bytes, miss_ += l2_miss_bytes; }
  void scalar_gm(bool cache_hit) { scalar_gm_ = true, scalar_hit_ = scalar_hit_ && cache_hit; }

 private:
  void finish();
  Pipe pipe_;
  Loc loc_;
  const char* what_;
  Access access_;
  double cycles_ = 0.0;
  uint64_t macs_ = 0, hit_ = 0, miss_ = 0;
  bool scalar_gm_ = false, scalar_hit_ = true;
  Instr* outer_;
  int uncaught_;
};

// Cycles to move bytes through one core's share of L2 and GM bandwidth.
double transfer_cycles(uint64_t l2_hit_bytes, uint64_t l2_miss_bytes);

}  // namespace ascend_sim
