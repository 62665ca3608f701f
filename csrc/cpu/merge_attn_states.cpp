// CPU executor of merge_attn_states: the same lse merge the split-KV path uses (attention_runner.h).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "common/paged_args.h"
#include "cpu/attention_runner.h"

namespace ascend_attn::cpu {
namespace {

// flash-attn 2 and vLLM mark a side that saw no key with lse +inf, this library with -inf: both mean "empty".
float empty_side(float lse) { return lse == INFINITY ? -INFINITY : lse; }

}  // namespace

std::tuple<at::Tensor, at::Tensor> merge_attn_states_cpu(const at::Tensor& out_a,  // [tokens, heads, head_dim]
                                                         const at::Tensor& lse_a,  // fp32 [heads, tokens]
                                                         const at::Tensor& out_b,  // [tokens, heads, head_dim]
                                                         const at::Tensor& lse_b)  // fp32 [heads, tokens]
{
  check_merge_attn_states_args(out_a, lse_a, out_b, lse_b);
  const at::Tensor oa = out_a.to(at::kFloat).contiguous(), ob = out_b.to(at::kFloat).contiguous();
  const at::Tensor la = lse_a.contiguous(), lb = lse_b.contiguous();
  at::Tensor out = at::empty(out_a.sizes(), out_a.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor lse = at::empty(lse_a.sizes(), lse_a.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t tokens = out_a.size(0), heads = out_a.size(1), dim = out_a.size(2);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "merge_attn_states", [&] {
    at::parallel_for(0, tokens * heads, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t t = i / heads, h = i % heads;
        const float* outs[2] = {oa.data_ptr<float>() + i * dim, ob.data_ptr<float>() + i * dim};
        const float lses[2] = {empty_side(la.data_ptr<float>()[h * tokens + t]),
                               empty_side(lb.data_ptr<float>()[h * tokens + t])};
        merge_partials(2, outs, lses, dim, out.data_ptr<scalar_t>() + i * dim, lse.data_ptr<float>() + h * tokens + t);
      }
    });
  });
  return {out, lse};
}

TORCH_LIBRARY_IMPL(ascend_attn, CPU, m) { m.impl("merge_attn_states", &merge_attn_states_cpu); }

}  // namespace ascend_attn::cpu
