"""Typed wrappers of the ``torch.ops.ascend_attn`` operators, each with its fake (meta) kernel right below it.

The fake kernels compute output shapes and dtypes only, so the ops trace under ``torch.compile(fullgraph=True)``.
Argument validation lives in C++ (csrc/common), once for every executor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ascend_attn.autograd import needs_grad

__all__ = [
    "cpu_isa",
    "cpu_scratch_bytes",
    "flash_attention",
    "flash_attention_backward",
    "flash_attention_varlen",
    "flash_attention_varlen_backward",
    "merge_attn_states",
    "paged_attention",
    "reshape_and_cache",
]


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

    Differentiable in q, k and v (:mod:`ascend_attn.autograd`): when they require grad the op computes lse anyway,
    for the backward.
    """
    out, lse = torch.ops.ascend_attn.flash_attention.default(
        q, k, v, softmax_scale, causal, list(window_size), softcap, alibi_slopes, return_lse or needs_grad(q, k, v)
    )
    return out, lse if return_lse else _lse_like(q, [], False)


def _lse_like(q: Tensor, shape: list, return_lse: bool) -> Tensor:
    return q.new_empty(shape if return_lse else [0], dtype=torch.float32)


def _check_same_device(ref_name: str, ref: Tensor, **tensors: Tensor | None) -> None:
    """The fake kernels also run when one real tensor is on ``meta`` among CPU tensors (the Meta dispatch key wins),
    so they reject mixed devices, with the message the C++ checks give, instead of returning uninitialized memory."""
    for name, t in tensors.items():
        if t is not None:
            torch._check(
                t.device == ref.device,
                lambda name=name, t=t: (
                    f"{name} must be on the same device as {ref_name} ({ref.device}), got {t.device}"
                ),
            )


@torch.library.register_fake("ascend_attn::flash_attention")
def _(
    q, k, v, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None, return_lse=False
):
    _check_same_device("q", q, k=k, v=v, alibi_slopes=alibi_slopes)
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

    Differentiable in q, k and v, as :func:`flash_attention`.
    """
    out, lse = torch.ops.ascend_attn.flash_attention_varlen.default(
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
        return_lse or needs_grad(q, k, v),
    )
    return out, lse if return_lse else _lse_like(q, [], False)


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
    _check_same_device(
        "q", q, k=k, v=v, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k, alibi_slopes=alibi_slopes
    )
    torch._check(q.dim() == 3, lambda: f"q must have 3 dimensions, got {q.dim()}")
    torch._check(v.dim() == 3, lambda: f"v must have 3 dimensions, got {v.dim()}")
    total_q, heads, _ = q.shape
    out = q.new_empty((total_q, heads, v.shape[-1]))
    return out, _lse_like(q, [heads, total_q], return_lse)


def flash_attention_backward(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`flash_attention` (FlashAttention-2: the probabilities are recomputed from q, k and lse).

    Autograd calls this for you (:mod:`ascend_attn.autograd`); call it directly to drive a backward by hand.

    Args:
        dout: ``[batch, seqlen_q, heads, head_dim_v]``, the gradient of out, in q's dtype.
        q, k, v: the forward's inputs (BSND, as in :func:`flash_attention`).
        out: ``[batch, seqlen_q, heads, head_dim_v]``, the forward's output.
        lse: float32 ``[batch, heads, seqlen_q]``, the forward's lse (run it with ``return_lse=True``).
        softmax_scale, causal, window_size, softcap, alibi_slopes: the forward's options.
        deterministic: ask for bit-identical gradients run to run. The CPU executor is deterministic whatever this
            says (dQ is reduced in a fixed order); the flag is passed to the NPU kernel.

    Returns:
        ``(dq, dk, dv)`` with q's, k's and v's shapes and dtype; for GQA / MQA dk and dv are summed over the q heads
        of each kv head. Rows that see no key get zero gradients. alibi_slopes get none (as in flash-attn).
    """
    return torch.ops.ascend_attn.flash_attention_backward.default(
        dout, q, k, v, out, lse, softmax_scale, causal, list(window_size), softcap, alibi_slopes, deterministic
    )


def _grads_like(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


@torch.library.register_fake("ascend_attn::flash_attention_backward")
def _(
    dout,
    q,
    k,
    v,
    out,
    lse,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
):
    _check_same_device("q", q, dout=dout, k=k, v=v, out=out, lse=lse, alibi_slopes=alibi_slopes)
    torch._check(q.dim() == 4, lambda: f"q must have 4 dimensions, got {q.dim()}")
    return _grads_like(q, k, v)


def flash_attention_varlen_backward(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    cu_seqlens_q: Tensor,
    cu_seqlens_k: Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`flash_attention_varlen`.

    Args:
        dout: ``[total_q, heads, head_dim_v]``; out likewise; lse float32 ``[heads, total_q]`` (the forward's, run
            with ``return_lse=True``).
        q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k and the options: the forward's.
        deterministic: as in :func:`flash_attention_backward` (the CPU executor always is).

    Returns:
        ``(dq, dk, dv)`` with q's, k's and v's shapes and dtype.
    """
    return torch.ops.ascend_attn.flash_attention_varlen_backward.default(
        dout,
        q,
        k,
        v,
        out,
        lse,
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


@torch.library.register_fake("ascend_attn::flash_attention_varlen_backward")
def _(
    dout,
    q,
    k,
    v,
    out,
    lse,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q,
    max_seqlen_k,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
):
    _check_same_device(
        "q",
        q,
        dout=dout,
        k=k,
        v=v,
        out=out,
        lse=lse,
        cu_seqlens_q=cu_seqlens_q,
        cu_seqlens_k=cu_seqlens_k,
        alibi_slopes=alibi_slopes,
    )
    torch._check(q.dim() == 3, lambda: f"q must have 3 dimensions, got {q.dim()}")
    return _grads_like(q, k, v)


def reshape_and_cache(key: Tensor, value: Tensor, key_cache: Tensor, value_cache: Tensor, slot_mapping: Tensor) -> None:
    """Writes new K/V rows into the paged caches, in place.

    Args:
        key: ``[num_tokens, kv_heads, head_dim]``; value: ``[num_tokens, kv_heads, head_dim_v]``.
        key_cache: ``[num_blocks, block_size, kv_heads, head_dim]``, same dtype as key (mutated).
        value_cache: ``[num_blocks, block_size, kv_heads, head_dim_v]`` (mutated).
        slot_mapping: int32 or int64 ``[num_tokens]``; token t goes to slot ``block * block_size + offset``;
            a negative slot marks a padding token, which is skipped. A slot >= ``num_blocks * block_size``, or a
            slot given to two tokens, raises before anything is written (on every executor).

    The caches are written in place, so, as for torch's in-place ops, a cache whose elements share memory (an
    expanded view), key_cache and value_cache sharing memory, or key/value overlapping a cache raise too.
    """
    torch.ops.ascend_attn.reshape_and_cache.default(key, value, key_cache, value_cache, slot_mapping)


@torch.library.register_fake("ascend_attn::reshape_and_cache")
def _(key, value, key_cache, value_cache, slot_mapping):
    _check_same_device("key", key, value=value, key_cache=key_cache, value_cache=value_cache, slot_mapping=slot_mapping)
    return None


def paged_attention(
    q: Tensor,
    key_cache: Tensor,
    value_cache: Tensor,
    block_tables: Tensor,
    context_lens: Tensor,
    *,
    cu_seqlens_q: Tensor | None = None,
    softmax_scale: float | None = None,
    causal: bool = True,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    return_lse: bool = False,
):
    """Attention of new queries over a paged KV cache (decode, speculative decoding, chunked prefill).

    Args:
        q: ``[num_tokens, heads, head_dim]``. Without ``cu_seqlens_q`` one query per sequence (decode); with it,
            sequence s owns rows ``cu_seqlens_q[s]:cu_seqlens_q[s + 1]``, which are the *last* positions of its
            context (causal among themselves). A sequence may have more queries than keys (flash-attn's rule): its
            first queries then sit before position 0 and, under a causal mask, see no key (output 0, lse -inf).
        key_cache: ``[num_blocks, block_size, kv_heads, head_dim]``, same dtype as q; any block_size >= 1.
        value_cache: ``[num_blocks, block_size, kv_heads, head_dim_v]``.
        block_tables: int32 ``[num_seqs, max_blocks_per_seq]``; key t of sequence s lives in block
            ``block_tables[s][t // block_size]`` at offset ``t % block_size``. Entries past a sequence's length are
            ignored (may be -1); an out-of-range entry that would be read raises.
        context_lens: int32 ``[num_seqs]``, keys per sequence including this step's tokens.
        cu_seqlens_q: optional int32 ``[num_seqs + 1]``.
        softmax_scale, causal, window_size, softcap, alibi_slopes: as in :func:`flash_attention` (alibi may be
            ``[num_seqs, heads]``); positions are absolute within each sequence's context.
        return_lse: also return lse.

    Returns:
        out ``[num_tokens, heads, head_dim_v]``, or ``(out, lse)`` with lse float32 ``[heads, num_tokens]``.
    """
    out, lse = torch.ops.ascend_attn.paged_attention.default(
        q,
        key_cache,
        value_cache,
        block_tables,
        context_lens,
        cu_seqlens_q=cu_seqlens_q,
        softmax_scale=softmax_scale,
        causal=causal,
        window_size=list(window_size),
        softcap=softcap,
        alibi_slopes=alibi_slopes,
        return_lse=return_lse,
    )
    return (out, lse) if return_lse else out


@torch.library.register_fake("ascend_attn::paged_attention")
def _(
    q,
    key_cache,
    value_cache,
    block_tables,
    context_lens,
    *,
    cu_seqlens_q=None,
    softmax_scale=None,
    causal=True,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    return_lse=False,
):
    _check_same_device(
        "q",
        q,
        key_cache=key_cache,
        value_cache=value_cache,
        block_tables=block_tables,
        context_lens=context_lens,
        cu_seqlens_q=cu_seqlens_q,
        alibi_slopes=alibi_slopes,
    )
    torch._check(q.dim() == 3, lambda: f"q must have 3 dimensions, got {q.dim()}")
    torch._check(value_cache.dim() == 4, lambda: f"value_cache must have 4 dimensions, got {value_cache.dim()}")
    tokens, heads, _ = q.shape
    return q.new_empty((tokens, heads, value_cache.shape[-1])), _lse_like(q, [heads, tokens], return_lse)


def merge_attn_states(out_a: Tensor, lse_a: Tensor, out_b: Tensor, lse_b: Tensor) -> tuple[Tensor, Tensor]:
    """Combines two attention results computed over disjoint key sets (split-KV, prefix caching, context parallel).

    Args:
        out_a, out_b: ``[tokens, heads, head_dim]``, same dtype.
        lse_a, lse_b: float32 ``[heads, tokens]``; ``-inf`` marks a row that saw no key on that side, and so does
            ``+inf`` (the convention of flash-attn 2 and vLLM for an empty side).

    Returns:
        ``(out, lse)``: out in out_a's dtype, ``out = (e^lse_a out_a + e^lse_b out_b) / (e^lse_a + e^lse_b)``,
        ``lse = log(e^lse_a + e^lse_b)``; a row with both sides empty gives 0 and ``-inf``.
    """
    return torch.ops.ascend_attn.merge_attn_states.default(out_a, lse_a, out_b, lse_b)


@torch.library.register_fake("ascend_attn::merge_attn_states")
def _(out_a, lse_a, out_b, lse_b):
    _check_same_device("out_a", out_a, lse_a=lse_a, out_b=out_b, lse_b=lse_b)
    torch._check(out_a.dim() == 3, lambda: f"out_a must have 3 dimensions, got {out_a.dim()}")
    return out_a.new_empty(out_a.shape), lse_a.new_empty(lse_a.shape)


def cpu_isa() -> str:
    """Instruction set the CPU kernels use: ``"avx512"``, ``"avx2"`` or ``"portable"``.

    Chosen at run time from the CPU; the environment variable ``ASCEND_ATTN_CPU_ISA`` overrides it.
    """
    return torch.ops.ascend_attn.cpu_isa()


def cpu_scratch_bytes() -> int:
    """Bytes of scratch the CPU kernels' threads hold now.

    Each thread keeps its scratch between calls (up to about 0.9 MB at head_dim 128), allocated outside torch's
    allocator, so memory profiles of the ops do not show it; benchmarks add it from here.
    """
    return torch.ops.ascend_attn.cpu_scratch_bytes()
