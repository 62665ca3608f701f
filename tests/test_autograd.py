"""ascend_attn/autograd.py: the ops without a backward (paged_attention, merge_attn_states, and flash_attn_varlen_func
over a paged cache, which runs paged_attention) raise on backward instead of leaving ``.grad`` at None, while forward
passes on tensors that require grad keep working. The differentiable ops are tested in
test_flash_attention_backward.py."""

from __future__ import annotations

import pytest
import torch
from reference import make_paged

import ascend_attn


def _leaf(*shape):
    return torch.randn(*shape, requires_grad=True)


def _paged():
    kc, vc, tables, ctx = make_paged([5, 9], 4, 2, 8, 8, torch.float32)
    return ascend_attn.paged_attention(_leaf(2, 4, 8), kc, vc, tables, ctx)


def _paged_varlen():
    kc, vc, tables, ctx = make_paged([5, 9], 4, 2, 8, 8, torch.float32)
    cu_q = torch.tensor([0, 2, 4], dtype=torch.int32)
    cu_k = torch.tensor([0, 5, 14], dtype=torch.int32)
    return ascend_attn.flash_attn_varlen_func(_leaf(4, 4, 8), kc, vc, cu_q, cu_k, 2, 9, block_table=tables)


def _merge():
    return ascend_attn.merge_attn_states(_leaf(3, 2, 8), torch.randn(2, 3), torch.randn(3, 2, 8), torch.randn(2, 3))[0]


@pytest.mark.parametrize("forward", [_paged, _paged_varlen, _merge], ids=lambda f: f.__name__[1:])
def test_backward_raises(forward):
    out = forward()
    assert out.requires_grad  # the forward itself works on inputs that require grad
    with pytest.raises(NotImplementedError, match=r"ascend_attn\.\w+ is forward-only: its backward is not implemented"):
        out.sum().backward()


def test_no_grad_forward_has_no_graph():
    with torch.no_grad():
        out = ascend_attn.flash_attn_func(_leaf(1, 5, 4, 8), _leaf(1, 5, 2, 8), _leaf(1, 5, 2, 8))
        merged = _merge()
    assert not out.requires_grad and out.grad_fn is None
    assert not merged.requires_grad and merged.grad_fn is None
