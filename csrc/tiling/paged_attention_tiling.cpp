#include "paged_attention_tiling.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "matmul_tiling.h"
#include "tiling_util.h"

namespace ascend_attn {

namespace {

constexpr uint32_t kMinTileKeys = 128;   // Bc: whole pages, at least 128 keys when pages are smaller
constexpr uint32_t kMinSplitKeys = 512;  // a split shorter than this costs more in the combine than it saves
constexpr uint32_t kCubeRows = 16;       // the cube multiplies whole 16-row fractals: fewer rows cost the same
constexpr uint32_t kMaxItemWidth = 512;  // heads_per_item * head_dim at most: a page's K rows of the item, one burst
constexpr uint64_t kMinGroupedItemKeys = 2048;  // an item of several kv heads reads at least this many keys

}  // namespace

PagedAttentionPlan plan_paged_attention(const PagedAttentionProblem& p, uint32_t core_num,
                                        uint64_t sys_workspace_bytes) {
  // 1. Validate what the kernel supports beyond the op contract.
  require(p.dtype == kPagedFp16 || p.dtype == kPagedBf16, "q: the Ascend C paged_attention kernel takes fp16 or bf16");
  require_multiple_of_16(p.head_dim, "q: head_dim");
  require_multiple_of_16(p.head_dim_v, "value_cache: head_dim_v");
  require_multiple_of_16(p.block_size, "key_cache: block_size");
  require(p.num_kv_heads > 0 && p.num_heads % p.num_kv_heads == 0, "key_cache: kv heads must divide heads");
  const uint32_t group = p.num_heads / p.num_kv_heads;
  require(group <= kPagedRowsPerAiv,
          "q: at most 64 query heads per kv head for the Ascend C kernel, got " + std::to_string(group));
  // A token's query row of all heads, in 32-byte blocks, is the stride of the kernel's copy of an item's queries
  // (DataCopyParams strides are 16-bit).
  require(uint64_t(p.num_heads) * p.head_dim * 2 / 32 <= UINT16_MAX,
          "q: heads x head_dim must be at most 1048560 for the Ascend C kernel, got " +
              std::to_string(uint64_t(p.num_heads) * p.head_dim));
  require(core_num >= 1 && core_num <= kPagedMaxCores,
          "num_cores must be in [1, " + std::to_string(kPagedMaxCores) + "], got " + std::to_string(core_num));

  PagedAttentionPlan plan;
  PagedAttentionTiling& t = plan.tiling;
  t = PagedAttentionTiling{};
  t.dtype = p.dtype;
  t.num_seqs = p.num_seqs, t.num_heads = p.num_heads, t.num_kv_heads = p.num_kv_heads;
  t.head_dim = p.head_dim, t.head_dim_v = p.head_dim_v;
  t.num_tokens = uint32_t(p.cu_seqlens_q[p.num_seqs]);
  t.num_blocks = p.num_blocks, t.block_size = p.block_size, t.max_blocks_per_seq = p.max_blocks_per_seq;
  t.scale = p.scale, t.softcap = p.softcap;
  t.window_left = p.window_left, t.window_right = p.window_right;
  t.return_lse = p.return_lse ? 1 : 0;

  // 2. Tiles: one page, or as many small pages as make 128 keys (each page is a Matmul request: a tile is the unit
  //    the cube works ahead on).
  t.block_cols = std::max(p.block_size, kMinTileKeys / p.block_size * p.block_size);

  // 3. Items of up to 64 rows: tokens x the q heads of hp consecutive kv heads. GQA decode has fewer rows than the
  //    cube's 16, so several kv heads can share an item and one request per page: the query rows block diagonal
  //    [rows, hp * d] against the page's K rows of those kv heads, which sit side by side in the cache ([hp * d], one
  //    burst per key), and P against V's [hp * dv]; a row keeps its own head's columns of O_tmp. The Matmul API's
  //    cost and latency per request, which bound decode, are then paid once per hp kv heads. O_tmp grows to
  //    [rows, hp * dv] per page: hp * group <= block_size / 8 keeps its write within an eighth of the page's K and V.
  //    Fewer items can leave cores without work (a core moves at most 1/24 of the chip's bandwidth), so hp is the
  //    largest whose items, split as below, fill the AIVs as well as hp = 1's (or to 95%) and read at least
  //    kMinGroupedItemKeys keys each: shorter items pay the Q slot copy, the pipeline's fill and the combine per item,
  //    which the fewer requests do not repay (modelled 64 x 1K decode, GQA 4: 0.61 of GM bandwidth at hp 2 with two
  //    splits, 0.66 at hp 1).
  //    The KV length is split (flash-decoding) when the (sequence, kv head group, token block) items cannot keep the
  //    AIVs evenly busy: the fewest splits per sequence whose items fill the AIVs' rounds to at least 95% (items
  //    counted as equal), else the best filling; a split keeps at least kMinSplitKeys keys (shorter ones cost more
  //    in the combine than they save) and a sequence has at most kPagedMaxSplits.
  const uint32_t workers = 2 * core_num;
  int64_t max_ctx = 0;
  for (uint32_t s = 0; s < p.num_seqs; ++s) max_ctx = std::max<int64_t>(max_ctx, p.context_lens[s]);
  const uint64_t whole = align_up(std::max<int64_t>(max_ctx, 1), p.block_size);
  struct Choice {
    uint32_t heads_per_item;
    uint64_t split;
    double filling;  // share of the AIVs' rounds the items occupy
  };
  auto choose_split = [&](uint32_t hp) {
    const uint32_t tokens_per_item = kPagedRowsPerAiv / (hp * group);
    auto filling = [&](uint64_t split) {
      uint64_t items = 0;
      for (uint32_t s = 0; s < p.num_seqs; ++s) {
        const int64_t q_len = p.cu_seqlens_q[s + 1] - p.cu_seqlens_q[s];
        const uint64_t blocks = (q_len + tokens_per_item - 1) / tokens_per_item;
        items += p.num_kv_heads / hp * blocks * std::max<uint64_t>(1, (p.context_lens[s] + split - 1) / split);
      }
      return items ? double(items) / double((items + workers - 1) / workers * workers) : 1.0;
    };
    Choice c{hp, whole, filling(whole)};
    for (uint32_t n = 2; n <= kPagedMaxSplits && c.filling < 0.95; ++n) {
      const uint64_t keys = align_up((whole + n - 1) / n, p.block_size);
      if (keys < kMinSplitKeys) break;
      const double f = filling(keys);
      if (f > c.filling) c.split = keys, c.filling = f;
    }
    return c;
  };
  const uint32_t width = std::max(p.head_dim, p.head_dim_v);
  Choice choice = choose_split(1);
  const double enough = std::min(0.95, choice.filling);
  for (uint32_t hp = 2; hp <= p.num_kv_heads; ++hp) {
    if (p.num_kv_heads % hp != 0 || hp * group > std::min(kCubeRows, p.block_size / 8) || hp * width > kMaxItemWidth)
      continue;
    const Choice c = choose_split(hp);
    if (c.filling >= enough && std::min(c.split, whole) >= kMinGroupedItemKeys) choice = c;
  }
  t.heads_per_item = choice.heads_per_item;
  const uint32_t row_heads = t.heads_per_item * group;  // q heads of one token in an item
  t.tokens_per_item = kPagedRowsPerAiv / row_heads;
  t.split_keys = uint32_t(choice.split);
  t.max_splits = uint32_t((std::max<int64_t>(max_ctx, 1) + choice.split - 1) / choice.split);

  // 4. UB: rows per softmax chunk, beside the combine phase's buffers and a piece of the item's query rows on its way
  //    to the Q slot: as many whole tokens as fit (kPagedQueryUbBytes at most), else whole kv head runs (their copy
  //    into the slot goes run by run; a run of hp > 1 items is at most 8 rows x 256 columns), else rows. The chunk is
  //    chosen with the smallest piece; the piece then takes what is left.
  const uint32_t query_row = p.head_dim * 2;
  auto piece_rows = [&](uint32_t bytes) -> uint32_t {
    const uint32_t rows = bytes / query_row;
    if (rows >= row_heads) return std::min(rows / row_heads, t.tokens_per_item) * row_heads;
    return t.heads_per_item > 1 ? rows / group * group : rows;
  };
  const uint32_t combine = t.max_splits > 1 ? PagedCombineLayout(t.max_splits, t.head_dim_v, 2).total() : 0;
  const uint32_t least_query = PagedQueryUbBytes(t.heads_per_item > 1 ? group : 1, p.head_dim, 2);
  t.chunk_rows = 0;
  uint32_t used = 0;
  for (uint32_t rows = kPagedRowsPerAiv; rows >= 1; rows /= 2) {
    used = ascend_attn_kernel::SoftmaxUbLayout(t.block_cols, t.head_dim_v, rows, 2, kPagedRowsPerAiv).total() + combine;
    if (used + least_query <= ascend_attn_kernel::kAivUbBudget) {
      t.chunk_rows = rows;
      break;
    }
  }
  require(t.chunk_rows > 0, "value_cache: head_dim_v " + std::to_string(p.head_dim_v) + " does not fit the AIV's UB");
  t.query_piece_rows = piece_rows(std::min(kPagedQueryUbBytes, ascend_attn_kernel::kAivUbBudget - used));

  // 5. Items in (sequence, kv head group, token block, split) order, weighted by the keys they read, over the AIVs.
  const uint64_t split = choice.split;
  for (uint32_t s = 0; s < p.num_seqs; ++s) {
    const int64_t q_len = p.cu_seqlens_q[s + 1] - p.cu_seqlens_q[s], ctx = p.context_lens[s];
    const int64_t blocks = (q_len + t.tokens_per_item - 1) / t.tokens_per_item;
    const int64_t splits = std::max<int64_t>(1, (ctx + split - 1) / split);
    for (uint32_t h = 0; h < p.num_kv_heads / t.heads_per_item; ++h) {
      for (int64_t b = 0; b < blocks; ++b) {
        for (int64_t j = 0; j < splits; ++j) {
          const int64_t keys =
              std::min<int64_t>(ctx, PagedSplitBound(ctx, p.block_size, uint32_t(splits), uint32_t(j + 1))) -
              PagedSplitBound(ctx, p.block_size, uint32_t(splits), uint32_t(j));
          plan.item_weights.push_back(uint32_t(keys / 16 + 8));  // + a fixed cost per item
        }
      }
    }
  }
  t.num_items = uint32_t(plan.item_weights.size());
  const std::vector<uint32_t> begin = partition_contiguous(plan.item_weights, workers);
  t.used_workers = uint32_t(begin.size() - 1);
  for (uint32_t w = 0; w <= kPagedMaxWorkers; ++w)
    t.worker_item_begin[w] = begin[std::min<size_t>(w, begin.size() - 1)];
  // Without a split, the cores whose AIVs have items; with one, every core (the combine shares rows over all AIVs).
  const uint32_t cores = t.max_splits > 1 ? core_num : std::min(core_num, (t.used_workers + 1) / 2);
  plan.block_dim = t.num_items ? cores : 0;

  // 6. Workspace: per AIV two sets of S, P, O_tmp slots and a Q slot; then partial O and lse; then the error flag.
  const uint64_t s_bytes = align_up(uint64_t(kPagedRowsPerAiv) * t.block_cols * 4, kWorkspaceAlign);
  const uint64_t p_bytes = align_up(uint64_t(kPagedRowsPerAiv) * t.block_cols * 2, kWorkspaceAlign);
  const uint64_t o_bytes = align_up(uint64_t(kPagedRowsPerAiv) * t.heads_per_item * t.head_dim_v * 4, kWorkspaceAlign);
  const uint64_t q_bytes = align_up(uint64_t(kPagedRowsPerAiv) * t.heads_per_item * t.head_dim * 2, kWorkspaceAlign);
  t.ws_p_offset = s_bytes;
  t.ws_o_offset = s_bytes + p_bytes;
  t.ws_slot_bytes = s_bytes + p_bytes + o_bytes;
  t.ws_q_offset = 2 * t.ws_slot_bytes;
  t.ws_per_aiv = t.ws_q_offset + q_bytes;
  const uint64_t part_rows = uint64_t(t.num_tokens) * t.num_heads * (t.max_splits > 1 ? t.max_splits : 0);
  t.ws_part_o_offset = 2ull * std::max<uint32_t>(plan.block_dim, 1) * t.ws_per_aiv;
  t.ws_part_lse_offset = t.ws_part_o_offset + align_up(part_rows * t.head_dim_v * 4, kWorkspaceAlign);
  t.ws_error_offset = t.ws_part_lse_offset + align_up(part_rows * 4, kWorkspaceAlign);
  plan.error_bytes = 2ull * plan.block_dim * kPagedErrorSlotBytes;
  plan.workspace_bytes = align_up(sys_workspace_bytes, kWorkspaceAlign) + t.ws_error_offset +
                         align_up(std::max<uint64_t>(plan.error_bytes, 1), kWorkspaceAlign);

  // 7. Matmul tilings: one page of the item's kv heads per GEMM.
  const bool bf16 = p.dtype == kPagedBf16;
  const int32_t hp = int32_t(t.heads_per_item);
  t.mm1 = matmul_tiling(int32_t(kPagedRowsPerAiv), int32_t(p.block_size), hp * int32_t(p.head_dim), bf16, true);
  t.mm2 = matmul_tiling(int32_t(kPagedRowsPerAiv), hp * int32_t(p.head_dim_v), int32_t(p.block_size), bf16, false);
  return plan;
}

ReshapeAndCachePlan plan_reshape_and_cache(uint32_t num_tokens, uint32_t num_kv_heads, uint32_t head_dim,
                                           uint32_t head_dim_v, uint32_t num_blocks, uint32_t block_size,
                                           uint32_t elem_bytes, bool slot_int64, uint32_t aiv_num,
                                           uint64_t sys_workspace_bytes) {
  require(aiv_num >= 1 && aiv_num <= kPagedMaxWorkers, "num_cores: AIV count out of range");
  const uint64_t row = uint64_t(num_kv_heads) * std::max(head_dim, head_dim_v) * elem_bytes;
  require(2 * align_up(row, 32) <= ascend_attn_kernel::kAivUbBudget,
          "key: one token's K row (" + std::to_string(row) + " bytes) does not fit the AIV's UB twice");
  ReshapeAndCachePlan plan;
  ReshapeAndCacheTiling& t = plan.tiling;
  t = ReshapeAndCacheTiling{num_tokens, num_kv_heads,         head_dim,
                            head_dim_v, num_blocks,           block_size,
                            elem_bytes, slot_int64 ? 1u : 0u, std::min(aiv_num, std::max(num_tokens, 1u))};
  plan.block_dim = num_tokens ? t.used_workers : 0;
  plan.error_bytes = uint64_t(plan.block_dim) * kPagedErrorSlotBytes;  // a slot per worker, as in paged_attention
  plan.workspace_bytes = align_up(sys_workspace_bytes, kWorkspaceAlign) +
                         align_up(std::max<uint64_t>(plan.error_bytes, 1), kWorkspaceAlign);
  return plan;
}

}  // namespace ascend_attn
