// CPU executor of flash_attention and flash_attention_varlen: validate, describe the sequences, split the work into
// items balanced by their visible (query, key) pairs, and run the ISA kernel on at::parallel_for threads that pull
// items from a shared counter (largest first), so causal and ragged batches keep both cores busy.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/attention_args.h"
#include "cpu/cpu_isa.h"
#include "cpu/flash_kernel.h"

namespace ascend_attn::cpu {
namespace {

// Per-thread scratch kept across calls: the pool threads are long-lived, and a fresh megabyte per call would cost
// page faults on every call.
float* thread_scratch(size_t floats) {
  struct Deleter {
    void operator()(float* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, Deleter> buffer;
  thread_local size_t capacity = 0;
  if (floats > capacity) {
    const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    buffer.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    TORCH_CHECK(buffer != nullptr, "flash_attention: out of memory allocating ", bytes, " bytes of scratch");
    capacity = floats;
  }
  return buffer.get();
}

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

// Rows stacked into one work item (all heads of the item together) and keys per K/V tile. 192 x 256 keeps the
// item's fp32 Q, O and one packed K and V tile (head_dim 128) inside a 1 MiB L2.
constexpr int kItemRows = 192;
constexpr int kBlockK = 256;

int64_t visible_pairs(const SeqDesc& s, int64_t row_begin, int64_t row_end, const AttentionArgs& a) {
  int64_t total = 0;
  for (int64_t i = row_begin; i < row_end; ++i) {
    int64_t lo, hi;
    visible_keys(i, s.seqlen_q, s.seqlen_k, a.window_left, a.window_right, &lo, &hi);
    total += std::max<int64_t>(hi - lo, 0);
  }
  return total;
}

// Work items in processing order: sequences by decreasing work, then per kv head, then per q-head chunk, q tiles
// last-first (under a causal mask the last rows see the most keys). Items of one kv head run back to back, so its
// K/V stays in the caches; the largest items start first so the shared counter ends with small ones.
std::vector<WorkItem> make_work_items(const std::vector<SeqDesc>& seqs, const AttentionArgs& a, const FlashTiling& t) {
  std::vector<WorkItem> items;
  const int64_t group = a.heads / a.kv_heads;
  std::vector<std::pair<int64_t, size_t>> order;  // (-work, seq)
  for (size_t s = 0; s < seqs.size(); ++s) order.emplace_back(-visible_pairs(seqs[s], 0, seqs[s].seqlen_q, a), s);
  std::stable_sort(order.begin(), order.end());
  for (const auto& [unused, s] : order) {
    const SeqDesc& sd = seqs[s];
    const int64_t tiles = (sd.seqlen_q + t.block_q - 1) / t.block_q;
    for (int64_t kvh = 0; kvh < a.kv_heads; ++kvh) {
      for (int64_t g0 = 0; g0 < group; g0 += t.heads_per_item) {
        const int64_t hc = std::min<int64_t>(t.heads_per_item, group - g0);
        for (int64_t tile = tiles - 1; tile >= 0; --tile) {
          const int64_t r0 = tile * t.block_q, r1 = std::min<int64_t>(r0 + t.block_q, sd.seqlen_q);
          items.push_back(WorkItem{static_cast<int32_t>(s), static_cast<int32_t>(kvh * group + g0),
                                   static_cast<int32_t>(hc), static_cast<int32_t>(r0), static_cast<int32_t>(r1)});
        }
      }
    }
  }
  return items;
}

// Tiling: stack up to kItemRows rows per item, then shrink the query block until every thread has several items.
FlashTiling choose_tiling(const std::vector<SeqDesc>& seqs, const AttentionArgs& a, int threads) {
  int64_t max_q = 1;
  for (const SeqDesc& s : seqs) max_q = std::max<int64_t>(max_q, s.seqlen_q);
  FlashTiling t;
  t.block_k = kBlockK;
  t.block_q = static_cast<int32_t>(std::min<int64_t>(max_q, kItemRows));
  const int64_t group = a.heads / a.kv_heads;
  auto count_items = [&] {
    int64_t n = 0;
    for (const SeqDesc& s : seqs) n += (s.seqlen_q + t.block_q - 1) / t.block_q;
    return n * a.kv_heads * ((group + t.heads_per_item - 1) / t.heads_per_item);
  };
  for (;;) {
    t.heads_per_item = static_cast<int32_t>(std::clamp<int64_t>(kItemRows / t.block_q, 1, group));
    if (count_items() >= 4 * threads || t.block_q <= 24) break;
    t.block_q = (t.block_q + 1) / 2;
  }
  return t;
}

void run_flash(const AttentionArgs& a, const std::vector<SeqDesc>& seqs, at::Tensor& out, at::Tensor& lse) {
  const FlashKernel& kernel = select_flash_kernel();
  FlashParams p{};
  p.dtype = elem_type(a.q.scalar_type());
  p.q = a.q.data_ptr();
  p.k = a.k.data_ptr();
  p.v = a.v.data_ptr();
  p.out = out.data_ptr();
  p.lse = a.return_lse ? lse.data_ptr<float>() : nullptr;
  const int64_t row = a.varlen ? 0 : 1;  // token axis of q/k/v/out
  p.q_row_stride = a.q.stride(row);
  p.q_head_stride = a.q.stride(row + 1);
  p.k_row_stride = a.k.stride(row);
  p.k_head_stride = a.k.stride(row + 1);
  p.v_row_stride = a.v.stride(row);
  p.v_head_stride = a.v.stride(row + 1);
  p.o_row_stride = out.stride(row);
  p.o_head_stride = out.stride(row + 1);
  p.lse_head_stride = a.varlen ? a.q.size(0) : a.seqlen_q;
  p.heads = static_cast<int32_t>(a.heads);
  p.kv_heads = static_cast<int32_t>(a.kv_heads);
  p.head_dim = static_cast<int32_t>(a.head_dim);
  p.head_dim_v = static_cast<int32_t>(a.head_dim_v);
  p.scale = static_cast<float>(a.scale);
  p.softcap = static_cast<float>(a.softcap);
  p.window_left = static_cast<int32_t>(a.window_left);
  p.window_right = static_cast<int32_t>(a.window_right);
  if (a.alibi_slopes.has_value()) {
    p.alibi = a.alibi_slopes->data_ptr<float>();
    p.alibi_seq_stride = a.alibi_slopes->dim() == 2 ? a.heads : 0;
  }
  p.seqs = seqs.data();
  p.num_seqs = static_cast<int32_t>(seqs.size());

  const int threads = std::max(1, at::get_num_threads());
  const FlashTiling tiling = choose_tiling(seqs, a, threads);
  const std::vector<WorkItem> items = make_work_items(seqs, a, tiling);
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
}

at::Tensor make_lse(const AttentionArgs& a, at::IntArrayRef shape) {
  return at::empty(a.return_lse ? shape : at::IntArrayRef{0}, a.q.options().dtype(at::kFloat));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> flash_attention_cpu(
    const at::Tensor& q,  // [batch, seqlen_q, heads, head_dim]
    const at::Tensor& k,  // [batch, seqlen_k, kv_heads, head_dim]
    const at::Tensor& v,  // [batch, seqlen_k, kv_heads, head_dim_v]
    std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [batch, heads]
    bool return_lse) {
  const AttentionArgs a =
      check_flash_attention_args(q, k, v, softmax_scale, causal, window_size, softcap, alibi_slopes, return_lse);
  at::Tensor out = at::empty({a.batch, a.seqlen_q, a.heads, a.head_dim_v}, a.q.options());
  at::Tensor lse = make_lse(a, {a.batch, a.heads, a.seqlen_q});
  std::vector<SeqDesc> seqs(a.batch);
  for (int64_t b = 0; b < a.batch; ++b) {
    seqs[b] = SeqDesc{b * a.q.stride(0),
                      b * a.k.stride(0),
                      b * a.v.stride(0),
                      b * out.stride(0),
                      b * a.heads * a.seqlen_q,
                      static_cast<int32_t>(a.seqlen_q),
                      static_cast<int32_t>(a.seqlen_k)};
  }
  run_flash(a, seqs, out, lse);
  return {out, lse};
}

std::tuple<at::Tensor, at::Tensor> flash_attention_varlen_cpu(
    const at::Tensor& q,             // [total_q, heads, head_dim]
    const at::Tensor& k,             // [total_k, kv_heads, head_dim]
    const at::Tensor& v,             // [total_k, kv_heads, head_dim_v]
    const at::Tensor& cu_seqlens_q,  // int32 [batch + 1]
    const at::Tensor& cu_seqlens_k,  // int32 [batch + 1]
    int64_t max_seqlen_q, int64_t max_seqlen_k, std::optional<double> softmax_scale, bool causal,
    at::IntArrayRef window_size, double softcap,
    const std::optional<at::Tensor>& alibi_slopes,  // fp32 [heads] or [batch, heads]
    bool return_lse) {
  const AttentionArgs a =
      check_flash_attention_varlen_args(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale,
                                        causal, window_size, softcap, alibi_slopes, return_lse);
  const int64_t total_q = a.q.size(0);
  at::Tensor out = at::empty({total_q, a.heads, a.head_dim_v}, a.q.options());
  at::Tensor lse = make_lse(a, {a.heads, total_q});
  const int32_t* cq = a.cu_seqlens_q.data_ptr<int32_t>();
  const int32_t* ck = a.cu_seqlens_k.data_ptr<int32_t>();
  std::vector<SeqDesc> seqs(a.batch);
  for (int64_t b = 0; b < a.batch; ++b) {
    seqs[b] = SeqDesc{cq[b] * a.q.stride(0), ck[b] * a.k.stride(0), ck[b] * a.v.stride(0), cq[b] * out.stride(0), cq[b],
                      cq[b + 1] - cq[b],     ck[b + 1] - ck[b]};
  }
  run_flash(a, seqs, out, lse);
  return {out, lse};
}

TORCH_LIBRARY_IMPL(ascend_attn, CPU, m) {
  m.impl("flash_attention", &flash_attention_cpu);
  m.impl("flash_attention_varlen", &flash_attention_varlen_cpu);
}

}  // namespace ascend_attn::cpu
