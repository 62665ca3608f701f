// The simulator definition of op_kernel/launch.h, the part shared by the kernels (launch_sim_<kernel>.cpp compile
// one kernel each, so a kernel change rebuilds one translation unit).
#include "launch_sim.h"

#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
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
thread_local std::optional<std::string> t_trace;
thread_local LaunchStats t_last;
// One launch at a time: the system workspace pointer below is process-wide, like the device's.
std::mutex g_launch_mutex;
uint8_t* g_sys_ws = nullptr;
uint64_t g_sys_ws_bytes = 0;

// A Chrome trace-event file (chrome://tracing, ui.perfetto.dev): a process per core, a track per thread x pipe.
void write_trace(const std::string& path, const Launch& launch) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw std::runtime_error("cannot write the trace to " + path);
  const double us = 1e6 / kModelClockHz;
  std::fprintf(f, "{\"displayTimeUnit\": \"ns\", \"traceEvents\": [\n");
  bool first = true;
  auto sep = [&] {
    std::fprintf(f, first ? "" : ",\n");
    first = false;
  };
  for (const auto& t : launch.threads()) {
    sep();
    std::fprintf(f, "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %u, \"args\": {\"name\": \"core %u\"}}",
                 t->core, t->core);
    for (uint32_t p = 0; p < kPipeCount; ++p) {
      sep();
      std::fprintf(
          f, "{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %u, \"tid\": %u, \"args\": {\"name\": \"%s %s\"}}",
          t->core, t->index * kPipeCount + p, t->describe().c_str(), pipe_name(Pipe(p)));
    }
    for (const TraceEvent& e : t->trace) {
      const char* file = std::strrchr(e.loc.file, '/');
      sep();
      std::fprintf(f,
                   "{\"name\": \"%s\", \"ph\": \"X\", \"pid\": %u, \"tid\": %u, \"ts\": %.4f, \"dur\": %.4f, "
                   "\"args\": {\"at\": \"%s:%d\", \"bytes\": %llu, \"macs\": %llu}}",
                   e.what, t->core, e.thread * kPipeCount + uint32_t(e.pipe), e.start * us, (e.end - e.start) * us,
                   file ? file + 1 : e.loc.file, e.loc.line, (unsigned long long)e.bytes, (unsigned long long)e.macs);
    }
  }
  std::fprintf(f, "\n]}\n");
  std::fclose(f);
}

}  // namespace

void run_kernel(KernelType type, uint32_t block_dim, uint8_t* workspace, const std::function<void()>& kernel) {
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  LaunchOptions options;
  options.dry_run = t_dry_run;
  options.seeded = t_seed.has_value();
  options.seed = t_seed.value_or(0);
  options.trace = t_trace.has_value();
  Launch launch(type, block_dim, options);
  for (const PendingBuffer& b : t_pending) launch.add_buffer(b.base, b.bytes, b.name, b.role);
  t_pending.clear();
  set_sys_workspace(workspace, kSimSysWorkspaceBytes);
  t_last = LaunchStats{block_dim, {}};
  launch.run(kernel);  // throws SimError on the first violated rule
  for (uint32_t core = 0; core < block_dim; ++core) {
    const CoreCounters& c = launch.counters()[core];
    CoreStats s{c.gm_read_bytes,
                c.gm_write_bytes,
                c.cube_macs,
                c.vector_elems,
                {c.vector_cycles[0], c.vector_cycles[1]},
                c.gm_workspace_bytes,
                c.l2_hit_bytes,
                c.l2_miss_bytes};
    s.cube_busy = launch.cube(core).busy();
    s.port_busy = launch.port(core).busy();
    t_last.per_core.push_back(s);
  }
  for (const auto& t : launch.threads()) {
    CoreStats& s = t_last.per_core[t->core];
    s.end_cycles = std::max(s.end_cycles, t->times.end());
    for (uint32_t p = 0; p < kPipeCount; ++p) {
      if (t->times.busy[p] > 0) s.pipe_busy.push_back({t->describe() + " " + pipe_name(Pipe(p)), t->times.busy[p]});
    }
  }
  if (t_trace) write_trace(*t_trace, launch);
}

void set_sys_workspace(uint8_t* base, uint64_t bytes) {
  g_sys_ws = base;
  g_sys_ws_bytes = bytes;
}
void set_dry_run(bool on) { t_dry_run = on; }
void set_schedule_seed(std::optional<uint64_t> seed) { t_seed = seed; }
void set_trace_path(std::optional<std::string> path) { t_trace = std::move(path); }
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
