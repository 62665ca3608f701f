"""Autograd of the attention ops: ``flash_attention`` and ``flash_attention_varlen`` differentiate on every executor.

- The ops: ``torch.library.register_autograd`` on both, whose backward runs ``flash_attention_backward`` /
  ``flash_attention_varlen_backward`` (FlashAttention-2: P recomputed from q, k and lse). The backward needs the
  forward's lse. Every Python entry point (:func:`ascend_attn.flash_attention` and ``flash_attention_varlen``, the
  flash-attn API, the transformers integration) asks the op for lse whenever q, k or v require grad, and hands the
  caller the empty lse it asked for when it did not; so lse is saved and the backward is one backward op. Only a raw
  ``torch.ops.ascend_attn.flash_attention(..., return_lse=False)`` on tensors that require grad leaves no lse to save:
  its backward first recomputes lse with one more forward. (The op itself cannot return an lse it was not asked for:
  its schema's outputs are what the caller sees.) ``deterministic`` is taken from
  ``torch.are_deterministic_algorithms_enabled()``.
- The flash-attn API (``flash_attn_func``, ``flash_attn_varlen_func``): :class:`FlashAttnFunc` and
  :class:`FlashAttnVarlenFunc` below, as flash-attn's own autograd functions: the forward always asks the op for lse
  (no recompute), and flash-attn's ``deterministic=`` argument reaches the backward op, which the op's own arguments
  could not carry.
- Everything built on those (the transformers integration, ``torch.compile`` training graphs through aot_autograd).

Gradients: q, k and v (for GQA / MQA, dk and dv summed over the q heads of each kv head), with softcap, alibi, causal
and window masks applied as in the forward; rows that see no key get zero gradients. lse is returned as a
non-differentiable output (as in flash-attn) and alibi_slopes get no gradient: slopes that require grad raise
instead of silently not learning. Determinism: the CPU backward is bit-identical run to run (and across thread
counts) whatever the flag says; the flag is passed to the NPU kernel.

``paged_attention`` and ``merge_attn_states`` stay forward-only: a backward through them raises NotImplementedError
instead of leaving ``.grad`` at None. (``torch.library.register_autograd`` refuses paged_attention, whose
``cu_seqlens_q`` and ``alibi_slopes`` are keyword-only tensors; the kernels below do what it generates.)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["FlashAttnFunc", "FlashAttnVarlenFunc", "needs_grad"]

_ops = torch.ops.ascend_attn


def needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd will record an op on these inputs: the entry points then ask the forward for lse."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _check_alibi(alibi_slopes: Tensor | None) -> None:
    if alibi_slopes is not None and alibi_slopes.requires_grad:
        raise NotImplementedError(
            "alibi_slopes requires grad, but ascend_attn does not differentiate the attention with respect to the "
            "alibi slopes (flash-attn does not either): pass alibi_slopes.detach()"
        )


# ---- the ops: register_autograd ----
# inputs as in the schemas: flash_attention(q, k, v, softmax_scale, causal, window_size, softcap, alibi_slopes,
# return_lse); flash_attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, ...the same).


def _setup_flash(ctx, inputs, output):
    q, k, v, *options, alibi_slopes, return_lse = inputs
    _check_alibi(alibi_slopes)
    out, lse = output
    ctx.mark_non_differentiable(lse)
    ctx.options = options  # softmax_scale, causal, window_size, softcap
    ctx.has_lse = return_lse
    ctx.deterministic = torch.are_deterministic_algorithms_enabled()
    ctx.save_for_backward(q, k, v, out, lse if return_lse else None, alibi_slopes)


def _flash_backward(ctx, dout, _dlse):
    q, k, v, out, lse, alibi_slopes = ctx.saved_tensors
    if not ctx.has_lse:  # the forward was run without lse: one more forward gets it
        lse = _ops.flash_attention.default(q, k, v, *ctx.options, alibi_slopes, True)[1]
    dq, dk, dv = _ops.flash_attention_backward.default(
        dout, q, k, v, out, lse, *ctx.options, alibi_slopes, ctx.deterministic
    )
    return dq, dk, dv, None, None, None, None, None, None


def _setup_varlen(ctx, inputs, output):
    q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, *options, alibi_slopes, return_lse = inputs
    _check_alibi(alibi_slopes)
    out, lse = output
    ctx.mark_non_differentiable(lse)
    ctx.lengths = (max_seqlen_q, max_seqlen_k)
    ctx.options = options
    ctx.has_lse = return_lse
    ctx.deterministic = torch.are_deterministic_algorithms_enabled()
    ctx.save_for_backward(q, k, v, out, lse if return_lse else None, cu_seqlens_q, cu_seqlens_k, alibi_slopes)


def _varlen_backward(ctx, dout, _dlse):
    q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, alibi_slopes = ctx.saved_tensors
    sequences = (cu_seqlens_q, cu_seqlens_k, *ctx.lengths)
    if not ctx.has_lse:
        lse = _ops.flash_attention_varlen.default(q, k, v, *sequences, *ctx.options, alibi_slopes, True)[1]
    dq, dk, dv = _ops.flash_attention_varlen_backward.default(
        dout, q, k, v, out, lse, *sequences, *ctx.options, alibi_slopes, ctx.deterministic
    )
    return dq, dk, dv, *([None] * 10)


torch.library.register_autograd("ascend_attn::flash_attention", _flash_backward, setup_context=_setup_flash)
torch.library.register_autograd("ascend_attn::flash_attention_varlen", _varlen_backward, setup_context=_setup_varlen)


# ---- the flash-attn API ----


class FlashAttnFunc(torch.autograd.Function):
    """``flash_attn_func``'s autograd: ``apply(q, k, v, softmax_scale, causal, window_size, softcap, alibi_slopes,
    deterministic) -> (out, lse)``, lse always computed (non-differentiable)."""

    @staticmethod
    def forward(ctx, q, k, v, softmax_scale, causal, window_size, softcap, alibi_slopes, deterministic):
        _check_alibi(alibi_slopes)
        out, lse = _ops.flash_attention.default(
            q, k, v, softmax_scale, causal, window_size, softcap, alibi_slopes, True
        )
        ctx.mark_non_differentiable(lse)
        ctx.options = (softmax_scale, causal, window_size, softcap)
        ctx.deterministic = deterministic
        ctx.save_for_backward(q, k, v, out, lse, alibi_slopes)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse, alibi_slopes = ctx.saved_tensors
        dq, dk, dv = _ops.flash_attention_backward.default(
            dout, q, k, v, out, lse, *ctx.options, alibi_slopes, ctx.deterministic
        )
        return dq, dk, dv, None, None, None, None, None, None


class FlashAttnVarlenFunc(torch.autograd.Function):
    """``flash_attn_varlen_func``'s autograd: ``apply(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
    softmax_scale, causal, window_size, softcap, alibi_slopes, deterministic) -> (out, lse)``."""

    @staticmethod
    def forward(
        ctx,
        q,
        k,
        v,
        cu_seqlens_q,
        cu_seqlens_k,
        max_seqlen_q,
        max_seqlen_k,
        softmax_scale,
        causal,
        window_size,
        softcap,
        alibi_slopes,
        deterministic,
    ):
        _check_alibi(alibi_slopes)
        sequences = (cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
        options = (softmax_scale, causal, window_size, softcap)
        out, lse = _ops.flash_attention_varlen.default(q, k, v, *sequences, *options, alibi_slopes, True)
        ctx.mark_non_differentiable(lse)
        ctx.lengths = (max_seqlen_q, max_seqlen_k)
        ctx.options = options
        ctx.deterministic = deterministic
        ctx.save_for_backward(q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, alibi_slopes)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, alibi_slopes = ctx.saved_tensors
        dq, dk, dv = _ops.flash_attention_varlen_backward.default(
            dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, *ctx.lengths, *ctx.options, alibi_slopes,
            ctx.deterministic,
        )  # fmt: skip
        return dq, dk, dv, *([None] * 10)


# ---- forward-only ops ----

FORWARD_ONLY_OPS = ("paged_attention", "merge_attn_states")

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
            "through it. Run it under torch.no_grad() (or on detached inputs) for inference; to train, use "
            "flash_attn_func / flash_attn_varlen_func (packed K/V) or the flash_attention ops, which differentiate"
        )


def _forward_only_kernel(name: str):
    op = getattr(torch.ops.ascend_attn, name).default

    def kernel(keyset, *args, **kwargs):
        def compute():
            return op.redispatch(keyset & torch._C._after_autograd_keyset, *args, **kwargs)

        parents = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor) and a.requires_grad]
        if not parents or not torch.is_grad_enabled():
            return compute()
        return _ForwardOnly.apply(name, compute, *parents)

    return kernel


for _name in FORWARD_ONLY_OPS:
    _lib.impl(_name, _forward_only_kernel(_name), "Autograd", with_keyset=True)
