#include "common/attention_args.h"

#include <cmath>

#include "common/checks.h"

namespace ascend_attn {
namespace {

bool is_supported_dtype(at::ScalarType t) { return t == at::kFloat || t == at::kHalf || t == at::kBFloat16; }

// Last-dim contiguity is all the kernels need; other strides are passed through.
at::Tensor last_dim_contiguous(const at::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

// Checks shared by the BSND and TND layouts; `h` is the heads axis (2 for BSND, 1 for TND).
void check_qkv(AttentionArgs& a, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t h) {
  TORCH_CHECK(is_supported_dtype(q.scalar_type()), "q must be float32, float16 or bfloat16, got ", q.scalar_type());
  CHECK_SAME_DTYPE(k, q);
  CHECK_SAME_DTYPE(v, q);
  CHECK_SAME_DEVICE(k, q);
  CHECK_SAME_DEVICE(v, q);
  a.heads = q.size(h);
  a.kv_heads = k.size(h);
  a.head_dim = q.size(h + 1);
  a.head_dim_v = v.size(h + 1);
  TORCH_CHECK(a.heads >= 1, "q must have at least one head, got shape ", q.sizes());
  CHECK_INT32_SIZE(a.heads, "q's number of heads");
  TORCH_CHECK(v.size(h) == a.kv_heads, "v must have as many heads as k (", a.kv_heads, "), got ", v.size(h));
  TORCH_CHECK(a.kv_heads >= 1 && a.heads % a.kv_heads == 0,
              "Number of heads in key/value must divide number of heads in query: q has ", a.heads,
              " heads, k and v have ", a.kv_heads);
  TORCH_CHECK(k.size(h + 1) == a.head_dim, "k head_dim must equal q head_dim (", a.head_dim, "), got ", k.size(h + 1));
  TORCH_CHECK(a.head_dim >= 1 && a.head_dim <= kMaxHeadDim, "q head_dim must be in [1, ", kMaxHeadDim, "], got ",
              a.head_dim);
  TORCH_CHECK(a.head_dim_v >= 1 && a.head_dim_v <= kMaxHeadDim, "v head_dim must be in [1, ", kMaxHeadDim, "], got ",
              a.head_dim_v);
  a.q = last_dim_contiguous(q);
  a.k = last_dim_contiguous(k);
  a.v = last_dim_contiguous(v);
}

// Checks the values of cu_seqlens, read on the host.
void check_cu_seqlens(const at::Tensor& host, const char* name, int64_t total, int64_t max_seqlen,
                      const char* max_name) {
  const int32_t* p = host.data_ptr<int32_t>();
  const int64_t n = host.numel();
  TORCH_CHECK(p[0] == 0, name, "[0] must be 0, got ", p[0]);
  int64_t longest = 0;
  for (int64_t i = 1; i < n; ++i) {
    // A negative entry is almost always a cumulative sum that wrapped around when cast to int32: say so.
    TORCH_CHECK(p[i] >= 0, name, "[", i, "] = ", p[i], " is negative: the cumulative lengths must fit in int32 (did ",
                "their sum overflow 2^31 - 1?)");
    TORCH_CHECK(p[i] >= p[i - 1], name, " must be non-decreasing, but ", name, "[", i, "] = ", p[i], " < ", name, "[",
                i - 1, "] = ", p[i - 1]);
    longest = std::max<int64_t>(longest, p[i] - p[i - 1]);
  }
  TORCH_CHECK(p[n - 1] == total, name, "[-1] must equal the number of packed tokens (", total, "), got ", p[n - 1]);
  TORCH_CHECK(max_seqlen >= longest, max_name, " must be >= the longest sequence (", longest, "), got ", max_seqlen);
}

}  // namespace

void check_attention_options(AttentionArgs& a, std::optional<double> softmax_scale, bool causal,
                             at::IntArrayRef window_size, double softcap, const std::optional<at::Tensor>& alibi_slopes,
                             bool return_lse) {
  TORCH_CHECK(window_size.size() == 2, "window_size must be (left, right), got ", window_size);
  a.window_left = window_size[0];
  a.window_right = window_size[1];
  TORCH_CHECK(a.window_left >= -1 && a.window_right >= -1,
              "window_size entries must be >= 0, or -1 for unbounded, got ", window_size);
  // A side of 2^31 - 1 or more covers every key of any sequence the executors accept (lengths < 2^31), so it is
  // unbounded; normalizing it here keeps the executors' int32 window fields exact instead of wrapping.
  constexpr int64_t kWindowUnbounded = std::numeric_limits<int32_t>::max();
  if (a.window_left >= kWindowUnbounded) a.window_left = -1;
  if (a.window_right >= kWindowUnbounded) a.window_right = -1;
  if (causal) a.window_right = 0;  // causal is the window (left, 0)
  a.scale = softmax_scale.has_value() ? *softmax_scale : 1.0 / std::sqrt(static_cast<double>(a.head_dim));
  TORCH_CHECK(std::isfinite(a.scale), "softmax_scale must be finite, got ", a.scale);
  TORCH_CHECK(std::isfinite(softcap) && softcap >= 0.0, "softcap must be >= 0 (0 disables it), got ", softcap);
  a.softcap = softcap;
  a.return_lse = return_lse;
  if (alibi_slopes.has_value()) {
    const at::Tensor& s = *alibi_slopes;
    TORCH_CHECK(s.scalar_type() == at::kFloat, "alibi_slopes must be float32, got ", s.scalar_type());
    TORCH_CHECK(s.device() == a.q.device(), "alibi_slopes must be on the same device as q (", a.q.device(), "), got ",
                s.device());
    bool per_head = s.dim() == 1 && s.size(0) == a.heads;
    bool per_batch = s.dim() == 2 && s.size(0) == a.batch && s.size(1) == a.heads;
    TORCH_CHECK(per_head || per_batch, "alibi_slopes must have shape [heads] = [", a.heads, "] or [batch, heads] = [",
                a.batch, ", ", a.heads, "], got ", s.sizes());
    a.alibi_slopes = s.contiguous();
  }
}

AttentionArgs check_flash_attention_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         std::optional<double> softmax_scale, bool causal, at::IntArrayRef window_size,
                                         double softcap, const std::optional<at::Tensor>& alibi_slopes,
                                         bool return_lse) {
  AttentionArgs a;
  CHECK_DIM(q, 4);
  CHECK_DIM(k, 4);
  CHECK_DIM(v, 4);
  a.batch = q.size(0);
  a.seqlen_q = q.size(1);
  a.seqlen_k = k.size(1);
  CHECK_SIZE(k, 0, a.batch);
  CHECK_SIZE(v, 0, a.batch);
  CHECK_SIZE(v, 1, a.seqlen_k);
  CHECK_INT32_SIZE(a.batch, "q's batch size (dim 0)");
  CHECK_INT32_SIZE(a.seqlen_q, "q's seqlen_q (dim 1)");
  CHECK_INT32_SIZE(a.seqlen_k, "k's seqlen_k (dim 1)");
  check_qkv(a, q, k, v, 2);
  check_attention_options(a, softmax_scale, causal, window_size, softcap, alibi_slopes, return_lse);
  return a;
}

AttentionArgs check_flash_attention_varlen_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                                                int64_t max_seqlen_q, int64_t max_seqlen_k,
                                                std::optional<double> softmax_scale, bool causal,
                                                at::IntArrayRef window_size, double softcap,
                                                const std::optional<at::Tensor>& alibi_slopes, bool return_lse) {
  AttentionArgs a;
  a.varlen = true;
  CHECK_DIM(q, 3);
  CHECK_DIM(k, 3);
  CHECK_DIM(v, 3);
  CHECK_SIZE(v, 0, k.size(0));
  check_qkv(a, q, k, v, 1);
  CHECK_DIM(cu_seqlens_q, 1);
  CHECK_DIM(cu_seqlens_k, 1);
  CHECK_DTYPE(cu_seqlens_q, at::kInt);
  CHECK_DTYPE(cu_seqlens_k, at::kInt);
  CHECK_SAME_DEVICE(cu_seqlens_q, q);
  CHECK_SAME_DEVICE(cu_seqlens_k, q);
  TORCH_CHECK(cu_seqlens_q.numel() >= 2, "cu_seqlens_q must have batch + 1 >= 2 entries, got ", cu_seqlens_q.numel());
  TORCH_CHECK(cu_seqlens_k.numel() == cu_seqlens_q.numel(), "cu_seqlens_k must have as many entries as cu_seqlens_q (",
              cu_seqlens_q.numel(), "), got ", cu_seqlens_k.numel());
  // cu_seqlens are int32, so they cannot index more tokens than this; checked first so an overflowed cumulative sum
  // is reported as such rather than as a mismatch of the last entry.
  CHECK_INT32_SIZE(q.size(0), "q's number of packed tokens (dim 0; cu_seqlens_q is int32)");
  CHECK_INT32_SIZE(k.size(0), "k's number of packed tokens (dim 0; cu_seqlens_k is int32)");
  a.batch = cu_seqlens_q.numel() - 1;
  a.cu_seqlens_q = cu_seqlens_q.contiguous();
  a.cu_seqlens_k = cu_seqlens_k.contiguous();
  // One small copy each when they live on a device; the Ascend C tiling reads them again from these.
  a.cu_seqlens_q_host = a.cu_seqlens_q.device().is_cpu() ? a.cu_seqlens_q : a.cu_seqlens_q.cpu();
  a.cu_seqlens_k_host = a.cu_seqlens_k.device().is_cpu() ? a.cu_seqlens_k : a.cu_seqlens_k.cpu();
  check_cu_seqlens(a.cu_seqlens_q_host, "cu_seqlens_q", q.size(0), max_seqlen_q, "max_seqlen_q");
  check_cu_seqlens(a.cu_seqlens_k_host, "cu_seqlens_k", k.size(0), max_seqlen_k, "max_seqlen_k");
  a.seqlen_q = max_seqlen_q;
  a.seqlen_k = max_seqlen_k;
  check_attention_options(a, softmax_scale, causal, window_size, softcap, alibi_slopes, return_lse);
  return a;
}

}  // namespace ascend_attn
