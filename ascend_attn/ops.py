"""Typed wrappers of the ``torch.ops.ascend_attn`` operators, each with its fake (meta) kernel right below it.

The fake kernels compute output shapes and dtypes only, so the ops trace under ``torch.compile(fullgraph=True)``.
Argument validation lives in C++ (csrc/common), once for every executor.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cpu_isa", "flash_attention", "flash_attention_varlen"]


def flash_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    return_lse: bool = False,
) -> tuple[Tensor, Tensor]:
    """Attention over a fixed-length batch in BSND layout.

    Args:
        q: ``[batch, seqlen_q, heads, head_dim]``, float32 / float16 / bfloat16.
        k: ``[batch, seqlen_k, kv_heads, head_dim]``, same dtype; ``kv_heads`` divides ``heads`` (GQA / MQA).
        v: ``[batch, seqlen_k, kv_heads, head_dim_v]``, same dtype; ``head_dim_v`` may differ from ``head_dim``.
        softmax_scale: multiplies ``q·k``; default ``1 / sqrt(head_dim)``.
        causal: key j visible to query i iff ``j <= i + seqlen_k - seqlen_q`` (bottom-right aligned).
        window_size: ``(left, right)``; -1 = unbounded. Visible iff
            ``i + seqlen_k - seqlen_q - left <= j <= i + seqlen_k - seqlen_q + right``.
        softcap: > 0 replaces each score s by ``softcap * tanh(s / softcap)`` (before alibi and masks).
        alibi_slopes: float32 ``[heads]`` or ``[batch, heads]``; adds ``-slope * |i + seqlen_k - seqlen_q - j|``.
        return_lse: also return the log-sum-exp of the scaled scores.

    Returns:
        ``(out, lse)``: out ``[batch, seqlen_q, heads, head_dim_v]`` in q's dtype; lse float32
        ``[batch, heads, seqlen_q]`` when ``return_lse``, else an empty tensor. A query row that sees no key
        gives 0 and lse ``-inf``.
    """
    return torch.ops.ascend_attn.flash_attention.default(
        q, k, v, softmax_scale, causal, list(window_size), softcap, alibi_slopes, return_lse
    )


def _lse_like(q: Tensor, shape: list, return_lse: bool) -> Tensor:
    return q.new_empty(shape if return_lse else [0], dtype=torch.float32)


@torch.library.register_fake("ascend_attn::flash_attention")
def _(
    q, k, v, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None, return_lse=False
):
    torch._check(q.dim() == 4, lambda: f"q must have 4 dimensions, got {q.dim()}")
    torch._check(v.dim() == 4, lambda: f"v must have 4 dimensions, got {v.dim()}")
    batch, seqlen_q, heads, _ = q.shape
    out = q.new_empty((batch, seqlen_q, heads, v.shape[-1]))
    return out, _lse_like(q, [batch, heads, seqlen_q], return_lse)


def flash_attention_varlen(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens_q: Tensor,
    cu_seqlens_k: Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    return_lse: bool = False,
) -> tuple[Tensor, Tensor]:
    """Attention over packed variable-length sequences (TND layout).

    Args:
        q: ``[total_q, heads, head_dim]``; sequence b owns rows ``cu_seqlens_q[b]:cu_seqlens_q[b + 1]``.
        k: ``[total_k, kv_heads, head_dim]``.
        v: ``[total_k, kv_heads, head_dim_v]``.
        cu_seqlens_q, cu_seqlens_k: int32 ``[batch + 1]``, starting at 0, non-decreasing, ending at
            ``total_q`` / ``total_k``. Zero-length sequences are allowed.
        max_seqlen_q, max_seqlen_k: upper bounds of the per-sequence lengths.
        Other options as in :func:`flash_attention`, applied per sequence (alibi_slopes may be ``[batch, heads]``).

    Returns:
        ``(out, lse)``: out ``[total_q, heads, head_dim_v]``; lse float32 ``[heads, total_q]`` when ``return_lse``,
        else an empty tensor.
    """
    return torch.ops.ascend_attn.flash_attention_varlen.default(
        q,
        k,
        v,
        cu_seqlens_q,
        cu_seqlens_k,
        max_seqlen_q,
        max_seqlen_k,
        softmax_scale,
        causal,
        list(window_size),
        softcap,
        alibi_slopes,
        return_lse,
    )


@torch.library.register_fake("ascend_attn::flash_attention_varlen")
def _(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q,
    max_seqlen_k,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    return_lse=False,
):
    torch._check(q.dim() == 3, lambda: f"q must have 3 dimensions, got {q.dim()}")
    torch._check(v.dim() == 3, lambda: f"v must have 3 dimensions, got {v.dim()}")
    total_q, heads, _ = q.shape
    out = q.new_empty((total_q, heads, v.shape[-1]))
    return out, _lse_like(q, [heads, total_q], return_lse)


def cpu_isa() -> str:
    """Instruction set the CPU kernels use: ``"avx512"``, ``"avx2"`` or ``"portable"``.

    Chosen at run time from the CPU; the environment variable ``ASCEND_ATTN_CPU_ISA`` overrides it.
    """
    return torch.ops.ascend_attn.cpu_isa()
