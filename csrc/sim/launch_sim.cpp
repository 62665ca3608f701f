// The simulator definition of op_kernel/launch.h, the part shared by the kernels (launch_sim_<kernel>.cpp compile
// one kernel each, so a kernel change rebuilds one translation unit).
#include "launch_sim.h"

#include <mutex>
#include <string>
#include <vector>

#include "../../op_kernel/launch.h"
#include "kernel_operator.h"
#include "sim_runtime.h"

namespace ascend_sim {

namespace {
struct PendingBuffer {
  const uint8_t* base;
  uint64_t bytes;
  std::string name;
  GmRole role;
};
thread_local std::vector<PendingBuffer> t_pending;
thread_local bool t_dry_run = false;
thread_local std::optional<uint64_t> t_seed;
thread_local LaunchStats t_last;
// One launch at a time: the system workspace pointer below is process-wide, like the device's.
std::mutex g_launch_mutex;
uint8_t* g_sys_ws = nullptr;
uint64_t g_sys_ws_bytes = 0;

}  // namespace

void run_kernel(KernelType type, uint32_t block_dim, uint8_t* workspace, const std::function<void()>& kernel) {
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  LaunchOptions options;
  options.dry_run = t_dry_run;
  options.serialize = t_seed.has_value();
  options.seed = t_seed.value_or(0);
  Launch launch(type, block_dim, options);
  for (const PendingBuffer& b : t_pending) launch.add_buffer(b.base, b.bytes, b.name, b.role);
  t_pending.clear();
  set_sys_workspace(workspace, kSimSysWorkspaceBytes);
  t_last = LaunchStats{block_dim, {}};
  launch.run(kernel);  // throws SimError on the first violated rule
  for (const CoreCounters& c : launch.counters()) {
    t_last.per_core.push_back({c.gm_read_bytes,
                               c.gm_write_bytes,
                               c.cube_macs,
                               c.vector_elems,
                               {c.vector_cycles[0], c.vector_cycles[1]},
                               c.gm_workspace_bytes});
  }
}

void set_sys_workspace(uint8_t* base, uint64_t bytes) {
  g_sys_ws = base;
  g_sys_ws_bytes = bytes;
}
void set_dry_run(bool on) { t_dry_run = on; }
void set_schedule_seed(std::optional<uint64_t> seed) { t_seed = seed; }
const LaunchStats& last_launch_stats() { return t_last; }

void check_kernel_type(KernelMetaType declared, Loc loc) {
  const KernelType launched = ctx().launch->type();
  const bool ok = (declared == KERNEL_TYPE_AIV_ONLY && launched == KernelType::kAivOnly) ||
                  (declared == KERNEL_TYPE_AIC_ONLY && launched == KernelType::kAicOnly) ||
                  (declared == KERNEL_TYPE_MIX_AIV_1_0 && launched == KernelType::kMixAiv1To0) ||
                  (declared == KERNEL_TYPE_MIX_AIC_1_2 && launched == KernelType::kMixAic1To2);
  check(ok, loc, [] { return "KERNEL_TASK_TYPE_DEFAULT does not match the kernel type it was launched with"; });
}

}  // namespace ascend_sim

__gm__ uint8_t* __gm__ GetSysWorkSpacePtr() { return ascend_sim::g_sys_ws; }

namespace AscendC {
GM_ADDR GetUserWorkspace(GM_ADDR workspace) { return workspace + ascend_sim::g_sys_ws_bytes; }
}  // namespace AscendC

void launch_note_buffer(const void* base, uint64_t bytes, const char* name, BufferRole role) {
  static_assert(int(BufferRole::kScratch) == int(ascend_sim::GmRole::kScratch), "the two role enums agree");
  ascend_sim::t_pending.push_back({static_cast<const uint8_t*>(base), bytes, name, ascend_sim::GmRole(int(role))});
}
