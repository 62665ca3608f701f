"""ascend_attn/autograd.py: until the backward ops exist, a backward through any attention op raises (it used to leave
``.grad`` at None with only a warning), while forward passes on tensors that require grad keep working."""

from __future__ import annotations

import pytest
import torch
from reference import make_paged, make_varlen

import ascend_attn


def _leaf(*shape):
    return torch.randn(*shape, requires_grad=True)


def _flash():
    return ascend_attn.flash_attention(_leaf(1, 5, 4, 8), _leaf(1, 5, 2, 8), _leaf(1, 5, 2, 8), causal=True)[0]


def _flash_attn_func():
    return ascend_attn.flash_attn_func(_leaf(1, 5, 4, 8), _leaf(1, 5, 2, 8), _leaf(1, 5, 2, 8))


def _varlen():
    q, k, v, cu_q, cu_k = make_varlen([2, 3], [4, 3], 4, 2, 8, 8, torch.float32)
    return ascend_attn.flash_attn_varlen_func(q.requires_grad_(), k, v, cu_q, cu_k, 3, 4)


def _paged():
    kc, vc, tables, ctx = make_paged([5, 9], 4, 2, 8, 8, torch.float32)
    return ascend_attn.paged_attention(_leaf(2, 4, 8), kc, vc, tables, ctx)


def _merge():
    return ascend_attn.merge_attn_states(_leaf(3, 2, 8), torch.randn(2, 3), torch.randn(3, 2, 8), torch.randn(2, 3))[0]


@pytest.mark.parametrize("forward", [_flash, _flash_attn_func, _varlen, _paged, _merge], ids=lambda f: f.__name__[1:])
def test_backward_raises(forward):
    out = forward()
    assert out.requires_grad  # the forward itself works on inputs that require grad
    with pytest.raises(NotImplementedError, match=r"ascend_attn\.\w+ is forward-only: its backward is not implemented"):
        out.sum().backward()


def test_no_grad_forward_has_no_graph():
    with torch.no_grad():
        out = _flash()
    assert not out.requires_grad and out.grad_fn is None
