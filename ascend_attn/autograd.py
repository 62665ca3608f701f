"""Autograd of the attention ops — not implemented yet, so a backward through them raises.

Without an Autograd kernel, the dispatcher's fallback for the ops only warns and leaves the inputs' ``.grad`` at None:
a training loop would silently not learn. This is the one place the backward ops plug into: every forward op below
gets an Autograd kernel, so every entry point (the ops, the flash-attn API, the transformers integration) behaves the
same. (``torch.library.register_autograd`` would be the one-liner, but it refuses ops with keyword-only tensors, such
as paged_attention's ``cu_seqlens_q`` and ``alibi_slopes``; these kernels do what it generates.)
"""

from __future__ import annotations

import torch
from torch import Tensor

# The differentiable forward ops; reshape_and_cache only writes caches (a mutation, not a differentiable function).
FORWARD_OPS = ("flash_attention", "flash_attention_varlen", "paged_attention", "merge_attn_states")

_lib = torch.library.Library("ascend_attn", "IMPL")  # kept alive: the registrations last as long as it does


class _ForwardOnly(torch.autograd.Function):
    """Runs the op (``compute``) with the inputs that require grad as its autograd parents; the backward raises."""

    @staticmethod
    def forward(ctx, op: str, compute, *parents: Tensor):
        ctx.op = op
        return compute()

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError(
            f"ascend_attn.{ctx.op} is forward-only: its backward is not implemented yet, so gradients cannot flow "
            "through it. Run it under torch.no_grad() (or on detached inputs) for inference; train with PyTorch SDPA"
        )


def _autograd_kernel(name: str):
    op = getattr(torch.ops.ascend_attn, name).default

    def kernel(keyset, *args, **kwargs):
        def compute():
            return op.redispatch(keyset & torch._C._after_autograd_keyset, *args, **kwargs)

        parents = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor) and a.requires_grad]
        if not parents or not torch.is_grad_enabled():
            return compute()
        return _ForwardOnly.apply(name, compute, *parents)

    return kernel


for _name in FORWARD_OPS:
    _lib.impl(_name, _autograd_kernel(_name), "Autograd", with_keyset=True)
