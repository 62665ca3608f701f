// ascend_attn._sim: the Ascend C kernels run in the simulator, plus the host tiling for tests. Reached from Python
// through ascend_attn.sim (not through the dispatcher: the simulator is a verification executor).
#include <torch/extension.h>

#include <optional>
#include <stdexcept>
#include <vector>

#include "../common/attention_args.h"
#include "../common/flash_attention_launch.h"
#include "../common/paged_attention_launch.h"
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

py::dict stats_dict(const ascend_sim::LaunchStats& s) {
  py::list per_core;
  std::vector<ascend_sim::CoreWork> work;
  for (const ascend_sim::CoreStats& x : s.per_core) {
    py::dict d;
    d["gm_read_bytes"] = x.gm_read_bytes;
    d["gm_write_bytes"] = x.gm_write_bytes;
    d["cube_macs"] = x.cube_macs;
    d["vector_elems"] = x.vector_elems;
    d["vector_cycles"] = std::vector<uint64_t>{x.vector_cycles[0], x.vector_cycles[1]};  // per AIV
    d["gm_workspace_bytes"] = x.gm_workspace_bytes;  // included in the read/write bytes above
    per_core.append(d);
    work.push_back({x.gm_read_bytes + x.gm_write_bytes, x.cube_macs, std::max(x.vector_cycles[0], x.vector_cycles[1])});
  }
  const ascend_sim::ModelledTime m = ascend_sim::model_time(work);
  py::dict d;
  d["block_dim"] = s.block_dim;
  d["per_core"] = per_core;
  d["modelled_us"] = s.block_dim ? m.us : 0.0;
  d["modelled_core_us"] = m.core_us;
  d["modelled_bound"] = m.bound;
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
std::pair<ascend_attn::KernelLaunch, py::dict> simulate(bool dry_run, std::optional<uint64_t> seed, const char* what,
                                                        F launch) {
  ascend_sim::set_dry_run(dry_run);
  ascend_sim::set_schedule_seed(seed);
  ascend_attn::KernelLaunch r;
  try {
    r = launch();
  } catch (...) {
    ascend_sim::set_dry_run(false);
    ascend_sim::set_schedule_seed(std::nullopt);
    throw;
  }
  ascend_sim::set_dry_run(false);
  ascend_sim::set_schedule_seed(std::nullopt);
  TORCH_CHECK(dry_run || !r.error_flags.defined() || !r.error_flags.ne(0).any().item<bool>(), what,
              ": the kernel met an index outside the cache and skipped it");
  ascend_sim::LaunchStats none;
  py::dict stats = stats_dict(r.block_dim ? ascend_sim::last_launch_stats() : none);
  stats["kv_splits"] = r.kv_splits;
  return {r, stats};
}

py::tuple flash_attention_varlen(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k, int64_t max_seqlen_q,
                                 int64_t max_seqlen_k, std::optional<double> softmax_scale, bool causal,
                                 std::vector<int64_t> window_size, double softcap, bool return_lse, int64_t num_cores,
                                 bool dry_run, std::optional<uint64_t> schedule_seed) {
  return torch_errors_as_python([&] {
    TORCH_CHECK(q.device().is_cpu(), "q: the simulator runs on CPU tensors, got ", q.device());
    const ascend_attn::AttentionArgs a = ascend_attn::check_flash_attention_varlen_args(
        q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal, window_size, softcap,
        std::nullopt, return_lse);
    const ascend_attn::KernelDevice device = sim_device(num_cores);
    auto [r, stats] = simulate(dry_run, schedule_seed, "flash_attention",
                               [&] { return ascend_attn::flash_attention_varlen_launch(a, device); });
    return py::make_tuple(r.out, r.lse, stats);
  });
}

py::tuple paged_attention(const at::Tensor& q, const at::Tensor& key_cache, const at::Tensor& value_cache,
                          const at::Tensor& block_tables, const at::Tensor& context_lens,
                          const std::optional<at::Tensor>& cu_seqlens_q, std::optional<double> softmax_scale,
                          bool causal, std::vector<int64_t> window_size, double softcap, bool return_lse,
                          int64_t num_cores, bool dry_run, std::optional<uint64_t> schedule_seed) {
  return torch_errors_as_python([&] {
    TORCH_CHECK(q.device().is_cpu(), "q: the simulator runs on CPU tensors, got ", q.device());
    const ascend_attn::PagedArgs p =
        ascend_attn::check_paged_attention_args(q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q,
                                                softmax_scale, causal, window_size, softcap, std::nullopt, return_lse);
    const ascend_attn::KernelDevice device = sim_device(num_cores);
    auto [r, stats] = simulate(dry_run, schedule_seed, "block_tables",
                               [&] { return ascend_attn::paged_attention_launch(p, device); });
    return py::make_tuple(r.out, r.lse, stats);
  });
}

py::dict reshape_and_cache(const at::Tensor& key, const at::Tensor& value, at::Tensor key_cache, at::Tensor value_cache,
                           const at::Tensor& slot_mapping, int64_t num_cores, std::optional<uint64_t> schedule_seed) {
  return torch_errors_as_python([&] {
    TORCH_CHECK(key.device().is_cpu(), "key: the simulator runs on CPU tensors, got ", key.device());
    ascend_attn::check_reshape_and_cache_args(key, value, key_cache, value_cache, slot_mapping);
    TORCH_CHECK(key.scalar_type() == at::kHalf || key.scalar_type() == at::kBFloat16,
                "key: the Ascend C reshape_and_cache kernel takes float16 or bfloat16, got ", key.scalar_type());
    const ascend_attn::KernelDevice device = sim_device(num_cores);
    auto [r, stats] = simulate(false, schedule_seed, "slot_mapping", [&] {
      return ascend_attn::reshape_and_cache_launch(key, value, key_cache, value_cache, slot_mapping, device);
    });
    return stats;
  });
}

py::dict flash_attention_plan(int64_t dtype, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t head_dim_v,
                              std::vector<int32_t> cu_seqlens_q, std::vector<int32_t> cu_seqlens_k, int64_t window_left,
                              int64_t window_right, double softcap, int64_t num_cores) {
  ascend_attn::FlashAttentionProblem p;
  p.dtype = uint32_t(dtype);
  p.batch = uint32_t(cu_seqlens_q.size() - 1);
  p.num_heads = uint32_t(heads), p.num_kv_heads = uint32_t(kv_heads);
  p.head_dim = uint32_t(head_dim), p.head_dim_v = uint32_t(head_dim_v);
  p.window_left = int32_t(window_left), p.window_right = int32_t(window_right);
  p.softcap = float(softcap);
  p.cu_seqlens_q = cu_seqlens_q.data(), p.cu_seqlens_k = cu_seqlens_k.data();
  const ascend_attn::FlashAttentionPlan plan =
      ascend_attn::plan_flash_attention(p, uint32_t(num_cores), ascend_sim::kSimSysWorkspaceBytes);
  const FlashAttentionTiling& t = plan.tiling;
  py::dict d;
  d["block_dim"] = plan.block_dim;
  d["workspace_bytes"] = plan.workspace_bytes;
  d["task_weights"] = plan.task_weights;
  d["core_task_begin"] = std::vector<uint32_t>(t.core_task_begin, t.core_task_begin + t.used_cores + 1);
  d["block_cols"] = t.block_cols;
  d["chunk_rows"] = t.chunk_rows;
  d["ws_per_aiv"] = t.ws_per_aiv;
  d["ub_bytes"] =
      ascend_attn_kernel::SoftmaxUbLayout(t.block_cols, t.head_dim_v, t.chunk_rows, 2, t.softcap > 0).total();
  d["ub_budget"] = ascend_attn_kernel::kAivUbBudget;
  d["mm1"] = cube_tiling_dict(t.mm1);
  d["mm2"] = cube_tiling_dict(t.mm2);
  return d;
}

py::dict paged_attention_plan(int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t head_dim_v, int64_t num_blocks,
                              int64_t block_size, int64_t max_blocks_per_seq, std::vector<int32_t> context_lens,
                              std::vector<int32_t> cu_seqlens_q, int64_t window_left, int64_t window_right,
                              int64_t num_cores) {
  ascend_attn::PagedAttentionProblem p;
  p.num_seqs = uint32_t(context_lens.size());
  p.num_heads = uint32_t(heads), p.num_kv_heads = uint32_t(kv_heads);
  p.head_dim = uint32_t(head_dim), p.head_dim_v = uint32_t(head_dim_v);
  p.num_blocks = uint32_t(num_blocks), p.block_size = uint32_t(block_size);
  p.max_blocks_per_seq = uint32_t(max_blocks_per_seq);
  p.window_left = int32_t(window_left), p.window_right = int32_t(window_right);
  p.context_lens = context_lens.data(), p.cu_seqlens_q = cu_seqlens_q.data();
  const ascend_attn::PagedAttentionPlan plan =
      ascend_attn::plan_paged_attention(p, uint32_t(num_cores), ascend_sim::kSimSysWorkspaceBytes);
  const PagedAttentionTiling& t = plan.tiling;
  py::dict d;
  d["block_dim"] = plan.block_dim;
  d["workspace_bytes"] = plan.workspace_bytes;
  d["item_weights"] = plan.item_weights;
  d["worker_item_begin"] = std::vector<uint32_t>(t.worker_item_begin, t.worker_item_begin + t.used_workers + 1);
  d["split_keys"] = t.split_keys;
  d["kv_splits"] = t.max_splits;
  d["tokens_per_item"] = t.tokens_per_item;
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
  m.def("paged_attention", &paged_attention);
  m.def("paged_attention_plan", &paged_attention_plan);
  m.def("reshape_and_cache", &reshape_and_cache);
  m.def("partition_contiguous", &ascend_attn::partition_contiguous);
  m.attr("model_launch_overhead_us") = ascend_sim::kModelLaunchOverheadUs;
  m.attr("model_cube_tflops_per_core") = 2 * ascend_sim::kModelCubeMacsPerCycle * ascend_sim::kModelClockHz / 1e12;
  m.attr("model_gm_bytes_per_second") = ascend_sim::kModelGmBytesPerSecond;
}
