"""The ops on NPU tensors against the CPU references: the simulator grids, run on a real Ascend device.

Needs an ascend_attn built by scripts/build.sh, torch_npu, CANN and a device; skipped (one reason line) otherwise.
"""

from __future__ import annotations

import pytest
import torch

import ascend_attn

try:
    import torch_npu  # noqa: F401  (registers the npu device)
except Exception as error:  # ImportError without the package; OSError/RuntimeError without CANN
    pytest.skip(f"torch_npu unavailable ({type(error).__name__}): NPU tests skipped", allow_module_level=True)
if not torch.npu.is_available():
    pytest.skip("no Ascend NPU device: NPU tests skipped", allow_module_level=True)
if not torch._C._dispatch_has_kernel_for_dispatch_key("ascend_attn::paged_attention", "PrivateUse1"):
    pytest.skip("ascend_attn was built without NPU support (run scripts/build.sh)", allow_module_level=True)

from conftest import assert_lse_close, assert_out_close  # noqa: E402
from reference import attention_varlen_ref, make_paged, make_varlen, paged_attention_ref  # noqa: E402
from test_sim_flash_attention import CASES as FLASH_CASES  # noqa: E402
from test_sim_paged_attention import CASES as PAGED_CASES  # noqa: E402

DTYPES = [torch.float16, torch.bfloat16]


def npu(*tensors):
    return [t.npu() if t is not None else None for t in tensors]


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16"])
@pytest.mark.parametrize("case", FLASH_CASES, ids=[f"case{i}" for i in range(len(FLASH_CASES))])
def test_flash_attention_varlen(case, dtype):
    q_lens, k_lens, heads, kv_heads, d, dv, options, _ = case
    q, k, v, cu_q, cu_k = make_varlen(q_lens, k_lens, heads, kv_heads, d, dv, dtype)
    out, lse = ascend_attn.flash_attention_varlen(*npu(q, k, v, cu_q, cu_k), max(q_lens), max(k_lens),
                                                  return_lse=True, **options)  # fmt: skip
    ref, ref_lse = attention_varlen_ref(q.float(), k.float(), v.float(), cu_q, cu_k, **options)
    ref_lowp, _ = attention_varlen_ref(q, k, v, cu_q, cu_k, upcast=False, **options)
    assert_out_close(out.cpu(), ref, ref_lowp)
    assert_lse_close(lse.cpu(), ref_lse, atol=2e-3)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16"])
def test_flash_attention_bsnd(dtype):
    q, k, v = (torch.randn(2, 97, 4, 64).to(dtype) for _ in range(3))
    out, lse = ascend_attn.flash_attention(*npu(q, k, v), causal=True, return_lse=True)
    cpu_out, cpu_lse = ascend_attn.flash_attention(q.float(), k.float(), v.float(), causal=True, return_lse=True)
    assert_out_close(out.cpu(), cpu_out, ascend_attn.flash_attention(q, k, v, causal=True)[0])
    assert_lse_close(lse.cpu(), cpu_lse, atol=2e-3)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16"])
@pytest.mark.parametrize("case", PAGED_CASES, ids=[f"case{i}" for i in range(len(PAGED_CASES))])
def test_paged_attention(case, dtype):
    lens, q_lens, block_size, heads, kv_heads, d, options, _, _ = case
    kc, vc, tables, ctx = make_paged(lens, block_size, kv_heads, d, d, dtype)
    cu = None if q_lens is None else torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    q = torch.randn(len(lens) if q_lens is None else sum(q_lens), heads, d).to(dtype)
    out, lse = ascend_attn.paged_attention(*npu(q, kc, vc, tables, ctx), cu_seqlens_q=npu(cu)[0], return_lse=True,
                                           **options)  # fmt: skip
    ref, ref_lse = paged_attention_ref(q.float(), kc.float(), vc.float(), tables, ctx, cu, **options)
    ref_lowp, _ = paged_attention_ref(q, kc, vc, tables, ctx, cu, upcast=False, **options)
    assert_out_close(out.cpu(), ref, ref_lowp)
    assert_lse_close(lse.cpu(), ref_lse, atol=2e-3)


def test_reshape_and_cache_and_merge():
    key, value = torch.randn(6, 2, 32).half(), torch.randn(6, 2, 48).half()
    kc, vc = torch.zeros(4, 16, 2, 32).half(), torch.zeros(4, 16, 2, 48).half()
    slots = torch.tensor([5, -1, 63, 0, -7, 17], dtype=torch.int64)
    kc_npu, vc_npu = npu(kc, vc)
    ascend_attn.reshape_and_cache(*npu(key, value), kc_npu, vc_npu, slots.npu())
    ascend_attn.reshape_and_cache(key, value, kc, vc, slots)
    assert torch.equal(kc_npu.cpu(), kc) and torch.equal(vc_npu.cpu(), vc)
    oa, ob = torch.randn(5, 3, 16).half(), torch.randn(5, 3, 16).half()
    la, lb = torch.randn(3, 5), torch.randn(3, 5)
    la[0, 0] = lb[0, 0] = float("-inf")
    out, lse = ascend_attn.merge_attn_states(*npu(oa, la, ob, lb))
    ref, ref_lse = ascend_attn.merge_attn_states(oa, la, ob, lb)
    torch.testing.assert_close(out.cpu(), ref, atol=2e-3, rtol=0)
    assert_lse_close(lse.cpu(), ref_lse)
