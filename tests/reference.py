"""Slow, obviously correct references for the attention ops (einsum + fp32 softmax, one formula per rule)."""

from __future__ import annotations

import math

import torch


def visible_mask(seqlen_q: int, seqlen_k: int, causal: bool = False, window_size=(-1, -1)) -> torch.Tensor:
    """Bool ``[seqlen_q, seqlen_k]``: key j visible to query i, positions aligned bottom-right."""
    left, right = window_size
    if causal:
        right = 0  # causal is the window (left, 0)
    pos = torch.arange(seqlen_q)[:, None] + seqlen_k - seqlen_q  # absolute position of query i
    j = torch.arange(seqlen_k)[None, :]
    mask = torch.ones(seqlen_q, seqlen_k, dtype=torch.bool)
    if left >= 0:
        mask &= j >= pos - left
    if right >= 0:
        mask &= j <= pos + right
    return mask


def alibi_bias(alibi_slopes: torch.Tensor, seqlen_q: int, seqlen_k: int) -> torch.Tensor:
    """fp32 ``[1 or batch, heads, seqlen_q, seqlen_k]``: ``-slope * |i + seqlen_k - seqlen_q - j|``."""
    pos = torch.arange(seqlen_q)[:, None] + seqlen_k - seqlen_q
    dist = (pos - torch.arange(seqlen_k)[None, :]).abs().float()
    slopes = alibi_slopes.float()
    slopes = slopes[None] if slopes.dim() == 1 else slopes  # [heads] -> [1, heads]
    return -slopes[:, :, None, None] * dist


def attention_ref(
    q, k, v, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None, upcast=True
):
    """Attention on BSND tensors: q ``[b, sq, h, d]``, k ``[b, sk, hk, d]``, v ``[b, sk, hk, dv]``.

    Returns ``(out [b, sq, h, dv] in q's dtype, lse fp32 [b, h, sq])``. ``upcast=True`` computes in fp32 (fp64 for
    fp64 inputs); ``upcast=False`` computes in the input dtype (the "same-dtype PyTorch computation" of the tolerance
    policy; its lse is still at least fp32). A row with no visible key gives 0 and lse -inf, and zero gradients under
    autograd (its scores are replaced by 0 before the softmax, so no NaN reaches the backward).
    """
    dtype = q.dtype
    if upcast:
        wide = torch.promote_types(dtype, torch.float32)
        q, k, v = q.to(wide), k.to(wide), v.to(wide)
    seqlen_q, heads, head_dim = q.shape[1:]
    seqlen_k, kv_heads = k.shape[1], k.shape[2]
    k = k.repeat_interleave(heads // kv_heads, dim=2)  # q head h reads kv head h // group
    v = v.repeat_interleave(heads // kv_heads, dim=2)
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(head_dim)
    scores = torch.einsum("bqhd,bkhd->bhqk", q * scale, k)
    if softcap > 0:
        scores = softcap * torch.tanh(scores / softcap)
    if alibi_slopes is not None:
        # Rounded once to the compute dtype, so upcast=False stays in the input dtype.
        scores = scores + alibi_bias(alibi_slopes, seqlen_q, seqlen_k).to(scores.dtype)
    mask = visible_mask(seqlen_q, seqlen_k, causal, window_size)
    empty = ~mask.any(dim=-1, keepdim=True)  # [sq, 1]: rows that see no key
    # softmax of an all -inf row is NaN: such rows get finite scores here and output 0 below.
    scores = scores.masked_fill(~mask, float("-inf")).masked_fill(empty, 0.0)
    lse = torch.logsumexp(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1)
    lse = lse.masked_fill(empty.squeeze(-1), float("-inf"))
    probs = torch.softmax(scores, dim=-1).masked_fill(empty, 0.0)
    out = torch.einsum("bhqk,bkhd->bqhd", probs, v)
    return out.to(dtype), lse


def attention_varlen_ref(q, k, v, cu_seqlens_q, cu_seqlens_k, alibi_slopes=None, upcast=True, **options):
    """Packed TND reference, one :func:`attention_ref` call per sequence.

    q ``[total_q, h, d]``, k ``[total_k, hk, d]``, v ``[total_k, hk, dv]``, cu_seqlens int32 ``[batch + 1]``;
    alibi_slopes ``[h]`` or ``[batch, h]`` (sequence b uses row b). Returns ``(out [total_q, h, dv],
    lse fp32 [h, total_q])``.
    """
    outs, lses = [], []
    for b in range(cu_seqlens_q.numel() - 1):
        q0, q1 = int(cu_seqlens_q[b]), int(cu_seqlens_q[b + 1])
        k0, k1 = int(cu_seqlens_k[b]), int(cu_seqlens_k[b + 1])
        slopes = alibi_slopes[b] if alibi_slopes is not None and alibi_slopes.dim() == 2 else alibi_slopes
        out, lse = attention_ref(
            q[None, q0:q1], k[None, k0:k1], v[None, k0:k1], alibi_slopes=slopes, upcast=upcast, **options
        )
        outs.append(out[0])
        lses.append(lse[0])
    return torch.cat(outs), torch.cat(lses, dim=1)


def grads_ref(forward, inputs, dout, upcast=True):
    """``(dq, dk, dv)`` of ``forward(q, k, v) -> out`` (a reference above) by PyTorch autograd, for dout.

    ``upcast=True``: in fp64 (the reference gradients); ``upcast=False``: in the inputs' dtype (the same-dtype PyTorch
    computation the tolerance policy compares against). Returned in that precision.
    """
    dtype = torch.float64 if upcast else inputs[0].dtype
    leaves = [x.detach().to(dtype).requires_grad_() for x in inputs]
    out = forward(*leaves)
    return torch.autograd.grad(out, leaves, dout.to(dtype))


def gather_pages(cache, block_table_row, length):
    """Walks one sequence's block table: ``[length, kv_heads, dim]`` from ``cache [num_blocks, block_size, ...]``."""
    block_size = cache.shape[1]
    rows = [cache[int(block_table_row[t // block_size]), t % block_size] for t in range(length)]
    return torch.stack(rows) if rows else cache.new_zeros((0, *cache.shape[2:]))


def paged_attention_ref(
    q,
    key_cache,
    value_cache,
    block_tables,
    context_lens,
    cu_seqlens_q=None,
    alibi_slopes=None,
    causal=True,
    upcast=True,
    **options,
):
    """Page-table-walking reference: ``(out [num_tokens, heads, dv], lse fp32 [heads, num_tokens])``."""
    num_seqs = context_lens.numel()
    if cu_seqlens_q is None:
        cu_seqlens_q = torch.arange(num_seqs + 1, dtype=torch.int32)
    outs, lses = [], []
    for s in range(num_seqs):
        q0, q1, ctx = int(cu_seqlens_q[s]), int(cu_seqlens_q[s + 1]), int(context_lens[s])
        k = gather_pages(key_cache, block_tables[s], ctx)
        v = gather_pages(value_cache, block_tables[s], ctx)
        slopes = alibi_slopes[s] if alibi_slopes is not None and alibi_slopes.dim() == 2 else alibi_slopes
        out, lse = attention_ref(
            q[None, q0:q1], k[None], v[None], causal=causal, alibi_slopes=slopes, upcast=upcast, **options
        )
        outs.append(out[0])
        lses.append(lse[0])
    return torch.cat(outs), torch.cat(lses, dim=1)


def make_varlen(q_lens, k_lens, heads, kv_heads, head_dim, head_dim_v, dtype):
    """Random packed TND q ``[sum(q_lens), heads, head_dim]``, k/v ``[sum(k_lens), kv_heads, head_dim(_v)]`` and
    their int32 cu_seqlens."""
    cu_q = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    cu_k = torch.tensor([0, *torch.tensor(k_lens).cumsum(0).tolist()], dtype=torch.int32)
    q = torch.randn(int(cu_q[-1]), heads, head_dim, dtype=dtype)
    k = torch.randn(int(cu_k[-1]), kv_heads, head_dim, dtype=dtype)
    v = torch.randn(int(cu_k[-1]), kv_heads, head_dim_v, dtype=dtype)
    return q, k, v, cu_q, cu_k


def make_paged(context_lens, block_size, kv_heads, head_dim, head_dim_v, dtype, spare_blocks=3):
    """Caches ``[num_blocks, block_size, kv_heads, head_dim(_v)]`` filled with NaN except the slots the sequences own
    (so any stray read shows), a shuffled block table padded with -1, and int32 context_lens."""
    blocks_per_seq = [-(-c // block_size) for c in context_lens]
    num_blocks = sum(blocks_per_seq) + spare_blocks
    key_cache = torch.full((num_blocks, block_size, kv_heads, head_dim), float("nan"), dtype=dtype)
    value_cache = torch.full((num_blocks, block_size, kv_heads, head_dim_v), float("nan"), dtype=dtype)
    order = torch.randperm(num_blocks)
    width = max(blocks_per_seq + [1]) + 1
    tables = torch.full((len(context_lens), width), -1, dtype=torch.int32)
    used = 0
    for s, (ctx, n) in enumerate(zip(context_lens, blocks_per_seq, strict=True)):
        tables[s, :n] = order[used : used + n].to(torch.int32)
        used += n
        for i in range(n):
            b, rows = int(tables[s, i]), min(block_size, ctx - i * block_size)
            key_cache[b, :rows] = torch.randn(rows, kv_heads, head_dim).to(dtype)
            value_cache[b, :rows] = torch.randn(rows, kv_heads, head_dim_v).to(dtype)
    return key_cache, value_cache, tables, torch.tensor(context_lens, dtype=torch.int32)


def rotary_ref(x, cos, sin, positions, interleaved):
    """Rotary embedding in flash-attn's reference form ``x * cos + rotate_half(x) * sin`` on the first
    ``rotary_dim = 2 * cos.shape[1]`` features: x ``[b, s, h, d]``, cos/sin ``[seqlen_ro, rotary_dim / 2]``, positions
    int ``[b, s]``. fp32 arithmetic, result in x's dtype."""
    rotary_dim = 2 * cos.shape[1]
    c, s = cos[positions].float(), sin[positions].float()  # [b, s, rotary_dim / 2]
    rot = x[..., :rotary_dim].float()
    if interleaved:  # pairs (0, 1), (2, 3), ...: rotate_half maps (a, b) to (-b, a) within each pair
        c, s = c.repeat_interleave(2, dim=-1), s.repeat_interleave(2, dim=-1)
        half_turn = torch.stack((-rot[..., 1::2], rot[..., 0::2]), dim=-1).flatten(-2)
    else:  # GPT-NeoX: halves (x1, x2) -> (-x2, x1)
        c, s = torch.cat((c, c), dim=-1), torch.cat((s, s), dim=-1)
        half = rotary_dim // 2
        half_turn = torch.cat((-rot[..., half:], rot[..., :half]), dim=-1)
    out = rot * c[:, :, None, :] + half_turn * s[:, :, None, :]
    return torch.cat((out.to(x.dtype), x[..., rotary_dim:]), dim=-1)
