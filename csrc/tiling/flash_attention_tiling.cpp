#include "flash_attention_tiling.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "../common/visible_keys.h"
#include "matmul_tiling.h"
#include "tiling_util.h"

namespace ascend_attn {

namespace {

constexpr uint32_t kMaxBlockCols = 512;  // Bc: 512 keys per KV tile (catlass and FAS use 512 to 1024)

}  // namespace

std::vector<uint32_t> partition_contiguous(const std::vector<uint32_t>& weights, uint32_t parts) {
  std::vector<uint32_t> begin{0};
  if (weights.empty()) return begin;
  parts = std::max<uint32_t>(parts, 1);
  // Greedy fill under a cap; the smallest feasible cap is found by binary search.
  auto split = [&](uint64_t cap, std::vector<uint32_t>* out) {
    uint32_t used = 1;
    uint64_t load = 0;
    for (uint32_t i = 0; i < weights.size(); ++i) {
      if (load + weights[i] > cap && load > 0) {
        ++used;
        load = 0;
        if (out) out->push_back(i);
      }
      load += weights[i];
    }
    return used;
  };
  uint64_t lo = *std::max_element(weights.begin(), weights.end());
  uint64_t hi = std::accumulate(weights.begin(), weights.end(), uint64_t(0));
  while (lo < hi) {
    const uint64_t mid = (lo + hi) / 2;
    if (split(mid, nullptr) <= parts)
      hi = mid;
    else
      lo = mid + 1;
  }
  split(lo, &begin);
  begin.push_back(uint32_t(weights.size()));
  return begin;
}

FlashAttentionPlan plan_flash_attention(const FlashAttentionProblem& p, uint32_t core_num,
                                        uint64_t sys_workspace_bytes) {
  // 1. Validate what this kernel supports (the op-level checks ran before).
  require(p.dtype == kFlashFp16 || p.dtype == kFlashBf16, "q: the Ascend C flash_attention kernel takes fp16 or bf16");
  require_multiple_of_16(p.head_dim, "q: head_dim");
  require_multiple_of_16(p.head_dim_v, "v: head_dim_v");
  require(p.num_kv_heads > 0 && p.num_heads % p.num_kv_heads == 0, "k: kv heads must divide heads");
  require(core_num >= 1 && core_num <= kFlashMaxCores,
          "num_cores must be in [1, " + std::to_string(kFlashMaxCores) + "], got " + std::to_string(core_num));

  FlashAttentionPlan plan;
  FlashAttentionTiling& t = plan.tiling;
  t = FlashAttentionTiling{};
  t.dtype = p.dtype;
  t.batch = p.batch, t.num_heads = p.num_heads, t.num_kv_heads = p.num_kv_heads;
  t.head_dim = p.head_dim, t.head_dim_v = p.head_dim_v;
  t.total_q = uint32_t(p.cu_seqlens_q[p.batch]), t.total_k = uint32_t(p.cu_seqlens_k[p.batch]);
  t.scale = p.scale, t.softcap = p.softcap;
  t.window_left = p.window_left, t.window_right = p.window_right;
  t.return_lse = p.return_lse ? 1 : 0;

  // 2. KV tile: Bc = 512 keys, or the longest key range rounded up to 16 when shorter.
  int64_t max_k = 0;
  for (uint32_t b = 0; b < p.batch; ++b) max_k = std::max<int64_t>(max_k, p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b]);
  t.block_cols = uint32_t(std::min<int64_t>(kMaxBlockCols, std::max<int64_t>(16, (max_k + 15) / 16 * 16)));

  // 3. Rows per UB chunk: the most that fit the AIV's UB next to O, the statistics and the work buffers.
  const uint32_t elem = 2;
  auto chunk_rows = [&](uint32_t rows_per_aiv) -> uint32_t {
    for (uint32_t rows = rows_per_aiv; rows >= 1; rows /= 2) {
      if (ascend_attn_kernel::SoftmaxUbLayout(t.block_cols, t.head_dim_v, rows, elem, rows_per_aiv).total() <=
          ascend_attn_kernel::kAivUbBudget) {
        return rows;
      }
    }
    return 0;
  };

  // 4. Tasks in (batch, kv head, group, q tile) order, each weighted by the KV tiles its rows visit.
  const uint32_t group = p.num_heads / p.num_kv_heads;
  auto task_weights = [&](uint32_t block_rows) {
    std::vector<uint32_t> weights;
    for (uint32_t b = 0; b < p.batch; ++b) {
      const int64_t sq = p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b], sk = p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b];
      const int64_t tiles = (sq + block_rows - 1) / block_rows;
      std::vector<uint32_t> tile_weight(tiles);
      for (int64_t qt = 0; qt < tiles; ++qt) {
        const auto [first, end] = key_span(qt * block_rows, std::min<int64_t>(sq, (qt + 1) * block_rows), sq, sk,
                                           p.window_left, p.window_right);
        // A task with no visible key still writes its rows: it costs one unit.
        tile_weight[qt] = uint32_t(std::max<int64_t>(1, (end - first + t.block_cols - 1) / t.block_cols));
      }
      for (uint32_t h = 0; h < p.num_kv_heads * group; ++h)
        weights.insert(weights.end(), tile_weight.begin(), tile_weight.end());
    }
    return weights;
  };
  // 128 rows per AIV when their O, statistics and a chunk of 8 rows fit in UB and there are at least 4 tasks per
  // core to balance: the cube then reads each K/V tile once for twice the rows, which cuts the GM/L2 traffic per
  // multiply-add by about a fifth (the port, not the cube, bounds this kernel: README, modelled figures).
  std::vector<uint32_t> big = task_weights(2 * kFlashMaxRowsPerAiv);
  const bool use_big = chunk_rows(kFlashMaxRowsPerAiv) >= 8 && big.size() >= 4ull * core_num;
  t.rows_per_aiv = use_big ? kFlashMaxRowsPerAiv : kFlashMinRowsPerAiv;
  plan.task_weights = use_big ? std::move(big) : task_weights(2 * kFlashMinRowsPerAiv);
  t.chunk_rows = chunk_rows(t.rows_per_aiv);
  require(t.chunk_rows > 0, "head_dim_v " + std::to_string(p.head_dim_v) + " does not fit the AIV's UB");
  t.num_tasks = uint32_t(plan.task_weights.size());

  // 5. Contiguous per-core ranges with the smallest maximum load.
  const std::vector<uint32_t> begin = partition_contiguous(plan.task_weights, core_num);
  t.used_cores = uint32_t(begin.size() - 1);
  for (uint32_t c = 0; c <= kFlashMaxCores; ++c) t.core_task_begin[c] = begin[std::min<size_t>(c, begin.size() - 1)];
  plan.block_dim = t.num_tasks ? t.used_cores : 0;

  // 6. Workspace: per AIV two slot sets (the cube works one KV tile ahead), each an S slot (fp32), a P slot (input
  //    dtype) and an O_tmp slot (fp32), 512-byte aligned.
  const uint64_t s_bytes = align_up(uint64_t(t.rows_per_aiv) * t.block_cols * 4, kWorkspaceAlign);
  const uint64_t p_bytes = align_up(uint64_t(t.rows_per_aiv) * t.block_cols * elem, kWorkspaceAlign);
  const uint64_t o_bytes = align_up(uint64_t(t.rows_per_aiv) * t.head_dim_v * 4, kWorkspaceAlign);
  t.ws_p_offset = s_bytes;
  t.ws_o_offset = s_bytes + p_bytes;
  t.ws_slot_bytes = s_bytes + p_bytes + o_bytes;
  t.ws_per_aiv = 2 * t.ws_slot_bytes;
  plan.workspace_bytes = align_up(sys_workspace_bytes, kWorkspaceAlign) + 2ull * plan.block_dim * t.ws_per_aiv;

  // 7. Matmul tilings of one AIV's GEMMs.
  const bool bf16 = p.dtype == kFlashBf16;
  const int32_t m = int32_t(t.rows_per_aiv);
  t.mm1 = matmul_tiling(m, int32_t(t.block_cols), int32_t(t.head_dim), bf16, true);  // K transposed
  t.mm2 = matmul_tiling(m, int32_t(t.head_dim_v), int32_t(t.block_cols), bf16, false);
  return plan;
}

}  // namespace ascend_attn
