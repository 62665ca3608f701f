// ascend_attn._sim: the Ascend C kernels run in the simulator, plus the host tiling for tests. Reached from Python
// through ascend_attn.sim (not through the dispatcher: the simulator is a verification executor).
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "../../op_kernel/flash_attention_grad/grad_ub.h"
#include "../common/attention_args.h"
#include "../common/attention_grad_args.h"
#include "../common/flash_attention_grad_launch.h"
#include "../common/flash_attention_launch.h"
#include "../common/paged_attention_launch.h"
#include "../tiling/flash_attention_grad_tiling.h"
#include "../tiling/flash_attention_tiling.h"
#include "../tiling/paged_attention_tiling.h"
#include "../tiling/tiling_util.h"
#include "launch_sim.h"
#include "sim_runtime.h"

namespace py = pybind11;

namespace {

template <typename F>
auto torch_errors_as_python(F f) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::Error& e) {
    throw std::invalid_argument(e.what_without_backtrace());
  }
}

// Counters and modelled times of a launch. The timeline (modelled_us) is the model of record; the roofline
// (roofline_us: the busiest of each core's cube, AIVs' vector and GM/L2 port, plus the launch) is its lower bound.
py::dict stats_dict(const ascend_sim::LaunchStats& s) {
  using namespace ascend_sim;
  const double us = 1e6 / kModelClockHz;
  py::list per_core;
  double end = 0.0, roofline = 0.0, cube = 0.0;
  size_t slowest = 0;
  for (size_t core = 0; core < s.per_core.size(); ++core) {
    const CoreStats& x = s.per_core[core];
    const double cube_cycles = double(x.cube_macs) / kModelCubeMacsPerCycle;
    const double vec = double(std::max(x.vector_cycles[0], x.vector_cycles[1]));
    py::dict d;
    d["gm_read_bytes"] = x.gm_read_bytes;
    d["gm_write_bytes"] = x.gm_write_bytes;
    d["cube_macs"] = x.cube_macs;
    d["vector_elems"] = x.vector_elems;
    d["vector_cycles"] = std::vector<uint64_t>{x.vector_cycles[0], x.vector_cycles[1]};  // per AIV
    d["gm_workspace_bytes"] = x.gm_workspace_bytes;  // included in the read/write bytes above
    d["l2_hit_bytes"] = x.l2_hit_bytes;              // DMA and cube traffic that found its bytes in L2
    d["l2_miss_bytes"] = x.l2_miss_bytes;
    d["modelled_us"] = x.end_cycles * us;
    d["roofline_us"] = std::max({cube_cycles, vec, x.port_busy}) * us;
    py::dict busy;
    for (const auto& [name, cycles] : x.pipe_busy) busy[py::str(name)] = cycles * us;
    busy["cube"] = x.cube_busy * us;
    busy["gm/L2 port"] = x.port_busy * us;
    d["busy_us"] = busy;
    per_core.append(d);
    if (x.end_cycles > end) end = x.end_cycles, slowest = core;
    roofline = std::max({roofline, cube_cycles, vec, x.port_busy});
    cube += cube_cycles;
  }
  py::dict d;
  d["block_dim"] = s.block_dim;
  d["per_core"] = per_core;
  const bool ran = s.block_dim > 0;
  d["modelled_us"] = ran ? end * us + kModelLaunchOverheadUs : 0.0;
  d["roofline_us"] = ran ? roofline * us + kModelLaunchOverheadUs : 0.0;
  // The cube's share of the kernel's time on the cores it ran (the launch overhead aside).
  d["cube_utilisation"] = ran && end > 0 ? cube / (end * s.block_dim) : 0.0;
  // The busiest unit of the core that finished last.
  std::string critical;
  if (ran) {
    double most = -1.0;
    const CoreStats& x = s.per_core[slowest];
    std::vector<std::pair<std::string, double>> units = x.pipe_busy;
    units.push_back({"cube", x.cube_busy});
    units.push_back({"gm/L2 port", x.port_busy});
    for (const auto& [name, cycles] : units) {
      if (cycles > most) most = cycles, critical = name;
    }
  }
  d["critical"] = critical;
  return d;
}

// The TCubeTiling fields the documented constraints speak of (tests/test_tiling.py checks the hand fill against them).
py::dict cube_tiling_dict(const TCubeTiling& t) {
  py::dict d;
  d["usedCoreNum"] = t.usedCoreNum, d["M"] = t.M, d["N"] = t.N, d["Ka"] = t.Ka, d["Kb"] = t.Kb;
  d["singleCoreM"] = t.singleCoreM, d["singleCoreN"] = t.singleCoreN, d["singleCoreK"] = t.singleCoreK;
  d["baseM"] = t.baseM, d["baseN"] = t.baseN, d["baseK"] = t.baseK;
  d["depthA1"] = t.depthA1, d["depthB1"] = t.depthB1;
  d["stepM"] = t.stepM, d["stepN"] = t.stepN, d["stepKa"] = t.stepKa, d["stepKb"] = t.stepKb;
  d["isBias"] = t.isBias, d["iterateOrder"] = t.iterateOrder;
  d["dbL0A"] = t.dbL0A, d["dbL0B"] = t.dbL0B, d["dbL0C"] = t.dbL0C;
  return d;
}

// A size argument of the tiling bindings, which hold it in 32 bits.
uint32_t u32(int64_t value, const char* what) {
  if (value < 0 || value > std::numeric_limits<int32_t>::max()) {
    throw std::invalid_argument(std::string(what) + " must be in [0, 2^31 - 1], got " + std::to_string(value));
  }
  return uint32_t(value);
}

ascend_attn::KernelDevice sim_device(int64_t num_cores) {
  TORCH_CHECK(num_cores >= 1, "num_cores must be >= 1, got ", num_cores);
  TORCH_CHECK(num_cores <= 64, "num_cores must be in [1, 64], got ", num_cores);  // the kernels' tiling limit
  ascend_attn::KernelDevice device;
  device.core_num = uint32_t(num_cores);
  device.sys_workspace_bytes = ascend_sim::kSimSysWorkspaceBytes;
  device.enqueue = [](const std::function<void()>& launch) { launch(); };
  return device;
}

// Runs a host flow in the simulator (dry or not, free-running or serialized by a seed) and returns its launch with
// the counters of its kernel.
template <typename F>
auto simulate(bool dry_run, std::optional<uint64_t> seed, std::optional<std::string> trace, const char* what, F launch)
    -> std::pair<decltype(launch()), py::dict> {
  using Result = decltype(launch());
  ascend_sim::set_dry_run(dry_run);
  ascend_sim::set_schedule_seed(seed);
  ascend_sim::set_trace_path(std::move(trace));
  auto reset = [] {
    ascend_sim::set_dry_run(false);
    ascend_sim::set_schedule_seed(std::nullopt);
    ascend_sim::set_trace_path(std::nullopt);
  };
  Result r;
  try {
    r = launch();
  } catch (...) {
    reset();
    throw;
  }
  reset();
  ascend_sim::LaunchStats none;
  py::dict stats = stats_dict(r.block_dim ? ascend_sim::last_launch_stats() : none);
  if constexpr (std::is_same_v<Result, ascend_attn::KernelLaunch>) {
    TORCH_CHECK(dry_run || !r.error_flags.defined() || !r.error_flags.ne(0).any().template item<bool>(), what,
                ": the kernel met an index outside the cache and skipped it");
    stats["kv_splits"] = r.kv_splits;
    stats["heads_per_item"] = r.heads_per_item;
  }
  return {r, stats};
}

py::tuple flash_attention_varlen(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k, int64_t max_seqlen_q,
                                 int64_t max_seqlen_k, std::optional<double> softmax_scale, bool causal,
                                 std::vector<int64_t> window_size, double softcap, bool return_lse, int64_t num_cores,
                                 bool dry_run, std::optional<uint64_t> schedule_seed,
                                 std::optional<std::string> trace) {
  return torch_errors_as_python([&] {
    TORCH_CHECK(q.device().is_cpu(), "q: the simulator runs on CPU tensors, got ", q.device());
    const ascend_attn::AttentionArgs a = ascend_attn::check_flash_attention_varlen_args(
        q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal, window_size, softcap,
        std::nullopt, return_lse);
    const ascend_attn::KernelDevice device = sim_device(num_cores);
    auto [r, stats] = simulate(dry_run, schedule_seed, trace, "flash_attention",
                               [&] { return ascend_attn::flash_attention_varlen_launch(a, device); });
    return py::make_tuple(r.out, r.lse, stats);
  });
}

py::tuple flash_attention_varlen_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
    const at::Tensor& lse, const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k, int64_t max_seqlen_q,
    int64_t max_seqlen_k, std::optional<double> softmax_scale, bool causal, std::vector<int64_t> window_size,
    double softcap, const std::optional<at::Tensor>& alibi_slopes, bool deterministic, int64_t num_cores, bool dry_run,
    std::optional<uint64_t> schedule_seed, std::optional<std::string> trace) {
  return torch_errors_as_python([&] {
    TORCH_CHECK(q.device().is_cpu(), "q: the simulator runs on CPU tensors, got ", q.device());
    const ascend_attn::AttentionGradArgs g = ascend_attn::check_flash_attention_varlen_backward_args(
        dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal,
        window_size, softcap, alibi_slopes, deterministic);  // the launch rejects alibi_slopes, as on NPU
    const ascend_attn::KernelDevice device = sim_device(num_cores);
    auto [r, stats] = simulate(dry_run, schedule_seed, trace, "flash_attention_backward",
                               [&] { return ascend_attn::flash_attention_varlen_backward_launch(g, device); });
    return py::make_tuple(r.dq, r.dk, r.dv, stats);
  });
}

py::tuple paged_attention(const at::Tensor& q, const at::Tensor& key_cache, const at::Tensor& value_cache,
                          const at::Tensor& block_tables, const at::Tensor& context_lens,
                          const std::optional<at::Tensor>& cu_seqlens_q, std::optional<double> softmax_scale,
                          bool causal, std::vector<int64_t> window_size, double softcap, bool return_lse,
                          int64_t num_cores, bool dry_run, std::optional<uint64_t> schedule_seed,
                          std::optional<std::string> trace) {
  return torch_errors_as_python([&] {
    TORCH_CHECK(q.device().is_cpu(), "q: the simulator runs on CPU tensors, got ", q.device());
    const ascend_attn::PagedArgs p =
        ascend_attn::check_paged_attention_args(q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q,
                                                softmax_scale, causal, window_size, softcap, std::nullopt, return_lse);
    const ascend_attn::KernelDevice device = sim_device(num_cores);
    auto [r, stats] = simulate(dry_run, schedule_seed, trace, "block_tables",
                               [&] { return ascend_attn::paged_attention_launch(p, device); });
    return py::make_tuple(r.out, r.lse, stats);
  });
}

py::dict reshape_and_cache(const at::Tensor& key, const at::Tensor& value, at::Tensor key_cache, at::Tensor value_cache,
                           const at::Tensor& slot_mapping, int64_t num_cores, std::optional<uint64_t> schedule_seed,
                           std::optional<std::string> trace) {
  return torch_errors_as_python([&] {
    TORCH_CHECK(key.device().is_cpu(), "key: the simulator runs on CPU tensors, got ", key.device());
    ascend_attn::check_reshape_and_cache_args(key, value, key_cache, value_cache, slot_mapping);
    TORCH_CHECK(key.scalar_type() == at::kHalf || key.scalar_type() == at::kBFloat16,
                "key: the Ascend C reshape_and_cache kernel takes float16 or bfloat16, got ", key.scalar_type());
    const ascend_attn::KernelDevice device = sim_device(num_cores);
    auto [r, stats] = simulate(false, schedule_seed, trace, "slot_mapping", [&] {
      return ascend_attn::reshape_and_cache_launch(key, value, key_cache, value_cache, slot_mapping, device);
    });
    return stats;
  });
}

// The fields the forward and backward tiling problems share, from the plan bindings' arguments (sizes checked before
// narrowing, windows clamped like the host flows'). The vectors must outlive the problem: it points into them.
template <class Problem>
Problem plan_problem(int64_t dtype, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t head_dim_v,
                     const std::vector<int32_t>& cu_seqlens_q, const std::vector<int32_t>& cu_seqlens_k,
                     int64_t window_left, int64_t window_right, double softcap) {
  if (cu_seqlens_q.empty() || cu_seqlens_q.size() != cu_seqlens_k.size()) {
    throw std::invalid_argument("cu_seqlens_q and cu_seqlens_k must have batch + 1 entries each");
  }
  Problem p;
  p.dtype = u32(dtype, "dtype");
  p.batch = uint32_t(cu_seqlens_q.size() - 1);
  p.num_heads = u32(heads, "heads"), p.num_kv_heads = u32(kv_heads, "kv_heads");
  p.head_dim = u32(head_dim, "head_dim"), p.head_dim_v = u32(head_dim_v, "head_dim_v");
  p.window_left = int32_t(std::clamp<int64_t>(window_left, -1, std::numeric_limits<int32_t>::max()));
  p.window_right = int32_t(std::clamp<int64_t>(window_right, -1, std::numeric_limits<int32_t>::max()));
  p.softcap = float(softcap);
  p.cu_seqlens_q = cu_seqlens_q.data(), p.cu_seqlens_k = cu_seqlens_k.data();
  return p;
}

py::dict flash_attention_plan(int64_t dtype, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t head_dim_v,
                              std::vector<int32_t> cu_seqlens_q, std::vector<int32_t> cu_seqlens_k, int64_t window_left,
                              int64_t window_right, double softcap, int64_t num_cores) {
  const auto p = plan_problem<ascend_attn::FlashAttentionProblem>(
      dtype, heads, kv_heads, head_dim, head_dim_v, cu_seqlens_q, cu_seqlens_k, window_left, window_right, softcap);
  const ascend_attn::FlashAttentionPlan plan =
      ascend_attn::plan_flash_attention(p, u32(num_cores, "num_cores"), ascend_sim::kSimSysWorkspaceBytes);
  const FlashAttentionTiling& t = plan.tiling;
  py::dict d;
  d["block_dim"] = plan.block_dim;
  d["workspace_bytes"] = plan.workspace_bytes;
  d["task_weights"] = plan.task_weights;
  d["core_task_begin"] = std::vector<uint32_t>(t.core_task_begin, t.core_task_begin + t.used_cores + 1);
  d["block_cols"] = t.block_cols;
  d["chunk_rows"] = t.chunk_rows;
  d["rows_per_aiv"] = t.rows_per_aiv;
  d["ws_per_aiv"] = t.ws_per_aiv;
  d["ub_bytes"] =
      ascend_attn_kernel::SoftmaxUbLayout(t.block_cols, t.head_dim_v, t.chunk_rows, 2, t.rows_per_aiv).total();
  d["ub_budget"] = ascend_attn_kernel::kAivUbBudget;
  d["mm1"] = cube_tiling_dict(t.mm1);
  d["mm2"] = cube_tiling_dict(t.mm2);
  return d;
}

py::dict flash_attention_grad_plan(int64_t dtype, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t head_dim_v,
                                   std::vector<int32_t> cu_seqlens_q, std::vector<int32_t> cu_seqlens_k,
                                   int64_t window_left, int64_t window_right, double softcap, bool deterministic,
                                   int64_t num_cores) {
  auto p = plan_problem<ascend_attn::FlashAttentionGradProblem>(
      dtype, heads, kv_heads, head_dim, head_dim_v, cu_seqlens_q, cu_seqlens_k, window_left, window_right, softcap);
  p.deterministic = deterministic;
  const ascend_attn::FlashAttentionGradPlan plan =
      ascend_attn::plan_flash_attention_grad(p, u32(num_cores, "num_cores"), ascend_sim::kSimSysWorkspaceBytes);
  const FlashAttentionGradTiling& t = plan.tiling;
  py::dict d;
  d["block_dim"] = plan.block_dim;
  d["workspace_bytes"] = plan.workspace_bytes;
  d["task_weights"] = plan.task_weights;
  d["worker_task_begin"] = std::vector<uint32_t>(t.worker_task_begin, t.worker_task_begin + 2 * plan.block_dim + 1);
  d["used_workers"] = t.used_workers;
  d["num_kv_tasks"] = t.num_kv_tasks;
  d["num_q_tasks"] = t.num_q_tasks;
  d["kv_heads_per_group"] = t.kv_heads_per_group;
  d["q_heads_per_group"] = t.q_heads_per_group;
  d["block_keys"] = t.block_keys;
  d["block_rows"] = t.block_rows;
  d["chunk_rows"] = t.chunk_rows;
  d["grad_scale"] = t.grad_scale;
  d["ws_worker_offset"] = t.ws_worker_offset;
  d["ws_per_worker"] = t.ws_per_worker;
  d["ws_p_offset"] = t.ws_p_offset;
  d["ws_ds_offset"] = t.ws_ds_offset;
  const uint32_t width = std::max({t.block_keys, t.head_dim, t.head_dim_v});
  d["ub_bytes"] = plan.block_dim ? ascend_attn_kernel::GradUbLayout(width, t.chunk_rows, t.block_rows).total() : 0;
  d["ub_budget"] = ascend_attn_kernel::kAivUbBudget;
  d["mm_s"] = cube_tiling_dict(t.mm_s);
  d["mm_t"] = cube_tiling_dict(t.mm_t);
  d["mm_dq"] = cube_tiling_dict(t.mm_dq);
  return d;
}

py::dict paged_attention_plan(int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t head_dim_v, int64_t num_blocks,
                              int64_t block_size, int64_t max_blocks_per_seq, std::vector<int32_t> context_lens,
                              std::vector<int32_t> cu_seqlens_q, int64_t window_left, int64_t window_right,
                              int64_t num_cores) {
  if (cu_seqlens_q.size() != context_lens.size() + 1) {
    throw std::invalid_argument("cu_seqlens_q must have num_seqs + 1 entries");
  }
  ascend_attn::PagedAttentionProblem p;
  p.num_seqs = uint32_t(context_lens.size());
  p.num_heads = u32(heads, "heads"), p.num_kv_heads = u32(kv_heads, "kv_heads");
  p.head_dim = u32(head_dim, "head_dim"), p.head_dim_v = u32(head_dim_v, "head_dim_v");
  p.num_blocks = u32(num_blocks, "num_blocks"), p.block_size = u32(block_size, "block_size");
  p.max_blocks_per_seq = u32(max_blocks_per_seq, "max_blocks_per_seq");
  p.window_left = int32_t(std::clamp<int64_t>(window_left, -1, std::numeric_limits<int32_t>::max())),
  p.window_right = int32_t(std::clamp<int64_t>(window_right, -1, std::numeric_limits<int32_t>::max()));
  p.context_lens = context_lens.data(), p.cu_seqlens_q = cu_seqlens_q.data();
  const ascend_attn::PagedAttentionPlan plan =
      ascend_attn::plan_paged_attention(p, u32(num_cores, "num_cores"), ascend_sim::kSimSysWorkspaceBytes);
  const PagedAttentionTiling& t = plan.tiling;
  py::dict d;
  d["block_dim"] = plan.block_dim;
  d["workspace_bytes"] = plan.workspace_bytes;
  d["item_weights"] = plan.item_weights;
  d["worker_item_begin"] = std::vector<uint32_t>(t.worker_item_begin, t.worker_item_begin + t.used_workers + 1);
  d["split_keys"] = t.split_keys;
  d["kv_splits"] = t.max_splits;
  d["heads_per_item"] = t.heads_per_item;
  d["tokens_per_item"] = t.tokens_per_item;
  d["query_piece_rows"] = t.query_piece_rows;
  d["chunk_rows"] = t.chunk_rows;
  d["block_cols"] = t.block_cols;
  d["ws_per_aiv"] = t.ws_per_aiv;
  d["mm1"] = cube_tiling_dict(t.mm1);
  d["mm2"] = cube_tiling_dict(t.mm2);
  return d;
}

}  // namespace

PYBIND11_MODULE(_sim, m) {
  m.doc() = "Ascend C kernels in the CPU simulator (see ascend_attn.sim)";
  m.def("flash_attention_varlen", &flash_attention_varlen);
  m.def("flash_attention_plan", &flash_attention_plan);
  m.def("flash_attention_varlen_backward", &flash_attention_varlen_backward);
  m.def("flash_attention_grad_plan", &flash_attention_grad_plan);
  m.def("paged_attention", &paged_attention);
  m.def("paged_attention_plan", &paged_attention_plan);
  m.def("reshape_and_cache", &reshape_and_cache);
  m.def("partition_contiguous", &ascend_attn::partition_contiguous);
  m.attr("model_launch_overhead_us") = ascend_sim::kModelLaunchOverheadUs;
  m.attr("model_cube_tflops_per_core") = 2 * ascend_sim::kModelCubeMacsPerCycle * ascend_sim::kModelClockHz / 1e12;
  m.attr("model_gm_bytes_per_second") = ascend_sim::kModelGmBytesPerSecond;
  m.attr("model_l2_bytes_per_second") = ascend_sim::kModelL2BytesPerSecond;
  m.attr("model_cores") = ascend_sim::kModelCores;
  // The whole cost table (csrc/sim/sim_config.h), for the calibration tests and the model scripts.
  py::dict model;
  model["clock_hz"] = ascend_sim::kModelClockHz;
  model["cube_macs_per_cycle"] = ascend_sim::kModelCubeMacsPerCycle;
  model["vector_bytes_per_cycle"] = ascend_sim::kModelVectorBytesPerCycle;
  model["vector_startup_cycles"] = ascend_sim::kModelVectorStartupCycles;
  // Vector rates, elements per cycle of 16-bit / 32-bit types: (b16, b32).
  auto rate = [](ascend_sim::VectorRate r) { return py::make_tuple(r.b16, r.b32); };
  model["vector_rate_basic"] = rate(ascend_sim::kModelRateBasic);
  model["vector_rate_exp_ln_div"] = rate(ascend_sim::kModelRateExpLnDiv);
  model["vector_rate_reduce_repeat"] = rate(ascend_sim::kModelRateReduceRepeat);
  model["vector_rate_reduce_data_block"] = rate(ascend_sim::kModelRateReduceDataBlock);
  model["soft_reduce_cycles_per_repeat"] = ascend_sim::kModelSoftReduceCyclesPerRepeat;
  model["issue_cycles"] = ascend_sim::kModelIssueCycles;
  model["gm_bytes_per_second"] = ascend_sim::kModelGmBytesPerSecond;
  model["l2_bytes_per_second"] = ascend_sim::kModelL2BytesPerSecond;
  model["l2_bytes"] = ascend_sim::kModelL2Bytes;
  model["gm_latency_cycles"] = ascend_sim::kModelGmLatencyCycles;
  model["l2_latency_cycles"] = ascend_sim::kModelL2LatencyCycles;
  model["matmul_call_cycles"] = ascend_sim::kModelMatmulCallCycles;
  model["matmul_message_cycles"] = ascend_sim::kModelMatmulMessageCycles;
  model["cube_fill_cycles"] = ascend_sim::kModelCubeFillCycles;
  model["l0a_load_bytes_per_cycle"] = ascend_sim::kModelL0aLoadBytesPerCycle;
  model["l0b_load_bytes_per_cycle"] = ascend_sim::kModelL0bLoadBytesPerCycle;
  model["launch_overhead_us"] = ascend_sim::kModelLaunchOverheadUs;
  model["cores"] = ascend_sim::kModelCores;
  m.attr("model") = model;
}
