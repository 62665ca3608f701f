"""flash-attn-compatible API: code written for ``flash_attn`` moves by changing the import.

Same argument names, defaults and return conventions as flash-attn 2's ``flash_attn_func`` and
``flash_attn_varlen_func``. Causal masks are aligned to the bottom-right corner when ``seqlen_q != seqlen_k``::

    seqlen_q = 2, seqlen_k = 5, causal=True      1 = visible
        1 1 1 1 0
        1 1 1 1 1
"""

from __future__ import annotations

from torch import Tensor

from ascend_attn import ops

__all__ = ["flash_attn_func", "flash_attn_varlen_func"]


def _check_unsupported(dropout_p: float) -> None:
    if dropout_p > 0.0:
        raise NotImplementedError(
            f"dropout_p={dropout_p}: ascend_attn implements inference/forward attention only; use dropout_p=0.0"
        )


def flash_attn_func(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
):
    """Attention over a fixed-length batch.

    Args:
        q: ``(batch, seqlen_q, nheads, headdim)``.
        k: ``(batch, seqlen_k, nheads_k, headdim)``; nheads_k divides nheads (MQA / GQA).
        v: ``(batch, seqlen_k, nheads_k, headdim_v)``.
        dropout_p: must be 0.0 (no dropout in this library; > 0 raises NotImplementedError).
        softmax_scale: default ``1 / sqrt(headdim)``.
        causal: bottom-right aligned causal mask.
        window_size: ``(left, right)`` sliding window, -1 = unbounded.
        softcap: > 0 applies ``softcap * tanh(score / softcap)``.
        alibi_slopes: float32 ``(nheads,)`` or ``(batch, nheads)``.
        deterministic: accepted for compatibility; the forward pass is always deterministic.
        return_attn_probs: also return the softmax log-sum-exp.

    Returns:
        ``out (batch, seqlen_q, nheads, headdim_v)``, or ``(out, softmax_lse, None)`` with softmax_lse float32
        ``(batch, nheads, seqlen_q)`` when ``return_attn_probs``. (flash-attn returns the dropout mask as the third
        item; there is none here.)
    """
    _check_unsupported(dropout_p)
    out, lse = ops.flash_attention(
        q, k, v, softmax_scale, causal, window_size, softcap, alibi_slopes, return_lse=return_attn_probs
    )
    return (out, lse, None) if return_attn_probs else out


def flash_attn_varlen_func(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens_q: Tensor,
    cu_seqlens_k: Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
):
    """Attention over packed variable-length sequences.

    Args:
        q: ``(total_q, nheads, headdim)``.
        k: ``(total_k, nheads_k, headdim)``.
        v: ``(total_k, nheads_k, headdim_v)``.
        cu_seqlens_q, cu_seqlens_k: int32 ``(batch + 1,)`` cumulative sequence lengths, starting at 0.
        max_seqlen_q, max_seqlen_k: the longest query / key sequence.
        Other arguments as in :func:`flash_attn_func`; masks are applied per sequence.

    Returns:
        ``out (total_q, nheads, headdim_v)``, or ``(out, softmax_lse, None)`` with softmax_lse float32
        ``(nheads, total_q)`` when ``return_attn_probs``.
    """
    _check_unsupported(dropout_p)
    out, lse = ops.flash_attention_varlen(
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
        return_lse=return_attn_probs,
    )
    return (out, lse, None) if return_attn_probs else out
