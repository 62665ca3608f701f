// Intra-core synchronisation: pipe_t, HardEvent and the event machinery behind SetFlag/WaitFlag, PipeBarrier, the
// TPipe event-id pool and the events TQue operations imply.
#pragma once
#include <cstdint>
#include <string>

#include "sim_runtime.h"

// The pipes as the kernels name them (a compiler built-in at global scope on the device).
enum pipe_t { PIPE_S, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_ALL, PIPE_FIX };

namespace AscendC {

// Source_destination pipe pairs, in the devkit's order (impl/basic_api/kernel_event.h).
enum class HardEvent : uint8_t {
  MTE2_MTE1,
  MTE1_MTE2,
  MTE1_M,
  M_MTE1,
  MTE2_V,
  V_MTE2,
  MTE3_V,
  V_MTE3,
  M_V,
  V_M,
  V_V,
  MTE3_MTE1,
  MTE1_MTE3,
  MTE1_V,
  MTE2_M,
  M_MTE2,
  V_MTE1,
  M_FIX,
  FIX_M,
  MTE3_MTE2,
  MTE2_MTE3,
  S_V,
  V_S,
  S_MTE2,
  MTE2_S,
  S_MTE3,
  MTE3_S,
  MTE2_FIX,
  FIX_MTE2,
  FIX_S,
  M_S,
  FIX_MTE3,
  MTE1_FIX,
  FIX_MTE1,
  FIX_FIX,
  MAX,
};

using TEventID = int8_t;

}  // namespace AscendC

namespace ascend_sim {

using AscendC::HardEvent;

Pipe to_pipe(pipe_t p);
struct EventPipes {
  Pipe src, dst;
  bool aiv, aic;  // usable on the vector / cube core (kernel_event.h EventToIndexAiv / EventToIndexAic)
};
EventPipes event_pipes(HardEvent e);
std::string event_name(HardEvent e);

// SetFlag / WaitFlag; `by_queue` marks the ones a TQue operation issues with an id it took from the pool.
void set_flag(HardEvent e, int id, const Loc& loc, bool by_queue);
void wait_flag(HardEvent e, int id, const Loc& loc, bool by_queue);
void pipe_barrier(pipe_t p, const Loc& loc);

// The TPipe event-id pool of the calling thread (lowest free id first, as the devkit's TPipe hands them out).
int alloc_event_id(HardEvent e, const Loc& loc, bool by_queue);
void release_event_id(HardEvent e, int id, const Loc& loc, bool by_queue);
int fetch_event_id(HardEvent e, const Loc& loc);

}  // namespace ascend_sim
