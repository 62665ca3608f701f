"""flash-attn's ``flash_attn_with_kvcache``: append new k/v to a KV cache in place, then attend q over the cache.

Every argument is validated before the cache is touched, so a call that raises leaves ``k_cache`` and ``v_cache`` as
they were. Errors name flash-attn's arguments and are RuntimeErrors, as flash-attn's own checks are; combinations
flash-attn does not support either raise NotImplementedError (a RuntimeError too).

Both cache forms run ``ops.reshape_and_cache`` then ``ops.paged_attention``: a contiguous cache
``(batch_size_cache, seqlen_cache, nheads_k, headdim)`` is viewed as a paged cache whose blocks are whole rows (or,
with ``cache_leftpad``, equal pieces of rows, so each sequence's keys start at a block boundary).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ascend_attn import ops
from ascend_attn.rotary import apply_rotary

__all__ = ["flash_attn_with_kvcache"]

_MAX_HEAD_DIM = 512  # kMaxHeadDim in csrc/common/attention_args.h
_INT32_MAX = 2**31 - 1  # block tables, lengths and cu_seqlens are int32
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check(ok, message: str) -> None:
    if not ok:
        raise RuntimeError(message)


def _check_tensor(t, name: str, dim: int, device: torch.device) -> None:
    _check(isinstance(t, Tensor), f"{name} must be a torch.Tensor, got {type(t).__name__}")
    _check(t.dim() == dim, f"{name} must have {dim} dimensions, got {t.dim()} (shape {list(t.shape)})")
    _check(t.device == device, f"{name} must be on the same device as q ({device}), got {t.device}")


def _per_sequence_int32(t, name: str, batch: int, device: torch.device) -> list[int]:
    """Host values of an int32 ``(batch,)`` tensor."""
    _check_tensor(t, name, 1, device)
    _check(t.dtype == torch.int32, f"{name} must have dtype torch.int32, got {t.dtype}")
    _check(t.shape[0] == batch, f"{name} must have shape ({batch},), one entry per sequence of q; got {tuple(t.shape)}")
    return t.tolist()


def _check_options(softmax_scale, window_size, softcap, alibi_slopes, batch: int, heads: int, device) -> None:
    """The rules csrc/common/attention_args.cpp applies, checked here too because they must hold before k/v are
    written, and worded the same."""
    _check(softmax_scale is None or math.isfinite(softmax_scale), f"softmax_scale must be finite, got {softmax_scale}")
    _check(len(window_size) == 2, f"window_size must be (left, right), got {tuple(window_size)}")
    _check(
        window_size[0] >= -1 and window_size[1] >= -1,
        f"window_size entries must be >= 0, or -1 for unbounded, got {tuple(window_size)}",
    )
    _check(math.isfinite(softcap) and softcap >= 0.0, f"softcap must be >= 0 (0 disables it), got {softcap}")
    if alibi_slopes is not None:
        _check(isinstance(alibi_slopes, Tensor), f"alibi_slopes must be a torch.Tensor, got {type(alibi_slopes)}")
        _check(alibi_slopes.dtype == torch.float32, f"alibi_slopes must be float32, got {alibi_slopes.dtype}")
        _check(
            alibi_slopes.device == device,
            f"alibi_slopes must be on the same device as q ({device}), got {alibi_slopes.device}",
        )
        _check(
            tuple(alibi_slopes.shape) in ((heads,), (batch, heads)),
            f"alibi_slopes must have shape (nheads,) = ({heads},) or (batch_size, nheads) = ({batch}, {heads}), got "
            f"{tuple(alibi_slopes.shape)}",
        )


def _visible_span(seqlen_q: int, context: int, left: int) -> tuple[int, int]:
    """Keys ``[lo, hi)`` some query of the sequence can see (bottom-right aligned, window side -1 = unbounded): from
    the first row's left window edge to the last key, which the last row (at position context - 1) always sees."""
    if seqlen_q == 0 or context == 0:
        return 0, 0
    lo = 0 if left < 0 else max(0, context - seqlen_q - left)
    return min(lo, context), context


def _check_blocks(block_table: Tensor, num_blocks: int, block_size: int, spans: list[tuple[int, int]]) -> None:
    """Every block_table entry holding a key of ``spans[b]`` (read or written) must be a block of the cache."""
    table = block_table.tolist()
    for b, (lo, hi) in enumerate(spans):
        for j in range(lo // block_size, -(-hi // block_size)):
            block = table[b][j]
            _check(
                0 <= block < num_blocks,
                f"block_table[{b}][{j}] = {block} is out of range [0, {num_blocks}) but holds keys {j * block_size}.."
                f"{(j + 1) * block_size - 1} of sequence {b}, which this call reads or writes",
            )


def _rotary_positions(cos, sin, seqlens: list[int], seqlen_q, seqlen_new, rotate_q_rows, head_dim, device):
    """Validates rotary_cos / rotary_sin; returns the positions of q's rows and of the new keys (int64 tensors)."""
    for name, t in (("rotary_cos", cos), ("rotary_sin", sin)):
        _check_tensor(t, name, 2, device)
        _check(t.is_floating_point(), f"{name} must be a floating-point tensor, got {t.dtype}")
    _check(
        sin.shape == cos.shape, f"rotary_sin must have the shape of rotary_cos {list(cos.shape)}, got {list(sin.shape)}"
    )
    rotary_dim = 2 * cos.shape[1]
    _check(
        2 <= rotary_dim <= head_dim,
        f"rotary_dim = 2 * rotary_cos.shape[1] = {rotary_dim} must be in [2, headdim = {head_dim}]",
    )
    reach = max(seqlen_new, seqlen_q if rotate_q_rows else min(seqlen_q, 1))  # positions past cache_seqlens
    last = max(seqlens, default=0) + reach - 1
    _check(
        reach == 0 or last < cos.shape[0],
        f"rotary_cos has {cos.shape[0]} rows (positions), but position {last} is rotated (cache_seqlens + the new "
        "tokens)",
    )
    start = torch.tensor(seqlens, dtype=torch.int64, device=device)[:, None]
    k_pos = start + torch.arange(seqlen_new, device=device)
    q_pos = start + torch.arange(seqlen_q, device=device) if rotate_q_rows else start.expand(len(seqlens), seqlen_q)
    return q_pos, k_pos


def _check_tensors(q, k_cache, v_cache, k, v) -> tuple[int, ...]:
    """Checks q, the caches and the new k/v; returns (batch, seqlen_q, heads, head_dim, kv_heads, head_dim_v,
    seqlen_new)."""
    _check(isinstance(q, Tensor) and q.dim() == 4, "q must be a 4-D tensor (batch, seqlen_q, nheads, headdim)")
    device = q.device
    _check(q.dtype in _FLOAT_DTYPES, f"q must be float32, float16 or bfloat16, got {q.dtype}")
    batch, seqlen_q, heads, head_dim = q.shape
    _check(heads >= 1, f"q must have at least one head, got shape {list(q.shape)}")
    _check(1 <= head_dim <= _MAX_HEAD_DIM, f"q headdim must be in [1, {_MAX_HEAD_DIM}], got {head_dim}")
    for name, cache in (("k_cache", k_cache), ("v_cache", v_cache)):
        _check_tensor(cache, name, 4, device)
        _check(cache.dtype == q.dtype, f"{name} must have the same dtype as q ({q.dtype}), got {cache.dtype}")
        _check(cache.stride(-1) == 1, f"{name} must have a contiguous last dimension, got strides {cache.stride()}")
    _check(
        v_cache.shape[:3] == k_cache.shape[:3],
        f"v_cache must match k_cache {list(k_cache.shape)} except in headdim, got {list(v_cache.shape)}",
    )
    block_size, kv_heads, head_dim_v = k_cache.shape[1], k_cache.shape[2], v_cache.shape[3]
    _check(block_size >= 1, f"k_cache.shape[1] (seqlen_cache, or page_block_size) must be >= 1, got {block_size}")
    _check(
        kv_heads >= 1 and heads % kv_heads == 0,
        f"Number of heads in key/value must divide number of heads in query: q has {heads}, k_cache has {kv_heads}",
    )
    _check(k_cache.shape[3] == head_dim, f"k_cache headdim must equal q headdim ({head_dim}), got {k_cache.shape[3]}")
    _check(1 <= head_dim_v <= _MAX_HEAD_DIM, f"v_cache headdim must be in [1, {_MAX_HEAD_DIM}], got {head_dim_v}")
    _check((k is None) == (v is None), "k and v must be given together")
    new = 0
    if k is not None:
        for name, t, dim in (("k", k, head_dim), ("v", v, head_dim_v)):
            _check_tensor(t, name, 4, device)
            _check(t.dtype == q.dtype, f"{name} must have the same dtype as q ({q.dtype}), got {t.dtype}")
            expected = (batch, k.shape[1], kv_heads, dim)
            _check(
                tuple(t.shape) == expected,
                f"{name} must have shape (batch, seqlen_new, nheads_k, headdim) = {expected}, got {tuple(t.shape)}",
            )
        new = k.shape[1]
    return batch, seqlen_q, heads, head_dim, kv_heads, head_dim_v, new


def flash_attn_with_kvcache(
    q: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
    k: Tensor | None = None,
    v: Tensor | None = None,
    rotary_cos: Tensor | None = None,
    rotary_sin: Tensor | None = None,
    cache_seqlens: Tensor | int | None = None,
    cache_batch_idx: Tensor | None = None,
    cache_leftpad: Tensor | None = None,
    block_table: Tensor | None = None,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    rotary_interleaved: bool = True,
    alibi_slopes: Tensor | None = None,
    num_splits: int = 0,
    return_softmax_lse: bool = False,
):
    """Appends k/v to a KV cache in place, then attends q over the cache (flash-attn's inference entry point).

    Args:
        q: ``(batch, seqlen_q, nheads, headdim)``. Its rows are the last seqlen_q positions of each sequence's keys
            (bottom-right aligned); with more rows than keys the first rows see no key under a causal mask (output 0).
        k_cache, v_cache: paged ``(num_blocks, page_block_size, nheads_k, headdim[_v])`` with ``block_table`` (any
            page size), or contiguous ``(batch_size_cache, seqlen_cache, nheads_k, headdim[_v])`` without it. Same
            dtype as q, contiguous last dimension. Updated in place when k/v are given.
        k, v: optional new keys/values ``(batch, seqlen_new, nheads_k, headdim[_v])``, written at cache positions
            ``cache_seqlens[b], cache_seqlens[b] + 1, ...`` of each sequence.
        rotary_cos, rotary_sin: optional ``(seqlen_ro, rotary_dim / 2)``, only with k/v. Rotary embedding of the
            first ``rotary_dim`` features (see :mod:`ascend_attn.rotary`) of the new keys at positions
            ``cache_seqlens[b] + t``, and of q: row i at ``cache_seqlens[b] + i`` when causal or windowed, every row at
            ``cache_seqlens[b]`` otherwise. Positions are cache indices (they count ``cache_leftpad``).
        cache_seqlens: int or int32 ``(batch,)``: the cache index where the new tokens go (keys before it, from
            ``cache_leftpad``, are already in the cache). Required with a paged cache; defaults to
            ``seqlen_cache - seqlen_new`` for a contiguous one.
        cache_batch_idx: optional int32 ``(batch,)``: the row of a contiguous cache each sequence uses (default
            ``0, 1, ..., batch - 1``); rows must be distinct when k/v are written.
        cache_leftpad: optional int32 ``(batch,)``: a contiguous cache row's keys start here (left padding); key
            positions (causal mask, window, alibi) count from it.
        block_table: int32 ``(batch, max_blocks_per_seq)`` of a paged cache; every entry holding a key this call
            reads or writes must be in ``[0, num_blocks)``.
        softmax_scale, causal, window_size, softcap, alibi_slopes: as in :func:`ascend_attn.flash_attn_func`.
        rotary_interleaved: GPT-J pairs ``(0, 1), (2, 3), ...`` when True (flash-attn's default), GPT-NeoX pairs
            ``(i, i + rotary_dim / 2)`` when False.
        num_splits: accepted for compatibility (int >= 0); every executor chooses its own KV split.
        return_softmax_lse: also return the lse, float32 ``(batch, nheads, seqlen_q)``.

    Returns:
        ``out (batch, seqlen_q, nheads, headdim_v)``, or ``(out, softmax_lse)``.
    """
    batch, seqlen_q, heads, head_dim, kv_heads, head_dim_v, new = _check_tensors(q, k_cache, v_cache, k, v)
    device, cache_rows, block_size = q.device, k_cache.shape[0], k_cache.shape[1]
    _check_options(softmax_scale, window_size, softcap, alibi_slopes, batch, heads, device)
    _check(
        isinstance(num_splits, int) and not isinstance(num_splits, bool) and num_splits >= 0,
        f"num_splits must be an int >= 0, got {num_splits!r}",
    )

    # ---- where each sequence's keys are ----
    paged = block_table is not None
    if paged:
        _check_tensor(block_table, "block_table", 2, device)
        _check(block_table.dtype == torch.int32, f"block_table must have dtype torch.int32, got {block_table.dtype}")
        _check(
            block_table.shape[0] == batch,
            f"block_table must have one row per sequence of q ({batch}), got shape {list(block_table.shape)}",
        )
        if cache_batch_idx is not None or cache_leftpad is not None:
            name = "cache_batch_idx" if cache_batch_idx is not None else "cache_leftpad"
            raise NotImplementedError(
                f"{name} with a block_table (a paged cache) is not supported, as in flash-attn; "
                + ("pass the sequences' rows of block_table instead" if name == "cache_batch_idx" else "")
            )
        _check(cache_seqlens is not None, "cache_seqlens is required with a block_table (a paged cache)")
        capacity = block_table.shape[1] * block_size
    else:
        capacity = block_size  # seqlen_cache
    if cache_seqlens is None:
        cache_seqlens = capacity - new
    if isinstance(cache_seqlens, int) and not isinstance(cache_seqlens, bool):
        seqlens = [cache_seqlens] * batch
    else:
        seqlens = _per_sequence_int32(cache_seqlens, "cache_seqlens", batch, device)
    pads = [0] * batch if cache_leftpad is None else _per_sequence_int32(cache_leftpad, "cache_leftpad", batch, device)
    for b in range(batch):
        _check(seqlens[b] >= 0, f"cache_seqlens[{b}] = {seqlens[b]} must be >= 0")
        _check(
            0 <= pads[b] <= seqlens[b],
            f"cache_leftpad[{b}] = {pads[b]} must be in [0, cache_seqlens[{b}] = {seqlens[b]}]",
        )
        _check(
            seqlens[b] + new <= min(capacity, _INT32_MAX),
            f"cache_seqlens[{b}] + seqlen_new = {seqlens[b]} + {new} exceeds the cache's capacity of {capacity} "
            "tokens per sequence" + (" (block_table width x page_block_size)" if paged else " (k_cache.shape[1])"),
        )
    contexts = [seqlens[b] + new - pads[b] for b in range(batch)]
    if not paged:
        if cache_batch_idx is None:
            _check(
                cache_rows >= batch,
                f"k_cache has {cache_rows} rows (batch_size_cache) for {batch} sequences; pass cache_batch_idx",
            )
            rows = list(range(batch))
        else:
            rows = _per_sequence_int32(cache_batch_idx, "cache_batch_idx", batch, device)
            for b, row in enumerate(rows):
                _check(0 <= row < cache_rows, f"cache_batch_idx[{b}] = {row} is out of range [0, {cache_rows})")
            if new > 0:
                _check(
                    len(set(rows)) == batch,
                    f"cache_batch_idx {rows} repeats a row, so two sequences would write new k/v to the same cache "
                    "row; rows must be distinct when k and v are given",
                )

    if paged:
        spans = []  # keys read (visible to some query) or written (the new ones), as one range per sequence
        for b in range(batch):
            lo, hi = _visible_span(seqlen_q, contexts[b], window_size[0])
            if new > 0:
                lo, hi = (min(lo, seqlens[b]), seqlens[b] + new) if hi > lo else (seqlens[b], seqlens[b] + new)
            spans.append((lo, hi))
        _check_blocks(block_table, k_cache.shape[0], block_size, spans)

    if rotary_cos is not None or rotary_sin is not None:
        _check(rotary_cos is not None and rotary_sin is not None, "rotary_cos and rotary_sin must be given together")
        _check(k is not None, "rotary_cos / rotary_sin need the new k and v: flash-attn rotates q and the new keys")
        rotate_q_rows = causal or tuple(window_size) != (-1, -1)
        q_pos, k_pos = _rotary_positions(
            rotary_cos, rotary_sin, seqlens, seqlen_q, new, rotate_q_rows, head_dim, device
        )
        q = apply_rotary(q, rotary_cos, rotary_sin, q_pos, rotary_interleaved)
        k = apply_rotary(k, rotary_cos, rotary_sin, k_pos, rotary_interleaved)

    # ---- the paged view: (key cache, value cache, block table, slots of the new tokens) ----
    if paged:
        key_cache, value_cache, table = k_cache, v_cache, block_table
        positions = torch.tensor(seqlens, dtype=torch.int64, device=device)[:, None] + torch.arange(new, device=device)
        blocks = block_table.long().gather(1, positions // block_size) if new > 0 else positions
        slots = (blocks * block_size + positions % block_size).reshape(-1)
        if new > 0 and slots.unique().numel() < slots.numel():
            raise RuntimeError(
                "block_table: two sequences would write new k/v to the same cache slot (they share a block at the "
                "positions cache_seqlens .. cache_seqlens + seqlen_new - 1); give each sequence its own last block"
            )
    else:
        key_cache, value_cache, table = _rows_as_pages(k_cache, v_cache, rows, pads)
        start = torch.tensor([r * block_size + s for r, s in zip(rows, seqlens, strict=True)], device=device)
        slots = (start[:, None] + torch.arange(new, device=device)).reshape(-1)

    # ---- write, then attend ----
    if new > 0:
        ops.reshape_and_cache(
            k.reshape(batch * new, kv_heads, head_dim), v.reshape(batch * new, kv_heads, head_dim_v), key_cache,
            value_cache, slots,
        )  # fmt: skip
    cu = torch.arange(batch + 1, dtype=torch.int32, device=device) * seqlen_q
    result = ops.paged_attention(
        q.reshape(batch * seqlen_q, heads, head_dim),
        key_cache,
        value_cache,
        table,
        torch.tensor(contexts, dtype=torch.int32, device=device),
        cu_seqlens_q=cu,
        softmax_scale=softmax_scale,
        causal=causal,
        window_size=window_size,
        softcap=softcap,
        alibi_slopes=alibi_slopes,
        return_lse=return_softmax_lse,
    )
    out, lse = result if return_softmax_lse else (result, None)
    out = out.reshape(batch, seqlen_q, heads, head_dim_v)
    if not return_softmax_lse:
        return out
    return out, lse.reshape(heads, batch, seqlen_q).transpose(0, 1)


def _rows_as_pages(k_cache: Tensor, v_cache: Tensor, rows: list[int], pads: list[int]):
    """A contiguous cache as a paged one: blocks of ``g = gcd(seqlen_cache, *cache_leftpad)`` tokens (whole rows
    without left padding), so each sequence's keys start at a block boundary. Returns views of the caches (writes
    reach the caller's tensors) and the int32 block table ``(batch, seqlen_cache / g)``, padded with -1."""
    seqlen_cache = k_cache.shape[1]
    g = math.gcd(seqlen_cache, *pads)
    if g != seqlen_cache:
        for name, cache in (("k_cache", k_cache), ("v_cache", v_cache)):
            if cache.stride(0) != seqlen_cache * cache.stride(1):
                raise NotImplementedError(
                    f"cache_leftpad needs {name}'s rows laid out back to back ({name}.stride(0) == seqlen_cache * "
                    f"{name}.stride(1)); got strides {cache.stride()}"
                )
        _check(
            k_cache.shape[0] * (seqlen_cache // g) <= _INT32_MAX,
            "cache_leftpad: the cache split into blocks of gcd(seqlen_cache, cache_leftpad) tokens needs more than "
            "2^31 - 1 blocks; use left paddings with a larger common divisor",
        )
    per_row = seqlen_cache // g
    views = [c.view(c.shape[0] * per_row, g, *c.shape[2:]) if g != seqlen_cache else c for c in (k_cache, v_cache)]
    device = k_cache.device
    j = torch.arange(per_row, dtype=torch.int64, device=device)[None, :]
    first = torch.tensor([r * per_row + p // g for r, p in zip(rows, pads, strict=True)], device=device)[:, None]
    skipped = torch.tensor([p // g for p in pads], device=device)[:, None]
    table = torch.where(j < per_row - skipped, first + j, -1).to(torch.int32)
    return views[0], views[1], table
