#include "cpu/backward_runner.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "cpu/attention_runner.h"
#include "cpu/cpu_isa.h"

namespace ascend_attn::cpu {
namespace {

// Query rows per step and keys per item. Every step reads its Q and dO rows (and adds to its dQ rows) from memory, so
// more keys per item mean fewer reads per FLOP: 256 keys ran about 15% faster than 128 on a Zen 3 EPYC (fp32, d 128,
// MHA and GQA), although the item's working set (K/V tile both ways, dK/dV, one step's Q/dO rows, P and dS: about
// 860 KB at head_dim 128) outgrows its 512 KB L2; 512 keys and 128-row steps were no faster.
constexpr int kBlockQ = 64;
constexpr int kBlockK = 256;

// The order every (q head, q tile)'s dQ contributions are added in: its kv tiles, lowest first. turns[t] holds the
// kv tile whose contribution to tile t goes next; the contributors of a q tile are consecutive kv tiles (the keys
// rows of a tile see form one range), so each contribution passes the turn to kv tile + 1.
struct DqOrder {
  std::unique_ptr<std::atomic<int32_t>[]> turns;
  std::vector<int64_t> turn_base;  // per sequence: index of (head 0, q tile 0) in turns
  std::vector<int32_t> q_tiles;    // per sequence
};

std::atomic<int32_t>& dq_turn(void* ctx, const BackwardItem& item, int32_t head, int32_t q_tile) {
  DqOrder& o = *static_cast<DqOrder*>(ctx);
  return o.turns[o.turn_base[item.seq] + static_cast<int64_t>(head) * o.q_tiles[item.seq] + q_tile];
}

void dq_wait(void* ctx, const BackwardItem& item, int32_t head, int32_t q_tile) {
  std::atomic<int32_t>& turn = dq_turn(ctx, item, head, q_tile);
  // The lower kv tiles of this q tile were handed out earlier and are running (or done), so this wait ends; it is
  // short, because items of one sequence and kv head start a few steps apart.
  for (int spins = 0; turn.load(std::memory_order_acquire) != item.kv_tile; ++spins) {
#if defined(__x86_64__) || defined(__i386__)
    if (spins < 4096) {
      __builtin_ia32_pause();
      continue;
    }
#endif
    std::this_thread::yield();
  }
}

void dq_done(void* ctx, const BackwardItem& item, int32_t head, int32_t q_tile) {
  dq_turn(ctx, item, head, q_tile).store(item.kv_tile + 1, std::memory_order_release);
}

template <typename T>
void delta_rows(const BackwardParams& p, const std::vector<BackwardSeq>& seqs, const std::vector<int64_t>& first_row,
                float* delta) {
  const int64_t rows = first_row.back();
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    size_t s = std::upper_bound(first_row.begin(), first_row.end(), begin) - first_row.begin() - 1;
    for (int64_t row = begin; row < end; ++row) {
      while (row >= first_row[s + 1]) ++s;
      const BackwardSeq& sd = seqs[s];
      const int64_t i = row - first_row[s];
      for (int32_t h = 0; h < p.heads; ++h) {
        const T* d = static_cast<const T*>(p.dout) + sd.do_offset + i * p.do_row_stride + h * p.do_head_stride;
        const T* o = static_cast<const T*>(p.out) + sd.o_offset + i * p.o_row_stride + h * p.o_head_stride;
        float acc = 0.f;
        for (int32_t c = 0; c < p.head_dim_v; ++c) acc += static_cast<float>(d[c]) * static_cast<float>(o[c]);
        delta[sd.lse_offset + h * p.lse_head_stride + i] = acc;
      }
    }
  });
}

// D = rowsum(dout * out) per (sequence, row, q head), in fp32.
void compute_delta(const BackwardParams& p, const std::vector<BackwardSeq>& seqs, float* delta) {
  std::vector<int64_t> first_row(seqs.size() + 1, 0);
  for (size_t s = 0; s < seqs.size(); ++s) first_row[s + 1] = first_row[s] + seqs[s].seqlen_q;
  switch (p.dtype) {
    case ElemType::kFloat32:
      return delta_rows<float>(p, seqs, first_row, delta);
    case ElemType::kFloat16:
      return delta_rows<c10::Half>(p, seqs, first_row, delta);
    case ElemType::kBFloat16:
      return delta_rows<c10::BFloat16>(p, seqs, first_row, delta);
  }
}

// q tiles [first, last) whose rows see a key of kv tile j, given each q tile's visible key span.
struct Span {
  int64_t lo, hi;
};

// Work items in processing order. Sequences x kv heads ("chains") by decreasing work; a chain's items, one per kv
// tile, in increasing tile order (under a causal mask the first tiles are seen by the most rows, so this is also
// largest-first), which the dQ order needs: an item only ever waits for lower tiles of its chain, handed out before
// it. Chains are taken `threads` at a time and their items interleaved, so items running together belong to
// different chains and rarely wait for each other.
std::vector<BackwardItem> make_items(const BackwardParams& p, const std::vector<BackwardSeq>& seqs, int threads,
                                     DqOrder& order) {
  struct Chain {
    int64_t work;
    int32_t seq, kv_head;
  };
  std::vector<Chain> chains;
  std::vector<std::vector<BackwardItem>> per_seq(seqs.size());
  order.turn_base.assign(seqs.size(), 0);
  order.q_tiles.assign(seqs.size(), 0);
  int64_t turns = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const BackwardSeq& sd = seqs[s];
    const int32_t q_tiles = (sd.seqlen_q + kBlockQ - 1) / kBlockQ;
    const int32_t kv_tiles = (sd.seqlen_k + kBlockK - 1) / kBlockK;
    std::vector<Span> spans(q_tiles);
    int64_t work = 0;
    for (int32_t i = 0; i < q_tiles; ++i) {
      const int64_t r0 = static_cast<int64_t>(i) * kBlockQ, r1 = std::min<int64_t>(r0 + kBlockQ, sd.seqlen_q);
      auto [lo, hi] = key_span(r0, r1, sd.seqlen_q, sd.seqlen_k, p.window_left, p.window_right);
      if (hi <= lo) lo = hi = 0;
      spans[i] = Span{lo, hi};
      work += hi - lo;
    }
    order.turn_base[s] = turns;
    order.q_tiles[s] = q_tiles;
    turns += static_cast<int64_t>(q_tiles) * p.heads;
    // Both ends of the q-tile range move forward with the kv tile (spans are monotone), so one sweep finds them all.
    int32_t first = 0, last = 0;
    for (int32_t j = 0; j < kv_tiles; ++j) {
      const int64_t k0 = static_cast<int64_t>(j) * kBlockK, k1 = k0 + kBlockK;
      while (first < q_tiles && (spans[first].hi <= k0 || spans[first].lo >= spans[first].hi)) ++first;
      last = std::max(last, first);
      while (last < q_tiles && spans[last].lo < k1 && spans[last].hi > k0) ++last;
      const int32_t end = first < last ? last : first;
      per_seq[s].push_back(BackwardItem{static_cast<int32_t>(s), 0, j, first, end});
    }
    for (int32_t h = 0; h < p.kv_heads; ++h) chains.push_back(Chain{work, static_cast<int32_t>(s), h});
  }
  order.turns.reset(new std::atomic<int32_t>[turns]);
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int32_t i = 0; i < order.q_tiles[s]; ++i) {
      // The first contributor of a q tile is the kv tile holding its first visible key.
      const BackwardSeq& sd = seqs[s];
      const int64_t r0 = static_cast<int64_t>(i) * kBlockQ, r1 = std::min<int64_t>(r0 + kBlockQ, sd.seqlen_q);
      auto [lo, hi] = key_span(r0, r1, sd.seqlen_q, sd.seqlen_k, p.window_left, p.window_right);
      const int32_t first_tile = hi > lo ? static_cast<int32_t>(lo / kBlockK) : 0;
      for (int32_t h = 0; h < p.heads; ++h)
        order.turns[order.turn_base[s] + static_cast<int64_t>(h) * order.q_tiles[s] + i].store(
            first_tile, std::memory_order_relaxed);
    }
  }
  std::stable_sort(chains.begin(), chains.end(), [](const Chain& a, const Chain& b) { return a.work > b.work; });
  std::vector<BackwardItem> items;
  for (size_t c0 = 0; c0 < chains.size(); c0 += threads) {
    const size_t c1 = std::min(chains.size(), c0 + threads);
    size_t longest = 0;
    for (size_t c = c0; c < c1; ++c) longest = std::max(longest, per_seq[chains[c].seq].size());
    for (size_t j = 0; j < longest; ++j) {
      for (size_t c = c0; c < c1; ++c) {
        const std::vector<BackwardItem>& tiles = per_seq[chains[c].seq];
        if (j >= tiles.size()) continue;
        BackwardItem item = tiles[j];
        item.kv_head = chains[c].kv_head;
        items.push_back(item);
      }
    }
  }
  return items;
}

}  // namespace

void run_attention_backward(BackwardParams p, const std::vector<BackwardSeq>& seqs, float* delta, float* dq_acc,
                            int64_t dq_row_stride) {
  const FlashBackwardKernel& kernel = select_flash_backward_kernel();
  p.seqs = seqs.data();
  p.delta = delta;
  compute_delta(p, seqs, delta);
  const int threads = std::max(1, at::get_num_threads());
  DqOrder order;
  const std::vector<BackwardItem> items = make_items(p, seqs, threads, order);
  if (items.empty()) return;
  p.dq_acc = dq_acc;
  p.dq_row_stride = dq_row_stride;
  p.dq_wait = dq_wait;
  p.dq_done = dq_done;
  p.dq_ctx = &order;
  const BackwardTiling tiling{kBlockQ, kBlockK};
  const size_t scratch_floats = kernel.scratch_floats(p, tiling);
  std::atomic<size_t> next{0};
  const int workers = static_cast<int>(std::min<size_t>(threads, items.size()));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    float* scratch = thread_scratch(scratch_floats);
    for (int64_t w = begin; w < end; ++w)
      for (size_t i = next.fetch_add(1); i < items.size(); i = next.fetch_add(1))
        kernel.run(p, tiling, items[i], scratch);
  });
}

}  // namespace ascend_attn::cpu
