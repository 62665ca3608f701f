"""flash-attn-compatible API: code written for ``flash_attn`` moves by changing the import.

Same argument names, defaults and return conventions as flash-attn 2's ``flash_attn_func`` and
``flash_attn_varlen_func``. Causal masks are aligned to the bottom-right corner when ``seqlen_q != seqlen_k``::

    seqlen_q = 2, seqlen_k = 5, causal=True      1 = visible
        1 1 1 1 0
        1 1 1 1 1
"""

from __future__ import annotations

import torch
from torch import Tensor

from ascend_attn import ops

__all__ = ["flash_attn_func", "flash_attn_varlen_func", "flash_attn_with_kvcache"]


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


def flash_attn_with_kvcache(
    q: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
    k: Tensor | None = None,
    v: Tensor | None = None,
    cache_seqlens: Tensor | int | None = None,
    block_table: Tensor | None = None,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    return_softmax_lse: bool = False,
):
    """Appends k/v to a KV cache in place, then attends q over the cache (flash-attn's inference entry point).

    Args:
        q: ``(batch, seqlen_q, nheads, headdim)``; its rows are the last seqlen_q positions of each sequence.
        k_cache, v_cache: paged ``(num_blocks, page_block_size, nheads_k, headdim[_v])`` with ``block_table``, or
            contiguous ``(batch, seqlen_cache, nheads_k, headdim[_v])`` without it. Updated in place when k/v given.
        k, v: optional new keys/values ``(batch, seqlen_new, nheads_k, headdim[_v])``, written at positions
            ``cache_seqlens[b] ..`` of each sequence.
        cache_seqlens: int or int32 ``(batch,)``: tokens already in the cache (before k/v). Required with a paged
            cache; defaults to the full ``seqlen_cache`` (minus seqlen_new) for a contiguous one.
        block_table: int32 ``(batch, max_blocks_per_seq)``.
        softmax_scale, causal, window_size, softcap, alibi_slopes: as in :func:`flash_attn_func`.
        return_softmax_lse: also return the lse, float32 ``(batch, nheads, seqlen_q)``.

    Returns:
        ``out (batch, seqlen_q, nheads, headdim_v)``, or ``(out, softmax_lse)``.
    """
    batch, seqlen_q, heads, _ = q.shape
    new = 0 if k is None else k.shape[1]
    if (k is None) != (v is None):
        raise ValueError("k and v must be given together")
    if block_table is None:  # a contiguous cache is a paged cache with one block per sequence
        block_size = k_cache.shape[1]
        block_table = torch.arange(batch, dtype=torch.int32, device=q.device)[:, None]
        if cache_seqlens is None:
            cache_seqlens = block_size - new
    elif cache_seqlens is None:
        raise ValueError("cache_seqlens is required with a block_table")
    block_size = k_cache.shape[1]
    if isinstance(cache_seqlens, int):
        cache_seqlens = torch.full((batch,), cache_seqlens, dtype=torch.int32, device=q.device)
    if cache_seqlens.dtype != torch.int32 or cache_seqlens.shape != (batch,):
        raise ValueError(
            f"cache_seqlens must be int32 of shape ({batch},), got {cache_seqlens.dtype} {tuple(cache_seqlens.shape)}"
        )
    context = cache_seqlens + new
    if new > 0:
        positions = cache_seqlens.long()[:, None] + torch.arange(new, device=q.device)[None, :]
        if int(positions.max()) >= block_table.shape[1] * block_size:
            raise ValueError(
                f"cache_seqlens + seqlen_new exceeds the cache capacity of {block_table.shape[1] * block_size} tokens"
            )
        blocks = block_table.long().gather(1, positions // block_size)
        if bool((blocks < 0).any()):
            raise ValueError("block_table has no block (-1) for a position where k/v are written")
        slots = (blocks * block_size + positions % block_size).reshape(-1)
        ops.reshape_and_cache(
            k.reshape(batch * new, *k.shape[2:]), v.reshape(batch * new, *v.shape[2:]), k_cache, v_cache, slots
        )
    cu = torch.arange(0, (batch + 1) * seqlen_q, seqlen_q, dtype=torch.int32, device=q.device)
    result = ops.paged_attention(
        q.reshape(batch * seqlen_q, heads, q.shape[-1]),
        k_cache,
        v_cache,
        block_table,
        context.to(torch.int32),
        cu_seqlens_q=cu,
        softmax_scale=softmax_scale,
        causal=causal,
        window_size=window_size,
        softcap=softcap,
        alibi_slopes=alibi_slopes,
        return_lse=return_softmax_lse,
    )
    out, lse = result if return_softmax_lse else (result, None)
    out = out.reshape(batch, seqlen_q, heads, out.shape[-1])
    if not return_softmax_lse:
        return out
    return out, lse.reshape(heads, batch, seqlen_q).transpose(0, 1)
