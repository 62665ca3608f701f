// The simulator definition of op_kernel/launch.h: the kernel sources compiled for the CPU, run on one AIC and two
// AIV threads per core.
#include "launch_sim.h"

#include <mutex>
#include <string>
#include <vector>

#include "../../op_kernel/launch.h"
#include "kernel_operator.h"
#include "sim_runtime.h"

// The kernels, compiled against the simulator's headers.
#include "../../op_kernel/flash_attention/flash_attention.cpp"
#include "../../op_kernel/paged_attention/paged_attention.cpp"
#include "../../op_kernel/reshape_and_cache/reshape_and_cache.cpp"

namespace ascend_sim {

namespace {
thread_local std::vector<GmBuffer> t_pending;
thread_local bool t_dry_run = false;
thread_local LaunchStats t_last;
// One launch at a time: the system workspace pointer below is process-wide, like the device's.
std::mutex g_launch_mutex;
uint8_t* g_sys_ws = nullptr;
uint64_t g_sys_ws_bytes = 0;

void run_kernel(KernelType type, uint32_t block_dim, uint8_t* workspace, const std::function<void()>& kernel) {
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  Launch launch(type, block_dim, std::move(t_pending), t_dry_run);
  t_pending.clear();
  set_sys_workspace(workspace, kSimSysWorkspaceBytes);
  t_last = LaunchStats{block_dim, {}};
  launch.run(kernel);  // throws SimError on the first violated rule
  for (const CoreCounters& c : launch.counters()) {
    t_last.per_core.push_back(
        {c.gm_read_bytes, c.gm_write_bytes, c.cube_macs, c.vector_elems, c.vector_cycles, c.gm_workspace_bytes});
  }
}
}  // namespace

void set_sys_workspace(uint8_t* base, uint64_t bytes) {
  g_sys_ws = base;
  g_sys_ws_bytes = bytes;
}
void set_dry_run(bool on) { t_dry_run = on; }
const LaunchStats& last_launch_stats() { return t_last; }

}  // namespace ascend_sim

namespace AscendC {
GM_ADDR GetSysWorkSpacePtr() { return ascend_sim::g_sys_ws; }
GM_ADDR GetUserWorkspace(GM_ADDR workspace) { return workspace + ascend_sim::g_sys_ws_bytes; }
}  // namespace AscendC

void launch_note_buffer(const void* base, uint64_t bytes, const char* name) {
  ascend_sim::t_pending.push_back({static_cast<const uint8_t*>(base), bytes, name});
}

void launch_flash_attention(uint32_t block_dim, void*, uint8_t* q, uint8_t* k, uint8_t* v, uint8_t* cu_seqlens_q,
                            uint8_t* cu_seqlens_k, uint8_t* out, uint8_t* lse, uint8_t* workspace, uint8_t* tiling) {
  ascend_sim::run_kernel(ascend_sim::KernelType::kMixAic1To2, block_dim, workspace,
                         [&] { flash_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse, workspace, tiling); });
}

void launch_paged_attention(uint32_t block_dim, void*, uint8_t* q, uint8_t* key_cache, uint8_t* value_cache,
                            uint8_t* block_tables, uint8_t* context_lens, uint8_t* cu_seqlens_q, uint8_t* out,
                            uint8_t* lse, uint8_t* workspace, uint8_t* tiling) {
  ascend_sim::run_kernel(ascend_sim::KernelType::kMixAic1To2, block_dim, workspace, [&] {
    paged_attention(q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q, out, lse, workspace, tiling);
  });
}

void launch_reshape_and_cache(uint32_t block_dim, void*, uint8_t* key, uint8_t* value, uint8_t* key_cache,
                              uint8_t* value_cache, uint8_t* slot_mapping, uint8_t* workspace, uint8_t* tiling) {
  ascend_sim::run_kernel(ascend_sim::KernelType::kAivOnly, block_dim, workspace, [&] {
    reshape_and_cache(key, value, key_cache, value_cache, slot_mapping, workspace, tiling);
  });
}
