// Simulator build of the Ascend C kernel API header: kernel sources include "kernel_operator.h" and compile
// unchanged with g++ against this subset (clean-room, from the API documentation; see SIMULATOR.md). Declarations
// follow the devkit's (namespace, names, template parameters, argument types); csrc/sim/README.md maps each to its
// header. Every API takes one extra defaulted argument, the call site, which no kernel passes.
#pragma once
#include <cstdint>

// Function qualifiers are empty for g++; scripts/check_device_code.py parses the kernels with them defined as
// annotations first, to walk the device call graph.
#ifndef __global__
#define __global__
#endif
#ifndef __aicore__
#define __aicore__
#endif
#ifndef __host_aicore__
#define __host_aicore__
#endif
// The kernel-type qualifiers and the system-workspace marker of the CANN >= 9 (bisheng -x asc) flow.
#ifndef __mix__
#define __mix__(cube, vector)
#endif
#ifndef __vector__
#define __vector__
#endif
#ifndef __cube__
#define __cube__
#endif
#ifndef __kfc_workspace__
#define __kfc_workspace__
#endif
#define __gm__
#define GM_ADDR uint8_t*

#include "sim_copy.h"
#include "sim_events.h"
#include "sim_memory.h"
#include "sim_runtime.h"
#include "sim_types.h"
#include "sim_vector.h"

namespace ascend_sim {
// What ASCEND_IS_AIV / ASCEND_IS_AIC yield: on the device they are `constexpr(...)` and only work as
// `if ASCEND_IS_AIV { ... }`; the explicit conversion keeps `bool b = ASCEND_IS_AIV` from compiling here too.
struct CoreIs {
  bool value;
  explicit operator bool() const { return value; }
};
}  // namespace ascend_sim
#define ASCEND_IS_AIV (::ascend_sim::CoreIs{::ascend_sim::ctx().type == ::ascend_sim::CoreType::kAiv})
#define ASCEND_IS_AIC (::ascend_sim::CoreIs{::ascend_sim::ctx().type == ::ascend_sim::CoreType::kAic})

enum KernelMetaType : uint8_t {
  KERNEL_TYPE_AIV_ONLY,
  KERNEL_TYPE_AIC_ONLY,
  KERNEL_TYPE_MIX_AIV_1_0,
  KERNEL_TYPE_MIX_AIC_1_0,
  KERNEL_TYPE_MIX_AIC_1_1,
  KERNEL_TYPE_MIX_AIC_1_2,
  KERNEL_TYPE_AICORE,
  KERNEL_TYPE_VECTORCORE,
  KERNEL_TYPE_MIX_AICORE,
  KERNEL_TYPE_MIX_VECTOR_CORE,
  KERNEL_TYPE_MAX,
};
// The launch decides which cores start; the kernel's declaration must agree with it.
#define KERNEL_TASK_TYPE_DEFAULT(type) ::ascend_sim::check_kernel_type(type)

namespace ascend_sim {
void check_kernel_type(KernelMetaType declared, Loc loc = {});
}  // namespace ascend_sim

// The library (Matmul) workspace the host reserves in front of the user workspace (global scope, as in the devkit's
// kernel_operator_swap_mem_intf.h).
__gm__ uint8_t* __gm__ GetSysWorkSpacePtr();

namespace AscendC {

enum class CacheLine : uint64_t { SINGLE_CACHE_LINE = 0, ENTIRE_DATA_CACHE };
enum class DcciDst : uint64_t { CACHELINE_ALL = 0, CACHELINE_UB, CACHELINE_OUT, CACHELINE_ATOMIC };

GM_ADDR GetUserWorkspace(GM_ADDR workspace);

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

// Intra-core pipe synchronisation (see sim_events.h).
template <HardEvent event>
void SetFlag(int32_t eventID, Loc loc = {}) {
  ascend_sim::set_flag(event, eventID, loc, false);
}
template <HardEvent event>
void WaitFlag(int32_t eventID, Loc loc = {}) {
  ascend_sim::wait_flag(event, eventID, loc, false);
}
template <pipe_t pipe>
void PipeBarrier(Loc loc = {}) {
  ascend_sim::pipe_barrier(pipe, loc);
}

// Cross-core synchronisation: counters per flag id (modes 0, 1, 2 on Atlas A2) and the all-core barrier.
template <uint8_t modeId, pipe_t pipe>
void CrossCoreSetFlag(uint16_t flagId, Loc loc = {}) {
  static_assert(pipe != PIPE_S && pipe != PIPE_ALL,
                "CrossCoreSetFlag takes a pipe other than PIPE_S and PIPE_ALL (CrossCoreSetFlag(ISASI).md)");
  ascend_sim::ctx().launch->cross_core_set(modeId, ascend_sim::to_pipe(pipe), flagId, loc);
}
template <uint8_t modeId = 0, pipe_t pipe = PIPE_S>
void CrossCoreWaitFlag(uint16_t flagId, Loc loc = {}) {
  ascend_sim::ctx().launch->cross_core_wait(flagId, loc);  // on A2 the mode and pipe are ignored: all pipes wait
}
template <bool isAIVOnly = true>
void SyncAll(Loc loc = {}) {
  ascend_sim::ctx().launch->sync_all(isAIVOnly, loc);
}

// Writes back the scalar data-cache line holding dst (or the whole cache) and drops it (see sim_cache.h).
template <typename T, CacheLine entireType, DcciDst dcciDst>
void DataCacheCleanAndInvalid(const GlobalTensor<T>& dst, Loc loc = {}) {
  static_assert(dcciDst != DcciDst::CACHELINE_ATOMIC && dcciDst != DcciDst::CACHELINE_UB,
                "the simulator keeps the data cache coherent with GM (CACHELINE_OUT / CACHELINE_ALL) only");
  ascend_sim::Instr in(ascend_sim::Pipe::kS, loc, "DataCacheCleanAndInvalid");
  in.scalar_gm(false);  // a write-back to L2/GM
  dst.check_range(0, entireType == CacheLine::ENTIRE_DATA_CACHE ? 0 : 1, loc);
  const uint64_t offset = uint64_t(reinterpret_cast<const uint8_t*>(dst.sim_data()) - dst.sim_buffer()->base);
  ascend_sim::ctx().launch->clean_invalidate(dst.sim_buffer(), offset, entireType == CacheLine::ENTIRE_DATA_CACHE, loc);
}
template <typename T, CacheLine entireType>
void DataCacheCleanAndInvalid(const GlobalTensor<T>& dst, Loc loc = {}) {
  DataCacheCleanAndInvalid<T, entireType, DcciDst::CACHELINE_OUT>(dst, loc);
}

}  // namespace AscendC

namespace ascend_sim {
// Set by the launch: where the system (library) workspace starts and how many bytes it has.
void set_sys_workspace(uint8_t* base, uint64_t bytes);
}  // namespace ascend_sim
