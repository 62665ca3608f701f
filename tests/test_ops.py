"""The op entries of ascend_attn/ops.py: one tensor on another device raises naming it, on every op.

A ``meta`` tensor among CPU tensors dispatches to the fake kernels (the Meta key wins over CPU), which used to return
uninitialized CPU memory (or, for reshape_and_cache, silently write nothing): they reject it as torch's own ops do.
"""

from __future__ import annotations

import pytest
import torch
from reference import make_paged, make_varlen

import ascend_attn


def flash_args():
    q, k, v = torch.randn(1, 4, 4, 8), torch.randn(1, 4, 2, 8), torch.randn(1, 4, 2, 8)
    return ascend_attn.flash_attention, dict(q=q, k=k, v=v, alibi_slopes=torch.rand(4))


def varlen_args():
    q, k, v, cu_q, cu_k = make_varlen([2, 3], [4, 3], 4, 2, 8, 8, torch.float32)
    return ascend_attn.flash_attention_varlen, dict(
        q=q, k=k, v=v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, max_seqlen_q=3, max_seqlen_k=4, alibi_slopes=torch.rand(4)
    )


def paged_args():
    kc, vc, tables, ctx = make_paged([5, 9], 4, 2, 8, 8, torch.float32)
    cu = torch.tensor([0, 1, 3], dtype=torch.int32)
    return ascend_attn.paged_attention, dict(
        q=torch.randn(3, 4, 8), key_cache=kc, value_cache=vc, block_tables=tables, context_lens=ctx, cu_seqlens_q=cu,
        alibi_slopes=torch.rand(4),
    )  # fmt: skip


def reshape_args():
    return ascend_attn.reshape_and_cache, dict(
        key=torch.randn(2, 2, 8), value=torch.randn(2, 2, 8), key_cache=torch.zeros(2, 4, 2, 8),
        value_cache=torch.zeros(2, 4, 2, 8), slot_mapping=torch.tensor([0, 5]),
    )  # fmt: skip


def merge_args():
    return ascend_attn.merge_attn_states, dict(
        out_a=torch.randn(3, 2, 8), lse_a=torch.randn(2, 3), out_b=torch.randn(3, 2, 8), lse_b=torch.randn(2, 3)
    )


CASES = [
    (flash_args, "q", ["k", "v", "alibi_slopes"]),
    (varlen_args, "q", ["k", "v", "cu_seqlens_q", "cu_seqlens_k", "alibi_slopes"]),
    (paged_args, "q", ["key_cache", "value_cache", "block_tables", "context_lens", "cu_seqlens_q", "alibi_slopes"]),
    (reshape_args, "key", ["value", "key_cache", "value_cache", "slot_mapping"]),
    (merge_args, "out_a", ["lse_a", "out_b", "lse_b"]),
]
PARAMS = [(make, ref, name) for make, ref, names in CASES for name in names]


@pytest.mark.parametrize("make, ref, name", PARAMS, ids=[f"{m.__name__[:-5]}-{n}" for m, _, n in PARAMS])
def test_one_tensor_on_meta_raises_naming_it(make, ref, name):
    op, args = make()
    args[name] = args[name].to("meta")
    written = [t.clone() for key, t in args.items() if key.endswith("cache") and t.device.type == "cpu"]
    with pytest.raises(RuntimeError, match=rf"{name} must be on the same device as {ref} \(cpu\), got meta"):
        op(**args)
    after = [t for key, t in args.items() if key.endswith("cache") and t.device.type == "cpu"]
    for a, b in zip(after, written, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def test_all_meta_still_computes_shapes():
    """Only mixed devices are rejected: all-meta inputs (shape propagation) keep working."""
    op, args = paged_args()
    out = op(**{k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in args.items()})
    assert out.device.type == "meta" and out.shape == (3, 4, 8)
