#include "common/paged_args.h"

#include <ATen/MemoryOverlap.h>
#include <ATen/ops/arange.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "common/checks.h"
#include "common/visible_keys.h"

namespace ascend_attn {
namespace {

bool is_float_type(at::ScalarType t) { return t == at::kFloat || t == at::kHalf || t == at::kBFloat16; }

at::Tensor host_int32(const at::Tensor& t) { return (t.device().is_cpu() ? t : t.cpu()).contiguous(); }

// True when every element of t has memory of its own (no expanded or overlapping as_strided view), which a tensor
// written in place needs. A sufficient test that also holds for non-dense strides: taking the dims of size > 1 by
// increasing stride, each stride must exceed the farthest offset the smaller dims reach.
bool elements_own_memory(const at::Tensor& t) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size)
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) > 1) dims.emplace_back(t.stride(d), t.size(d));
  std::sort(dims.begin(), dims.end());
  int64_t reach = 0;
  for (const auto& [stride, size] : dims) {
    if (stride <= reach) return false;
    reach += stride * (size - 1);
  }
  return true;
}

// Torch's in-place ops refuse the same aliasing: a written tensor whose elements share memory, or an input that
// shares memory with a written tensor.
void check_written_in_place(const at::Tensor& cache, const char* name) {
  TORCH_CHECK(elements_own_memory(cache), name, " is written in place, so each of its elements needs memory of its ",
              "own; got strides ", cache.strides(), " for shape ", cache.sizes(),
              " (an expanded or overlapping view): pass a clone()");
}

void check_no_shared_memory(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  const at::MemOverlapStatus status = at::get_overlap_status(a, b);
  TORCH_CHECK(status != at::MemOverlapStatus::Full && status != at::MemOverlapStatus::Partial, a_name, " and ", b_name,
              " share memory, and ", b_name, " is written in place: pass separate tensors (or a clone())");
}

}  // namespace

PagedArgs check_paged_attention_args(const at::Tensor& q, const at::Tensor& key_cache, const at::Tensor& value_cache,
                                     const at::Tensor& block_tables, const at::Tensor& context_lens,
                                     const std::optional<at::Tensor>& cu_seqlens_q, std::optional<double> softmax_scale,
                                     bool causal, at::IntArrayRef window_size, double softcap,
                                     const std::optional<at::Tensor>& alibi_slopes, bool return_lse) {
  PagedArgs p;
  AttentionArgs& a = p.attn;
  CHECK_DIM(q, 3);
  CHECK_DIM(key_cache, 4);
  CHECK_DIM(value_cache, 4);
  CHECK_DIM(block_tables, 2);
  CHECK_DIM(context_lens, 1);
  TORCH_CHECK(is_float_type(q.scalar_type()), "q must be float32, float16 or bfloat16, got ", q.scalar_type());
  CHECK_SAME_DTYPE(key_cache, q);
  CHECK_SAME_DTYPE(value_cache, q);
  CHECK_DTYPE(block_tables, at::kInt);
  CHECK_DTYPE(context_lens, at::kInt);
  CHECK_SAME_DEVICE(key_cache, q);
  CHECK_SAME_DEVICE(value_cache, q);
  CHECK_SAME_DEVICE(block_tables, q);
  CHECK_SAME_DEVICE(context_lens, q);
  p.num_blocks = key_cache.size(0);
  p.block_size = key_cache.size(1);
  a.heads = q.size(1);
  a.kv_heads = key_cache.size(2);
  a.head_dim = q.size(2);
  a.head_dim_v = value_cache.size(3);
  CHECK_SIZE(value_cache, 0, p.num_blocks);
  CHECK_SIZE(value_cache, 1, p.block_size);
  CHECK_SIZE(value_cache, 2, a.kv_heads);
  TORCH_CHECK(p.block_size >= 1, "key_cache block_size (dim 1) must be >= 1, got ", p.block_size);
  CHECK_INT32_SIZE(p.block_size, "key_cache block_size (dim 1)");
  CHECK_INT32_SIZE(q.size(0), "q's number of tokens (dim 0; cu_seqlens_q is int32)");
  CHECK_INT32_SIZE(a.heads, "q's number of heads");
  TORCH_CHECK(a.heads >= 1 && a.kv_heads >= 1 && a.heads % a.kv_heads == 0,
              "Number of heads in key/value must divide number of heads in query: q has ", a.heads,
              " heads, key_cache has ", a.kv_heads);
  TORCH_CHECK(key_cache.size(3) == a.head_dim, "key_cache head_dim must equal q head_dim (", a.head_dim, "), got ",
              key_cache.size(3));
  TORCH_CHECK(a.head_dim >= 1 && a.head_dim <= kMaxHeadDim, "q head_dim must be in [1, ", kMaxHeadDim, "], got ",
              a.head_dim);
  TORCH_CHECK(a.head_dim_v >= 1 && a.head_dim_v <= kMaxHeadDim, "value_cache head_dim must be in [1, ", kMaxHeadDim,
              "], got ", a.head_dim_v);
  const int64_t num_seqs = context_lens.size(0);
  CHECK_SIZE(block_tables, 0, num_seqs);
  p.max_blocks_per_seq = block_tables.size(1);
  a.batch = num_seqs;
  a.varlen = true;
  a.q = q.stride(-1) == 1 ? q : q.contiguous();
  a.k = key_cache.stride(-1) == 1 ? key_cache : key_cache.contiguous();
  a.v = value_cache.stride(-1) == 1 ? value_cache : value_cache.contiguous();
  p.block_tables = block_tables.stride(1) == 1 ? block_tables : block_tables.contiguous();
  p.context_lens = host_int32(context_lens);
  if (cu_seqlens_q.has_value()) {
    // The CHECK_* macros print the expression they were given, so an unwrapped optional gets its messages written out.
    const at::Tensor& cu = *cu_seqlens_q;
    TORCH_CHECK(cu.dim() == 1, "cu_seqlens_q must have 1 dimension, got ", cu.dim(), " (shape ", cu.sizes(), ")");
    TORCH_CHECK(cu.scalar_type() == at::kInt, "cu_seqlens_q must have dtype ", at::kInt, ", got ", cu.scalar_type());
    TORCH_CHECK(cu.device() == q.device(), "cu_seqlens_q must be on the same device as q (", q.device(), "), got ",
                cu.device());
    TORCH_CHECK(cu.numel() == num_seqs + 1, "cu_seqlens_q must have num_seqs + 1 = ", num_seqs + 1, " entries, got ",
                cu.numel());
    p.cu_seqlens_q = host_int32(cu);
  } else {
    TORCH_CHECK(q.size(0) == num_seqs, "without cu_seqlens_q, q holds one query per sequence: q.size(0) must be ",
                num_seqs, " (context_lens.size(0)), got ", q.size(0));
    p.cu_seqlens_q = at::arange(num_seqs + 1, at::TensorOptions().dtype(at::kInt));
  }
  check_attention_options(a, softmax_scale, causal, window_size, softcap, alibi_slopes, return_lse);

  const int32_t* cu = p.cu_seqlens_q.data_ptr<int32_t>();
  const int32_t* ctx = p.context_lens.data_ptr<int32_t>();
  TORCH_CHECK(cu[0] == 0, "cu_seqlens_q[0] must be 0, got ", cu[0]);
  TORCH_CHECK(cu[num_seqs] == q.size(0), "cu_seqlens_q[-1] must equal q.size(0) (", q.size(0), "), got ", cu[num_seqs]);
  const at::Tensor tables = host_int32(p.block_tables);
  const int32_t* table = tables.data_ptr<int32_t>();
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t q_len = cu[s + 1] - cu[s];
    TORCH_CHECK(q_len >= 0, "cu_seqlens_q must be non-decreasing, but cu_seqlens_q[", s + 1, "] < cu_seqlens_q[", s,
                "]");
    // More queries than keys is allowed (flash-attn computes it): the first queries then sit before position 0 and,
    // under a causal mask, see no key.
    TORCH_CHECK(ctx[s] >= 0, "context_lens[", s, "] = ", ctx[s], " must be >= 0");
    TORCH_CHECK(ctx[s] <= p.max_blocks_per_seq * p.block_size, "context_lens[", s, "] = ", ctx[s],
                " exceeds block_tables capacity (", p.max_blocks_per_seq, " blocks of ", p.block_size, ")");
    if (q_len == 0) continue;
    const auto [lo, hi] = key_span(0, q_len, q_len, ctx[s], a.window_left, a.window_right);
    for (int64_t b = lo / p.block_size; b * p.block_size < hi; ++b) {
      const int32_t block = table[s * p.max_blocks_per_seq + b];
      TORCH_CHECK(block >= 0 && block < p.num_blocks, "block_tables[", s, "][", b, "] = ", block,
                  " is out of range [0, ", p.num_blocks, ") but holds keys of sequence ", s);
    }
  }
  return p;
}

void check_reshape_and_cache_args(const at::Tensor& key, const at::Tensor& value, const at::Tensor& key_cache,
                                  const at::Tensor& value_cache, const at::Tensor& slot_mapping) {
  CHECK_DIM(key, 3);
  CHECK_DIM(value, 3);
  CHECK_DIM(key_cache, 4);
  CHECK_DIM(value_cache, 4);
  CHECK_DIM(slot_mapping, 1);
  TORCH_CHECK(slot_mapping.scalar_type() == at::kInt || slot_mapping.scalar_type() == at::kLong,
              "slot_mapping must be int32 or int64, got ", slot_mapping.scalar_type());
  TORCH_CHECK(is_float_type(key.scalar_type()), "key must be float32, float16 or bfloat16, got ", key.scalar_type());
  CHECK_SAME_DTYPE(key_cache, key);
  CHECK_SAME_DTYPE(value, key);
  CHECK_SAME_DTYPE(value_cache, key);
  CHECK_SAME_DEVICE(value, key);
  CHECK_SAME_DEVICE(key_cache, key);
  CHECK_SAME_DEVICE(value_cache, key);
  CHECK_SAME_DEVICE(slot_mapping, key);
  const int64_t tokens = key.size(0);
  CHECK_SIZE(value, 0, tokens);
  CHECK_SIZE(slot_mapping, 0, tokens);
  CHECK_SIZE(key_cache, 2, key.size(1));
  CHECK_SIZE(key_cache, 3, key.size(2));
  CHECK_SIZE(value_cache, 0, key_cache.size(0));
  CHECK_SIZE(value_cache, 1, key_cache.size(1));
  CHECK_SIZE(value_cache, 2, value.size(1));
  CHECK_SIZE(value_cache, 3, value.size(2));
  TORCH_CHECK(key_cache.stride(3) == 1 && value_cache.stride(3) == 1,
              "key_cache and value_cache must have a contiguous last dimension (they are written in place)");
  check_written_in_place(key_cache, "key_cache");
  check_written_in_place(value_cache, "value_cache");
  check_no_shared_memory(value_cache, "value_cache", key_cache, "key_cache");
  for (const auto& [input, input_name] : {std::pair{&key, "key"}, std::pair{&value, "value"}}) {
    check_no_shared_memory(*input, input_name, key_cache, "key_cache");
    check_no_shared_memory(*input, input_name, value_cache, "value_cache");
  }
  const int64_t slots = key_cache.size(0) * key_cache.size(1);
  const at::Tensor host = (slot_mapping.device().is_cpu() ? slot_mapping : slot_mapping.cpu()).to(at::kLong);
  const int64_t* slot = host.data_ptr<int64_t>();
  std::vector<std::pair<int64_t, int64_t>> writes;  // (slot, token) of every non-padding token
  writes.reserve(tokens);
  for (int64_t t = 0; t < tokens; ++t) {
    TORCH_CHECK(slot[t] < slots, "slot_mapping[", t, "] = ", slot[t], " is out of range: the caches hold ", slots,
                " slots (", key_cache.size(0), " blocks of ", key_cache.size(1), "); negative slots mark padding");
    if (slot[t] >= 0) writes.emplace_back(slot[t], t);
  }
  // Two tokens writing one slot would leave a winner that depends on the executor's scheduling (threads, simulated
  // cores, NPU cores), so every executor rejects it here, before anything is written.
  std::sort(writes.begin(), writes.end());
  for (size_t i = 1; i < writes.size(); ++i) {
    TORCH_CHECK(writes[i].first != writes[i - 1].first, "slot_mapping[", writes[i].second, "] = ", writes[i].first,
                " repeats slot_mapping[", writes[i - 1].second, "]: each slot can be written by one token per call");
  }
}

void check_merge_attn_states_args(const at::Tensor& out_a, const at::Tensor& lse_a, const at::Tensor& out_b,
                                  const at::Tensor& lse_b) {
  CHECK_DIM(out_a, 3);
  CHECK_DIM(out_b, 3);
  CHECK_DIM(lse_a, 2);
  CHECK_DIM(lse_b, 2);
  TORCH_CHECK(is_float_type(out_a.scalar_type()), "out_a must be float32, float16 or bfloat16, got ",
              out_a.scalar_type());
  CHECK_SAME_DTYPE(out_b, out_a);
  CHECK_DTYPE(lse_a, at::kFloat);
  CHECK_DTYPE(lse_b, at::kFloat);
  CHECK_SAME_DEVICE(out_b, out_a);
  CHECK_SAME_DEVICE(lse_a, out_a);
  CHECK_SAME_DEVICE(lse_b, out_a);
  TORCH_CHECK(out_b.sizes() == out_a.sizes(), "out_b must have the shape of out_a ", out_a.sizes(), ", got ",
              out_b.sizes());
  TORCH_CHECK(lse_a.size(0) == out_a.size(1) && lse_a.size(1) == out_a.size(0),
              "lse_a must have shape [heads, tokens] = [", out_a.size(1), ", ", out_a.size(0), "], got ",
              lse_a.sizes());
  TORCH_CHECK(lse_b.sizes() == lse_a.sizes(), "lse_b must have the shape of lse_a ", lse_a.sizes(), ", got ",
              lse_b.sizes());
}

}  // namespace ascend_attn
