// Simulator build of the Ascend C kernel API header: kernel sources include "kernel_operator.h" and compile
// unchanged with g++ against this subset (clean-room, from the API documentation; see SIMULATOR.md).
#pragma once
#include <cstdint>

#include "sim_copy.h"
#include "sim_memory.h"
#include "sim_runtime.h"
#include "sim_types.h"
#include "sim_vector.h"

#define __global__
#define __aicore__
#define __gm__
#define GM_ADDR uint8_t*

#define ASCEND_IS_AIV (::ascend_sim::ctx().type == ::ascend_sim::CoreType::kAiv)
#define ASCEND_IS_AIC (::ascend_sim::ctx().type == ::ascend_sim::CoreType::kAic)

enum KernelTaskType { KERNEL_TYPE_AIV_ONLY, KERNEL_TYPE_AIC_ONLY, KERNEL_TYPE_MIX_AIC_1_2 };
// The launch decides which cores start; the kernel's declaration must agree with it.
#define KERNEL_TASK_TYPE_DEFAULT(type) ::ascend_sim::check_kernel_type(type)

enum pipe_t { PIPE_S, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_FIX, PIPE_ALL };

namespace ascend_sim {
inline void check_kernel_type(KernelTaskType declared, Loc loc = {}) {
  static const KernelType as_launch[] = {KernelType::kAivOnly, KernelType::kAicOnly, KernelType::kMixAic1To2};
  check(as_launch[declared] == ctx().launch->type(), loc,
        [] { return "KERNEL_TASK_TYPE_DEFAULT does not match the kernel type it was launched with"; });
}
}  // namespace ascend_sim

namespace AscendC {

enum class HardEvent {
  MTE2_V,
  V_MTE2,
  V_MTE3,
  MTE3_V,
  MTE2_MTE3,
  MTE3_MTE2,
  S_V,
  V_S,
  MTE2_S,
  S_MTE2,
  MTE3_S,
  S_MTE3,
  MTE1_M,
  M_MTE1,
  MTE2_MTE1,
  MTE1_MTE2,
  M_FIX,
  FIX_M,
  MTE3_MTE1
};

// Core identity: AIC index on AIC; 2 * core + sub on the AIVs of a mix launch.
inline int64_t GetBlockIdx() {
  const auto& c = ascend_sim::ctx();
  if (c.type == ascend_sim::CoreType::kAic || c.launch->type() != ascend_sim::KernelType::kMixAic1To2) return c.core;
  return 2 * c.core + c.sub;
}
inline int64_t GetBlockNum() { return ascend_sim::ctx().launch->block_dim(); }
inline int64_t GetSubBlockIdx() { return ascend_sim::ctx().sub; }
inline int64_t GetSubBlockNum() {
  const auto& c = ascend_sim::ctx();
  return c.type == ascend_sim::CoreType::kAiv && c.launch->type() == ascend_sim::KernelType::kMixAic1To2 ? 2 : 1;
}
inline int64_t GetTaskRatio() { return GetSubBlockNum(); }

// Pipes run in program order in the simulator, so flags only need to pair up; that is checked.
template <HardEvent E>
void SetFlag(int32_t id, Loc loc = {}) {
  ascend_sim::check(id >= 0 && id < 8, loc, [&] { return "SetFlag event id " + std::to_string(id) + " outside 0..7"; });
  auto& c = ascend_sim::ctx();
  ++c.pipe_flags[{int(E), id}];
  c.last_flag_loc = loc;
}
template <HardEvent E>
void WaitFlag(int32_t id, Loc loc = {}) {
  auto& c = ascend_sim::ctx();
  int64_t& pending = c.pipe_flags[{int(E), id}];
  ascend_sim::check(pending > 0, loc, [&] {
    return "WaitFlag for event " + std::to_string(int(E)) + " id " + std::to_string(id) + " with no prior SetFlag";
  });
  --pending;
  c.last_flag_loc = loc;
}
template <pipe_t P>
void PipeBarrier() {}

template <uint8_t modeId, pipe_t pipe>
void CrossCoreSetFlag(uint16_t flagId, Loc loc = {}) {
  ascend_sim::ctx().launch->cross_core_set(modeId, flagId, loc);
}
inline void CrossCoreWaitFlag(uint16_t flagId, Loc loc = {}) { ascend_sim::ctx().launch->cross_core_wait(flagId, loc); }

inline void SyncAll(Loc loc = {}) { ascend_sim::ctx().launch->sync_all(loc); }

// The host reserves the library (Matmul) workspace in front of the user workspace; see ascend_sim::set_sys_workspace.
GM_ADDR GetSysWorkSpacePtr();
GM_ADDR GetUserWorkspace(GM_ADDR workspace);

// Scalar writes to GM stay in the data cache on the device until cleaned; the simulator has no cache.
template <typename T, int mode = 0, int entire = 0>
void DataCacheCleanAndInvalid(const GlobalTensor<T>&) {}

}  // namespace AscendC

namespace ascend_sim {
// Set by the launch: where the system (library) workspace starts and how many bytes it has.
void set_sys_workspace(uint8_t* base, uint64_t bytes);
}  // namespace ascend_sim
