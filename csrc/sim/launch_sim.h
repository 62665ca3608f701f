// Simulator-side controls around op_kernel/launch.h: dry runs, serialized interleavings and the counters of the last
// launch on this thread.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sim_base.h"

namespace ascend_sim {

// System (library) workspace the simulator reserves in front of the user workspace.
constexpr uint64_t kSimSysWorkspaceBytes = 512;
// GetUserWorkspace skips exactly this many bytes; the host flows round it up to 512 (kWorkspaceAlign) first.
static_assert(kSimSysWorkspaceBytes % 512 == 0, "the simulator's system workspace must need no rounding");

struct CoreStats {
  uint64_t gm_read_bytes = 0, gm_write_bytes = 0, cube_macs = 0, vector_elems = 0;
  uint64_t vector_cycles[2] = {0, 0};  // per AIV of the core
  uint64_t gm_workspace_bytes = 0;
  uint64_t l2_hit_bytes = 0, l2_miss_bytes = 0;
  // The timeline (cycles): when the core's last instruction completed, and the busy time of each of its pipes
  // ("AIV 3 V", ...), its cube and its GM/L2 port.
  double end_cycles = 0.0, cube_busy = 0.0, port_busy = 0.0;
  std::vector<std::pair<std::string, double>> pipe_busy;
};

struct LaunchStats {
  uint32_t block_dim = 0;
  std::vector<CoreStats> per_core;
};

// While set, launches on this thread count traffic and work but skip the arithmetic (for modelling large shapes).
void set_dry_run(bool on);
// While set, launches on this thread run their simulated threads one at a time in an order drawn from the seed.
void set_schedule_seed(std::optional<uint64_t> seed);
// While set (a path), the next launch on this thread writes a Chrome / Perfetto trace there: a track per core x
// thread x pipe, a slice per instruction.
void set_trace_path(std::optional<std::string> path);
// Counters of the last launch made on this thread.
const LaunchStats& last_launch_stats();

// Runs `kernel` as one launch on this thread, over the GM buffers noted since the previous launch; throws SimError
// with the first violated rule.
void run_kernel(KernelType type, uint32_t block_dim, uint8_t* workspace, const std::function<void()>& kernel);

}  // namespace ascend_sim
