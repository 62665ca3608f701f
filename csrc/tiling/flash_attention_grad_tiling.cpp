#include "flash_attention_grad_tiling.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "../../op_kernel/flash_attention_grad/grad_ub.h"
#include "../common/visible_keys.h"
#include "matmul_tiling.h"
#include "tiling_util.h"

namespace ascend_attn {

namespace {

// Bk and Bq: 256 keys a kv task owns and 256 query rows a step takes (shorter when every sequence is shorter). The
// cube's GM traffic per multiply-add falls as both grow: Q and dO are read, and dQ added to, once per Bk keys; K and
// V read once per Bq rows, and the fp32 dK / dV accumulators rewritten once per 2 Bq rows (the kernel pairs steps),
// while S, dP, P and dS cost the same per (query, key) pair. At 128 x 128 the timeline model finds the cores' GM/L2
// port the bound; 256 x 256 cuts the bytes per multiply-add by about a fifth, while the slots, the UB chunks and the
// granularity of the causal balance grow with them (the UB still holds 16-row chunks at head_dim 256). 512 rows lose:
// 48 AIVs' slots then crowd Q, dO, K and V out of the L2 at S = 8192.
constexpr uint32_t kMaxBlockKeys = 256;
constexpr uint32_t kMaxBlockRows = 256;
// Matmul requests of one step: S, dP, (default mode) dQ and one of dV, dK on a kv task (a pair of steps shares one
// dV and one dK request); S, dP and dQ on a dQ task. Task weights count them, plus one for the task's final store.
constexpr uint32_t kKvStepRequests = 4, kKvStepRequestsDeterministic = 3, kQStepRequests = 3;
// Every worker gets at least this many tasks' worth of work from the largest task, so the contiguous partition's
// maximum load stays within 1 / kTasksPerWorker of the mean (see step 5).
constexpr uint64_t kTasksPerWorker = 8;
// Rows of the row passes (D, zeroing and casting dQ) per AIV below which fewer cores are launched.
constexpr uint64_t kRowsPerAiv = 1024;

uint32_t round16(int64_t n) { return uint32_t((n + 15) / 16 * 16); }

// Tasks of one pass: `units` heads, each with the weight of every (batch, tile) in `tile_weights`, grouped
// `per_group` heads to a task, in (batch, group, tile) order.
struct PassTasks {
  uint32_t per_group = 1;
  std::vector<uint32_t> weights;
};

// Step 5: the most heads per task for which the largest task is at most 1 / kTasksPerWorker of one worker's mean
// share. Heads of a group are done one after another by every AIV holding a run of the group's tiles, so the bigger
// the groups, the fewer heads' Q, dO and dQ (or K and V) are live in L2 at once.
PassTasks group_heads(uint32_t units, const std::vector<std::vector<uint32_t>>& tile_weights, uint32_t workers) {
  uint64_t total = 0, largest = 1;
  for (const auto& batch : tile_weights) {
    for (uint32_t w : batch) total += w, largest = std::max<uint64_t>(largest, w);
  }
  PassTasks p;
  const uint64_t fit = uint64_t(units) * total / (largest * kTasksPerWorker * workers);
  p.per_group = uint32_t(std::clamp<uint64_t>(fit, 1, units));
  const uint32_t groups = (units + p.per_group - 1) / p.per_group;
  for (const auto& batch : tile_weights) {
    for (uint32_t g = 0; g < groups; ++g) {
      const uint32_t heads = std::min(units, (g + 1) * p.per_group) - g * p.per_group;
      for (uint32_t w : batch) p.weights.push_back(heads * w);
    }
  }
  return p;
}

}  // namespace

FlashAttentionGradPlan plan_flash_attention_grad(const FlashAttentionGradProblem& p, uint32_t core_num,
                                                 uint64_t sys_workspace_bytes) {
  // 1. Validate what this kernel supports (the op-level checks ran before).
  require(p.dtype == kFlashFp16 || p.dtype == kFlashBf16,
          "q: the Ascend C flash_attention_backward kernel takes fp16 or bf16");
  require_multiple_of_16(p.head_dim, "q: head_dim");
  require_multiple_of_16(p.head_dim_v, "v: head_dim_v");
  require(p.num_kv_heads > 0 && p.num_heads % p.num_kv_heads == 0, "k: kv heads must divide heads");
  require(core_num >= 1 && core_num <= kGradMaxCores,
          "num_cores must be in [1, " + std::to_string(kGradMaxCores) + "], got " + std::to_string(core_num));
  const uint64_t total_q = uint64_t(p.cu_seqlens_q[p.batch]), total_k = uint64_t(p.cu_seqlens_k[p.batch]);
  const uint64_t rows = total_q * p.num_heads;  // (query, head) rows of the row passes
  require(rows <= std::numeric_limits<uint32_t>::max(),
          "q: total_q * heads must be below 2^32 for the Ascend C flash_attention_backward kernel, got " +
              std::to_string(rows));

  FlashAttentionGradPlan plan;
  FlashAttentionGradTiling& t = plan.tiling;
  t = FlashAttentionGradTiling{};
  t.dtype = p.dtype;
  t.batch = p.batch, t.num_heads = p.num_heads, t.num_kv_heads = p.num_kv_heads;
  t.head_dim = p.head_dim, t.head_dim_v = p.head_dim_v;
  t.total_q = uint32_t(total_q), t.total_k = uint32_t(total_k);
  t.scale = p.scale, t.softcap = p.softcap;
  // dQ and dK accumulate dS K and dS^T Q with dS taken with respect to the scaled scores; the kernel's dS also lacks
  // the softcap derivative's factor 4 (grad_vector.h), so both come back here.
  t.grad_scale = p.softcap > 0.0f ? 4.0f * p.scale : p.scale;
  t.window_left = p.window_left, t.window_right = p.window_right;
  t.deterministic = p.deterministic ? 1 : 0;
  if (total_q == 0 || total_k == 0) return plan;  // nothing to launch: every gradient is 0

  // 2. Tiles: Bk keys, Bq query rows (multiples of 16, shorter when every sequence is).
  int64_t max_q = 0, max_k = 0;
  for (uint32_t b = 0; b < p.batch; ++b) {
    max_q = std::max<int64_t>(max_q, p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b]);
    max_k = std::max<int64_t>(max_k, p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b]);
  }
  t.block_keys = std::min(kMaxBlockKeys, round16(max_k));
  t.block_rows = std::min(kMaxBlockRows, round16(max_q));

  // 3. Rows per UB chunk: the most (up to 64) that fit the AIV's UB.
  const uint32_t width = std::max({t.block_keys, t.head_dim, t.head_dim_v});
  for (uint32_t chunk = 64; chunk >= 1 && t.chunk_rows == 0; chunk /= 2) {
    if (ascend_attn_kernel::GradUbLayout(width, chunk, t.block_rows).total() <= ascend_attn_kernel::kAivUbBudget) {
      t.chunk_rows = chunk;
    }
  }
  require(t.chunk_rows > 0, "head_dim " + std::to_string(width) + " does not fit the AIV's UB");

  // 4. Tile weights: a kv tile steps over the Bq-row blocks of every q head of its kv head that some row of which sees
  //    its keys; a dQ tile (deterministic mode) over the Bk-key tiles its rows see.
  const uint32_t group = p.num_heads / p.num_kv_heads, workers = 2 * core_num;
  std::vector<std::vector<uint32_t>> kv_tiles(p.batch), q_tiles(p.deterministic ? p.batch : 0);
  const uint32_t kv_requests = p.deterministic ? kKvStepRequestsDeterministic : kKvStepRequests;
  for (uint32_t b = 0; b < p.batch; ++b) {
    const int64_t sq = p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b], sk = p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b];
    for (int64_t k0 = 0; k0 < sk; k0 += t.block_keys) {
      const auto [lo, hi] =
          query_span(k0, std::min<int64_t>(sk, k0 + t.block_keys), sq, sk, p.window_left, p.window_right);
      kv_tiles[b].push_back(uint32_t(kv_requests * group * ((hi - lo + t.block_rows - 1) / t.block_rows) + 1));
    }
    if (!p.deterministic) continue;
    for (int64_t r0 = 0; r0 < sq; r0 += t.block_rows) {
      const auto [lo, hi] =
          key_span(r0, std::min<int64_t>(sq, r0 + t.block_rows), sq, sk, p.window_left, p.window_right);
      q_tiles[b].push_back(uint32_t(kQStepRequests * ((hi - lo + t.block_keys - 1) / t.block_keys) + 1));
    }
  }

  // 5. Tasks: (batch, head group, tile), kv tasks first, then the dQ tasks; heads grouped per pass.
  const PassTasks kv = group_heads(p.num_kv_heads, kv_tiles, workers);
  const PassTasks dq = p.deterministic ? group_heads(p.num_heads, q_tiles, workers) : PassTasks{};
  t.kv_heads_per_group = kv.per_group, t.q_heads_per_group = dq.per_group;
  t.num_kv_tasks = uint32_t(kv.weights.size()), t.num_q_tasks = uint32_t(dq.weights.size());
  plan.task_weights = kv.weights;
  plan.task_weights.insert(plan.task_weights.end(), dq.weights.begin(), dq.weights.end());

  // 6. Contiguous per-AIV ranges with the smallest maximum load; cores for them and for the row passes.
  const std::vector<uint32_t> begin = partition_contiguous(plan.task_weights, workers);
  t.used_workers = uint32_t(begin.size() - 1);
  const uint64_t row_cores = (rows + 2 * kRowsPerAiv - 1) / (2 * kRowsPerAiv);
  plan.block_dim = uint32_t(std::min<uint64_t>(core_num, std::max<uint64_t>((t.used_workers + 1) / 2, row_cores)));
  for (uint32_t w = 0; w <= kGradMaxWorkers; ++w) t.worker_task_begin[w] = begin[std::min<size_t>(w, begin.size() - 1)];

  // 7. Workspace (512-byte aligned pieces): D, the dQ accumulator (default mode), then per AIV two S slots, dP, two P
  //    and two dS slots (each pair back to back: the two steps' P, or dS, form one [2 Bq, Bk] matrix for dV and dK),
  //    the dK / dV accumulators and (deterministic mode) a dQ accumulator.
  const uint64_t elem = 2, bq = t.block_rows, bk = t.block_keys;
  t.ws_d_offset = 0;
  t.ws_dq_offset = align_up(rows * 4, kWorkspaceAlign);
  t.ws_worker_offset = t.ws_dq_offset + (p.deterministic ? 0 : align_up(rows * p.head_dim * 4, kWorkspaceAlign));
  t.ws_s_bytes = align_up(bq * bk * 4, kWorkspaceAlign);
  t.ws_s_offset = 0;
  t.ws_dp_offset = 2 * t.ws_s_bytes;
  t.ws_p_offset = t.ws_dp_offset + t.ws_s_bytes;
  t.ws_ds_offset = t.ws_p_offset + 2 * bq * bk * elem;  // Bq and Bk are multiples of 16: 512-byte multiples
  t.ws_dk_offset = t.ws_ds_offset + 2 * bq * bk * elem;
  t.ws_dv_offset = t.ws_dk_offset + align_up(bk * p.head_dim * 4, kWorkspaceAlign);
  t.ws_dq_acc_offset = t.ws_dv_offset + align_up(bk * p.head_dim_v * 4, kWorkspaceAlign);
  t.ws_per_worker = t.ws_dq_acc_offset + (p.deterministic ? align_up(bq * p.head_dim * 4, kWorkspaceAlign) : 0);
  plan.workspace_bytes =
      align_up(sys_workspace_bytes, kWorkspaceAlign) + t.ws_worker_offset + 2ull * plan.block_dim * t.ws_per_worker;

  // 8. Matmul tilings of one AIV's GEMMs (one object serves both products of the same form).
  const bool bf16 = p.dtype == kFlashBf16;
  const int32_t dmax = int32_t(std::max(p.head_dim, p.head_dim_v));
  t.mm_s = matmul_tiling(int32_t(bq), int32_t(bk), dmax, bf16, true);             // K and V transposed
  t.mm_t = matmul_tiling(int32_t(bk), dmax, int32_t(2 * bq), bf16, false, true);  // two steps' P or dS, transposed
  t.mm_dq = matmul_tiling(int32_t(bq), int32_t(p.head_dim), int32_t(bk), bf16, false);
  return plan;
}

}  // namespace ascend_attn
