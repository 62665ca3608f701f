#include "cpu/attention_runner.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <utility>

#include "cpu/cpu_isa.h"

namespace ascend_attn::cpu {
namespace {

// Rows stacked into one work item (all heads of the item together) and keys per K/V tile. 192 x 256 keeps the
// item's fp32 Qᵀ, O, Sᵀ and one packed K and V tile (head_dim 128) inside a 1 MiB L2.
constexpr int kItemRows = 192;
constexpr int kBlockK = 256;
// Split-KV: never cut a key range below this many keys of one kv head (the merge and the per-item setup must stay
// small next to the work), and at most this many splits per item (merge_partials' bound).
constexpr int64_t kMinSplitKeys = 1024;
constexpr int kMaxSplits = 32;
// Few-query items of several kv heads: one tile's K and V rows of all the item's heads take at most this many bytes
// (half of a 1 MiB L2, so the V rows the scores pass brought in are still there when P V reads them head by head;
// measured on 8 x 8192 decode: 256 KiB tiles were slower in bf16, 1 MiB ones no faster), and an item reads at most
// this many elements of each key row (2048: eight kv heads at head_dim 128).
constexpr int64_t kFewTileBytes = 512 * 1024;
constexpr int64_t kFewRowElems = 2048;

// Keys [lo, hi) some row in [row_begin, row_end) of the sequence can see (rows' ranges move monotonically).
std::pair<int64_t, int64_t> key_span(const FlashParams& p, const SeqDesc& s, int64_t row_begin, int64_t row_end) {
  return ascend_attn::key_span(row_begin, row_end, s.seqlen_q, s.seqlen_k, p.window_left, p.window_right);
}

int64_t visible_pairs(const FlashParams& p, const SeqDesc& s) {
  int64_t total = 0;
  for (int64_t i = 0; i < s.seqlen_q; ++i) {
    int64_t lo, hi;
    visible_keys(i, s.seqlen_q, s.seqlen_k, p.window_left, p.window_right, &lo, &hi);
    total += std::max<int64_t>(hi - lo, 0);
  }
  return total;
}

// Work items in processing order: sequences by decreasing work, then per kv head, then per q-head chunk, q tiles
// last-first (under a causal mask the last rows see the most keys). Items of one kv head run back to back, so its
// K/V stays in the caches; the largest items start first so the shared counter ends with small ones.
std::vector<WorkItem> make_work_items(const FlashParams& p, const std::vector<SeqDesc>& seqs, const FlashTiling& t) {
  std::vector<WorkItem> items;
  const int64_t group = p.heads / p.kv_heads;
  std::vector<std::pair<int64_t, size_t>> order;  // (-work, seq)
  for (size_t s = 0; s < seqs.size(); ++s) order.emplace_back(-visible_pairs(p, seqs[s]), s);
  std::stable_sort(order.begin(), order.end());
  for (const auto& entry : order) {
    const size_t s = entry.second;
    const SeqDesc& sd = seqs[s];
    const int64_t tiles = (sd.seqlen_q + t.block_q - 1) / t.block_q;
    const int64_t span = group * t.kv_heads_per_item;  // q heads of the kv heads an item reads
    for (int64_t kvh = 0; kvh < p.kv_heads; kvh += t.kv_heads_per_item) {
      for (int64_t g0 = 0; g0 < span; g0 += t.heads_per_item) {
        const int64_t hc = std::min<int64_t>(t.heads_per_item, span - g0);
        for (int64_t tile = tiles - 1; tile >= 0; --tile) {
          const int64_t r0 = tile * t.block_q, r1 = std::min<int64_t>(r0 + t.block_q, sd.seqlen_q);
          items.push_back(WorkItem{static_cast<int32_t>(s), static_cast<int32_t>(kvh * group + g0),
                                   static_cast<int32_t>(hc), static_cast<int32_t>(r0), static_cast<int32_t>(r1), 0,
                                   sd.seqlen_k, -1});
        }
      }
    }
  }
  return items;
}

// Tiling: stack up to kItemRows rows per item, then shrink the query block until every thread has several items.
FlashTiling choose_tiling(const FlashParams& p, const std::vector<SeqDesc>& seqs, int threads) {
  int64_t max_q = 1;
  for (const SeqDesc& s : seqs) max_q = std::max<int64_t>(max_q, s.seqlen_q);
  FlashTiling t;
  t.block_k = kBlockK;
  t.block_q = static_cast<int32_t>(std::min<int64_t>(max_q, kItemRows));
  const int64_t group = p.heads / p.kv_heads;
  auto count_items = [&] {
    int64_t n = 0;
    for (const SeqDesc& s : seqs) n += (s.seqlen_q + t.block_q - 1) / t.block_q;
    return n * p.kv_heads * ((group + t.heads_per_item - 1) / t.heads_per_item);
  };
  for (;;) {
    t.heads_per_item = static_cast<int32_t>(std::clamp<int64_t>(kItemRows / t.block_q, 1, group));
    if (count_items() >= 4 * threads || t.block_q <= 24) break;
    t.block_q = (t.block_q + 1) / 2;
  }
  // Decode: the rows of one kv head take the few-query path, and reading only one head's slice of every key row
  // (256 bytes of each 2 KiB in bf16) leaves the DRAM streams short and scattered, so an item takes every kv head
  // whose rows fit in a short contiguous run; split_keys then finds the parallelism in the key range instead.
  if (t.block_q * group <= kFewQueryRows) {
    int64_t kvh = 1;
    for (int64_t d = 2; d <= p.kv_heads; ++d)
      if (p.kv_heads % d == 0 && d * (p.head_dim + p.head_dim_v) <= kFewRowElems && d * t.block_q * group <= kItemRows)
        kvh = d;
    if (kvh > 1) {
      t.kv_heads_per_item = static_cast<int32_t>(kvh);
      t.heads_per_item = static_cast<int32_t>(kvh * group);
      const int64_t elem_bytes = p.dtype == ElemType::kFloat32 ? 4 : 2;
      const int64_t keys = kFewTileBytes / (kvh * (p.head_dim + p.head_dim_v) * elem_bytes) / 16 * 16;
      t.block_k = static_cast<int32_t>(std::clamp<int64_t>(keys, 16, kBlockK));
    }
  }
  return t;
}

// Flash-decoding: when there are fewer items than 2 per thread, cut long key ranges into up to kMaxSplits pieces
// (whole K/V tiles) whose partial results are merged afterwards. Returns the number of partial slots used; `groups`
// gets, per split item, the range of its pieces in `items`.
int64_t split_keys(const FlashParams& p, const std::vector<SeqDesc>& seqs, const FlashTiling& t, int threads,
                   std::vector<WorkItem>& items, std::vector<std::pair<size_t, size_t>>& groups) {
  if (items.empty() || static_cast<int64_t>(items.size()) >= 2 * threads) return 0;
  const int64_t want = (4 * threads + static_cast<int64_t>(items.size()) - 1) / static_cast<int64_t>(items.size());
  std::vector<WorkItem> out;
  int64_t slots = 0;
  for (const WorkItem& it : items) {
    const auto [lo, hi] = key_span(p, seqs[it.seq], it.row_begin, it.row_end);
    const int64_t head_keys = (hi - lo) * t.kv_heads_per_item;
    const int64_t splits = std::clamp<int64_t>(std::min(want, head_keys / kMinSplitKeys), 1, kMaxSplits);
    if (splits == 1) {
      out.push_back(it);
      continue;
    }
    const int64_t tiles = (hi - lo + t.block_k - 1) / t.block_k;
    groups.emplace_back(out.size(), out.size() + splits);
    for (int64_t s = 0; s < splits; ++s) {
      WorkItem piece = it;
      piece.key_begin = static_cast<int32_t>(lo + tiles * s / splits * t.block_k);
      piece.key_end = static_cast<int32_t>(std::min(hi, lo + tiles * (s + 1) / splits * t.block_k));
      piece.partial = static_cast<int32_t>(slots++);
      out.push_back(piece);
    }
  }
  items.swap(out);
  return slots;
}

template <typename T>
void merge_splits(const FlashParams& p, const std::vector<SeqDesc>& seqs, const std::vector<WorkItem>& items,
                  const std::vector<std::pair<size_t, size_t>>& groups) {
  at::parallel_for(0, static_cast<int64_t>(groups.size()), 1, [&](int64_t begin, int64_t end) {
    const float* outs[kMaxSplits];
    float lses[kMaxSplits];
    for (int64_t g = begin; g < end; ++g) {
      const auto [first, last] = groups[g];
      const WorkItem& it = items[first];
      const SeqDesc& sd = seqs[it.seq];
      const int n = static_cast<int>(last - first);
      const int rows = it.row_end - it.row_begin;
      for (int r = 0; r < rows * it.head_count; ++r) {
        for (int s = 0; s < n; ++s) {
          const int64_t slot = items[first + s].partial * p.partial_rows + r;
          outs[s] = p.partial_out + slot * p.head_dim_v;
          lses[s] = p.partial_lse[slot];
        }
        const int64_t i = it.row_begin + r % rows;
        const int64_t h = it.head_begin + r / rows;
        T* out = static_cast<T*>(p.out) + sd.o_offset + i * p.o_row_stride + h * p.o_head_stride;
        float lse;
        merge_partials(n, outs, lses, p.head_dim_v, out, &lse);
        if (p.lse != nullptr) p.lse[sd.lse_offset + h * p.lse_head_stride + i] = lse;
      }
    }
  });
}

}  // namespace

ElemType elem_type(at::ScalarType t) {
  switch (t) {
    case at::kHalf:
      return ElemType::kFloat16;
    case at::kBFloat16:
      return ElemType::kBFloat16;
    default:
      return ElemType::kFloat32;
  }
}

void set_common_params(FlashParams& p, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& out,
                       at::Tensor& lse, double scale, double softcap, int64_t window_left, int64_t window_right,
                       const std::optional<at::Tensor>& alibi_slopes) {
  p.dtype = elem_type(q.scalar_type());
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.out = out.data_ptr();
  p.lse = lse.numel() > 0 ? lse.data_ptr<float>() : nullptr;
  p.scale = static_cast<float>(scale);
  p.softcap = static_cast<float>(softcap);
  p.window_left = static_cast<int32_t>(window_left);
  p.window_right = static_cast<int32_t>(window_right);
  if (alibi_slopes.has_value()) {
    p.alibi = alibi_slopes->data_ptr<float>();
    p.alibi_seq_stride = alibi_slopes->dim() == 2 ? alibi_slopes->size(1) : 0;
  }
}

void run_attention(FlashParams p, const std::vector<SeqDesc>& seqs, bool split_kv, const at::Tensor& out) {
  const FlashKernel& kernel = select_flash_kernel();
  p.seqs = seqs.data();
  p.num_seqs = static_cast<int32_t>(seqs.size());
  const int threads = std::max(1, at::get_num_threads());
  const FlashTiling tiling = choose_tiling(p, seqs, threads);
  std::vector<WorkItem> items = make_work_items(p, seqs, tiling);
  std::vector<std::pair<size_t, size_t>> groups;
  const int64_t slots = split_kv ? split_keys(p, seqs, tiling, threads, items, groups) : 0;
  at::Tensor partial_out, partial_lse;
  if (slots > 0) {
    p.partial_rows = static_cast<int64_t>(tiling.block_q) * tiling.heads_per_item;
    partial_out = at::empty({slots * p.partial_rows * p.head_dim_v}, out.options().dtype(at::kFloat));
    partial_lse = at::empty({slots * p.partial_rows}, out.options().dtype(at::kFloat));
    p.partial_out = partial_out.data_ptr<float>();
    p.partial_lse = partial_lse.data_ptr<float>();
  }
  if (items.empty()) return;
  const size_t scratch_floats = kernel.scratch_floats(p, tiling);
  std::atomic<size_t> next{0};
  const int workers = static_cast<int>(std::min<size_t>(threads, items.size()));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    float* scratch = thread_scratch(scratch_floats);
    for (int64_t w = begin; w < end; ++w)
      for (size_t i = next.fetch_add(1); i < items.size(); i = next.fetch_add(1))
        kernel.run(p, tiling, items[i], scratch);
  });
  if (slots > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "merge_splits",
                                    [&] { merge_splits<scalar_t>(p, seqs, items, groups); });
  }
}

}  // namespace ascend_attn::cpu
