"""flash-attn-compatible API: code written for ``flash_attn`` moves by changing the import.

Same argument names, positional order, defaults and return conventions as flash-attn 2's ``flash_attn_func``,
``flash_attn_varlen_func`` and ``flash_attn_with_kvcache`` (in :mod:`ascend_attn.flash_attn_kvcache`). Causal masks
are aligned to the bottom-right corner when ``seqlen_q != seqlen_k``::

    seqlen_q = 2, seqlen_k = 5, causal=True      1 = visible
        1 1 1 1 0
        1 1 1 1 1
"""

from __future__ import annotations

import torch
from torch import Tensor

from ascend_attn import ops
from ascend_attn.autograd import FlashAttnFunc, FlashAttnVarlenFunc, needs_grad
from ascend_attn.flash_attn_kvcache import flash_attn_with_kvcache

__all__ = ["flash_attn_func", "flash_attn_varlen_func", "flash_attn_with_kvcache"]


def _check_unsupported(dropout_p: float) -> None:
    if dropout_p > 0.0:
        raise NotImplementedError(f"dropout_p={dropout_p}: ascend_attn implements attention without dropout")


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
        deterministic: bit-identical gradients run to run; passed to the backward op. Default False, as in flash-attn;
            the forward is always deterministic, and so is the CPU backward whatever this says (its dQ is reduced in a
            fixed order). ``torch.use_deterministic_algorithms(True)`` also sets it.
        return_attn_probs: also return the softmax log-sum-exp.

    Returns:
        ``out (batch, seqlen_q, nheads, headdim_v)``, or ``(out, softmax_lse, None)`` with softmax_lse float32
        ``(batch, nheads, seqlen_q)`` when ``return_attn_probs``. (flash-attn returns the dropout mask as the third
        item; there is none here.)

    Differentiable in q, k and v (see :mod:`ascend_attn.autograd`); softmax_lse is not, and alibi_slopes get no
    gradient.
    """
    _check_unsupported(dropout_p)
    if needs_grad(q, k, v, alibi_slopes):
        deterministic = deterministic or torch.are_deterministic_algorithms_enabled()
        out, lse = FlashAttnFunc.apply(
            q, k, v, softmax_scale, causal, list(window_size), softcap, alibi_slopes, deterministic
        )
    else:
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
    block_table: Tensor | None = None,
):
    """Attention over packed variable-length sequences, with K/V packed or in a paged cache.

    Args:
        q: ``(total_q, nheads, headdim)``.
        k: ``(total_k, nheads_k, headdim)``, or with ``block_table`` a paged cache
            ``(num_blocks, page_block_size, nheads_k, headdim)`` (any page size).
        v: ``(total_k, nheads_k, headdim_v)``, or with ``block_table`` ``(num_blocks, page_block_size, nheads_k,
            headdim_v)``.
        cu_seqlens_q, cu_seqlens_k: int32 ``(batch + 1,)`` cumulative sequence lengths, starting at 0. With a
            ``block_table``, sequence b's keys are the first ``cu_seqlens_k[b + 1] - cu_seqlens_k[b]`` tokens of its
            pages.
        max_seqlen_q, max_seqlen_k: the longest query / key sequence (at least).
        block_table: optional int32 ``(batch, max_blocks_per_seq)``: key t of sequence b lives at offset
            ``t % page_block_size`` of block ``block_table[b][t // page_block_size]`` (paged prefill, e.g. over a
            cached prefix). Entries holding keys some query sees must be in ``[0, num_blocks)``.
        Other arguments as in :func:`flash_attn_func`; masks are applied per sequence, bottom-right aligned.

    Returns:
        ``out (total_q, nheads, headdim_v)``, or ``(out, softmax_lse, None)`` with softmax_lse float32
        ``(nheads, total_q)`` when ``return_attn_probs``.

    Differentiable in q, k and v with packed K/V, as :func:`flash_attn_func` (``deterministic`` likewise). With a
    ``block_table`` it runs ``paged_attention``, which is forward-only: a backward through it raises.
    """
    _check_unsupported(dropout_p)
    if block_table is not None:
        context_lens = _paged_key_lengths(cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, block_table, k)
        result = ops.paged_attention(
            q,
            k,
            v,
            block_table,
            context_lens,
            cu_seqlens_q=cu_seqlens_q,
            softmax_scale=softmax_scale,
            causal=causal,
            window_size=window_size,
            softcap=softcap,
            alibi_slopes=alibi_slopes,
            return_lse=return_attn_probs,
        )
        return (*result, None) if return_attn_probs else result
    if needs_grad(q, k, v, alibi_slopes):
        deterministic = deterministic or torch.are_deterministic_algorithms_enabled()
        out, lse = FlashAttnVarlenFunc.apply(
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
            deterministic,
        )
        return (out, lse, None) if return_attn_probs else out
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


def _paged_key_lengths(cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, block_table, k) -> Tensor:
    """Checks what paged varlen adds to the varlen contract (naming flash-attn's arguments) and returns the int32 key
    lengths ``(batch,)`` for ``paged_attention``; the op checks the rest (shapes, dtypes, block ranges)."""
    for name, cu in (("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        if not isinstance(cu, Tensor) or cu.dim() != 1 or cu.dtype != torch.int32 or cu.numel() < 2:
            got = f"{cu.dtype} of shape {tuple(cu.shape)}" if isinstance(cu, Tensor) else type(cu).__name__
            raise RuntimeError(f"{name} must be an int32 tensor (batch + 1,) with batch >= 1, got {got}")
    if cu_seqlens_k.numel() != cu_seqlens_q.numel():
        raise RuntimeError(
            f"cu_seqlens_k must have as many entries as cu_seqlens_q ({cu_seqlens_q.numel()}), got "
            f"{cu_seqlens_k.numel()}"
        )
    if not isinstance(block_table, Tensor) or block_table.dim() != 2 or block_table.dtype != torch.int32:
        got = f"{block_table.dtype} of shape {tuple(block_table.shape)}" if isinstance(block_table, Tensor) else "?"
        raise RuntimeError(f"block_table must be an int32 tensor (batch, max_blocks_per_seq), got {got}")
    batch = cu_seqlens_k.numel() - 1
    if block_table.shape[0] != batch:
        raise RuntimeError(f"block_table must have one row per sequence ({batch}), got shape {list(block_table.shape)}")
    if k.dim() != 4:
        raise RuntimeError(
            f"k must be a paged cache (num_blocks, page_block_size, nheads_k, headdim) with a block_table, got shape "
            f"{list(k.shape)}"
        )
    cu_q, cu_k = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    capacity = block_table.shape[1] * k.shape[1]
    for name, cu, longest in (("cu_seqlens_q", cu_q, max_seqlen_q), ("cu_seqlens_k", cu_k, max_seqlen_k)):
        if cu[0] != 0:
            raise RuntimeError(f"{name}[0] must be 0, got {cu[0]}")
        for b in range(batch):
            n = cu[b + 1] - cu[b]
            if n < 0:
                raise RuntimeError(f"{name} must be non-decreasing, but {name}[{b + 1}] < {name}[{b}]")
            if n > longest:
                raise RuntimeError(f"max_seqlen_{name[-1]} must be >= the longest sequence ({n}), got {longest}")
            if name == "cu_seqlens_k" and n > capacity:
                raise RuntimeError(
                    f"cu_seqlens_k: sequence {b} has {n} keys, more than its block_table row holds "
                    f"({block_table.shape[1]} blocks of {k.shape[1]})"
                )
    return (cu_seqlens_k[1:] - cu_seqlens_k[:-1]).to(torch.int32)
