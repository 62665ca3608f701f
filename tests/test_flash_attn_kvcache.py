"""flash_attn_with_kvcache: flash-attn's semantics (append, rotary, batch index, left padding, paged caches) against a
per-sequence PyTorch reference, and every rejection raised before the cache is written."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_lse_close, assert_out_close
from reference import attention_ref, rotary_ref

import ascend_attn

HEADS, KV_HEADS, DIM = 4, 2, 32


def paged_from(logical: torch.Tensor, block_size: int):
    """Scatters per-sequence caches ``[batch, seqlen_cache, kv_heads, dim]`` into shuffled blocks of a paged cache
    (spare blocks and the tail of last blocks are NaN, so a stray read shows) and returns it with its block table."""
    batch, seqlen = logical.shape[:2]
    per_seq = -(-seqlen // block_size)
    num_blocks = batch * per_seq + 2
    cache = torch.full((num_blocks, block_size, *logical.shape[2:]), float("nan"), dtype=logical.dtype)
    table = torch.randperm(num_blocks)[: batch * per_seq].reshape(batch, per_seq).to(torch.int32)
    for b in range(batch):
        for j in range(per_seq):
            n = min(block_size, seqlen - j * block_size)
            cache[table[b, j], :n] = logical[b, j * block_size : j * block_size + n]
    return cache, table


def gather(cache: torch.Tensor, table: torch.Tensor, seqlen: int) -> torch.Tensor:
    """The per-sequence view ``[batch, seqlen, kv_heads, dim]`` of a paged cache."""
    return torch.stack([torch.cat([cache[int(i)] for i in row])[:seqlen] for row in table])


def reference(q, k_cache, v_cache, k, v, seqlens, rows, pads, rotary=None, **options):
    """flash-attn's rules written per sequence: rotate (q at cache_seqlens + i when causal or windowed, else at
    cache_seqlens; new keys at cache_seqlens + t), write the new k/v at cache_seqlens, attend over keys
    [cache_leftpad, cache_seqlens + seqlen_new). Returns (out, lse, updated k_cache, updated v_cache)."""
    k_cache, v_cache = k_cache.clone(), v_cache.clone()
    new = 0 if k is None else k.shape[1]
    start = torch.tensor(seqlens)[:, None]
    if rotary is not None:
        cos, sin, interleaved = rotary
        moving = options.get("causal", False) or tuple(options.get("window_size", (-1, -1))) != (-1, -1)
        q_pos = start + torch.arange(q.shape[1]) if moving else start.expand(-1, q.shape[1])
        q = rotary_ref(q, cos, sin, q_pos, interleaved)
        k = rotary_ref(k, cos, sin, start + torch.arange(new), interleaved)
    alibi = options.pop("alibi_slopes", None)
    outs, lses = [], []
    for b, (row, s, pad) in enumerate(zip(rows, seqlens, pads, strict=True)):
        if new:
            k_cache[row, s : s + new], v_cache[row, s : s + new] = k[b], v[b]
        slopes = alibi[b] if alibi is not None and alibi.dim() == 2 else alibi
        out, lse = attention_ref(
            q[b : b + 1], k_cache[row, pad : s + new][None], v_cache[row, pad : s + new][None], alibi_slopes=slopes,
            **options,
        )  # fmt: skip
        outs.append(out)
        lses.append(lse)
    return torch.cat(outs), torch.cat(lses), k_cache, v_cache


def rotary_tables(rows: int, rotary_dim: int, dtype=torch.float32):
    angle = torch.rand(rows, rotary_dim // 2) * 2 * torch.pi
    return angle.cos().to(dtype), angle.sin().to(dtype)


CONTIGUOUS_CASES = {
    "append-causal": dict(causal=True),
    "append-noncausal": dict(),
    "window": dict(window_size=(5, 2)),
    "rotary-interleaved-causal": dict(causal=True, rotary=(16, True)),
    "rotary-neox-noncausal": dict(rotary=(32, False)),
    "rotary-neox-window": dict(window_size=(3, 0), rotary=(8, False)),
    "batch-idx": dict(causal=True, batch_idx=[3, 0]),
    "leftpad": dict(causal=True, leftpad=[2, 6]),
    "leftpad-rotary-alibi": dict(causal=True, leftpad=[4, 0], rotary=(16, True), alibi=True),
    "batch-idx-leftpad-softcap": dict(batch_idx=[1, 2], leftpad=[3, 9], softcap=2.0, causal=True),
    "no-new-kv": dict(causal=True, new=0),
    "more-queries-than-keys": dict(causal=True, seqlens=[0, 1], seqlen_q=6, new=2),
}


@pytest.mark.parametrize("case", CONTIGUOUS_CASES.values(), ids=CONTIGUOUS_CASES.keys())
def test_contiguous_cache_matches_reference(case):
    case = dict(case)
    seqlen_q, new, seqlen_cache, cache_rows = case.pop("seqlen_q", 3), case.pop("new", 3), 24, 4
    seqlens = case.pop("seqlens", [7, 13])
    rows, pads = case.pop("batch_idx", None), case.pop("leftpad", None)
    rotary = case.pop("rotary", None)
    if case.pop("alibi", False):
        case["alibi_slopes"] = torch.rand(2, HEADS)
    q = torch.randn(2, seqlen_q, HEADS, DIM)
    k_cache, v_cache = (
        torch.randn(cache_rows, seqlen_cache, KV_HEADS, DIM),
        torch.randn(cache_rows, seqlen_cache, KV_HEADS, DIM),
    )
    k, v = (torch.randn(2, new, KV_HEADS, DIM) for _ in range(2)) if new else (None, None)
    extra = {}
    if rotary is not None:
        cos, sin = rotary_tables(seqlen_cache, rotary[0])
        extra = dict(rotary_cos=cos, rotary_sin=sin, rotary_interleaved=rotary[1])
        rotary = (cos, sin, rotary[1])
    ref, ref_lse, ref_k, ref_v = reference(
        q, k_cache, v_cache, k, v, seqlens, rows or [0, 1], pads or [0, 0], rotary, **case
    )
    out, lse = ascend_attn.flash_attn_with_kvcache(
        q, k_cache, v_cache, k, v, cache_seqlens=torch.tensor(seqlens, dtype=torch.int32),
        cache_batch_idx=None if rows is None else torch.tensor(rows, dtype=torch.int32),
        cache_leftpad=None if pads is None else torch.tensor(pads, dtype=torch.int32), return_softmax_lse=True,
        **case, **extra,
    )  # fmt: skip
    assert_out_close(out, ref)
    assert_lse_close(lse, ref_lse)
    torch.testing.assert_close(k_cache, ref_k, rtol=0, atol=1e-6)
    assert torch.equal(v_cache, ref_v)


@pytest.mark.parametrize("block_size", [16, 5])
@pytest.mark.parametrize(
    "options",
    [
        dict(causal=True),
        dict(causal=True, rotary=(16, False), softcap=3.0),
        dict(window_size=(6, 0), rotary=(32, True), alibi=True),
        dict(causal=True, seqlens=[0, 2], seqlen_q=7),
    ],
    ids=["causal", "rotary-neox-softcap", "window-rotary-alibi", "more-queries-than-keys"],
)
def test_paged_cache_matches_reference(block_size, options):
    options = dict(options)
    seqlen_q, seqlens, new, seqlen_cache = options.pop("seqlen_q", 2), options.pop("seqlens", [9, 20]), 3, 40
    rotary = options.pop("rotary", None)
    if options.pop("alibi", False):
        options["alibi_slopes"] = torch.rand(HEADS)
    logical_k, logical_v = torch.randn(2, seqlen_cache, KV_HEADS, DIM), torch.randn(2, seqlen_cache, KV_HEADS, DIM)
    k_cache, table = paged_from(logical_k, block_size)
    v_cache = torch.full_like(k_cache, float("nan"))
    for b in range(2):  # the same block table serves both caches
        for j, block in enumerate(table[b].tolist()):
            n = min(block_size, seqlen_cache - j * block_size)
            v_cache[block, :n] = logical_v[b, j * block_size : j * block_size + n]
    q, k, v = (
        torch.randn(2, seqlen_q, HEADS, DIM),
        torch.randn(2, new, KV_HEADS, DIM),
        torch.randn(2, new, KV_HEADS, DIM),
    )
    extra = {}
    if rotary is not None:
        cos, sin = rotary_tables(seqlen_cache, rotary[0])
        extra = dict(rotary_cos=cos, rotary_sin=sin, rotary_interleaved=rotary[1])
        rotary = (cos, sin, rotary[1])
    ref, ref_lse, ref_k, ref_v = reference(q, logical_k, logical_v, k, v, seqlens, [0, 1], [0, 0], rotary, **options)
    out, lse = ascend_attn.flash_attn_with_kvcache(
        q, k_cache, v_cache, k, v, cache_seqlens=torch.tensor(seqlens, dtype=torch.int32), block_table=table,
        return_softmax_lse=True, **options, **extra,
    )  # fmt: skip
    assert_out_close(out, ref)
    assert_lse_close(lse, ref_lse)
    for b, s in enumerate(seqlens):  # the new rows landed in their pages; the rest of the cache is as it was
        torch.testing.assert_close(gather(k_cache, table, s + new)[b], ref_k[b, : s + new], rtol=0, atol=1e-6)
        assert torch.equal(gather(v_cache, table, s + new)[b], ref_v[b, : s + new])


def test_bf16_with_rotary_within_twice_torch_error():
    q = torch.randn(2, 4, HEADS, 64).bfloat16()
    k_cache, v_cache = torch.randn(2, 32, KV_HEADS, 64).bfloat16(), torch.randn(2, 32, KV_HEADS, 64).bfloat16()
    k, v = torch.randn(2, 4, KV_HEADS, 64).bfloat16(), torch.randn(2, 4, KV_HEADS, 64).bfloat16()
    cos, sin = rotary_tables(32, 64, torch.bfloat16)
    seqlens = torch.tensor([3, 20], dtype=torch.int32)
    where = ([3, 20], [0, 1], [0, 0], (cos, sin, False))
    ref = reference(*(t.float() for t in (q, k_cache, v_cache, k, v)), *where, causal=True)[0]
    low = reference(q, k_cache, v_cache, k, v, *where, causal=True, upcast=False)[0]
    out = ascend_attn.flash_attn_with_kvcache(
        q, k_cache, v_cache, k, v, cos, sin, seqlens, causal=True, rotary_interleaved=False
    )
    assert_out_close(out, ref, low)


def test_positional_order_is_flash_attn():
    """q, k_cache, v_cache, k, v, rotary_cos, rotary_sin, cache_seqlens, cache_batch_idx, cache_leftpad, block_table,
    softmax_scale, causal, window_size, softcap, rotary_interleaved, alibi_slopes, num_splits, return_softmax_lse."""
    q = torch.randn(1, 2, HEADS, DIM)
    k_cache, v_cache = torch.randn(2, 16, KV_HEADS, DIM), torch.randn(2, 16, KV_HEADS, DIM)
    k, v = torch.randn(1, 2, KV_HEADS, DIM), torch.randn(1, 2, KV_HEADS, DIM)
    cos, sin = rotary_tables(16, 8)
    seqlens, rows, pads = (torch.tensor([x], dtype=torch.int32) for x in (6, 1, 2))
    positional = ascend_attn.flash_attn_with_kvcache(
        q, k_cache.clone(), v_cache.clone(), k, v, cos, sin, seqlens, rows, pads, None, 0.3, True, (4, 0), 0.0,
        False, None, 2, True,
    )  # fmt: skip
    named = ascend_attn.flash_attn_with_kvcache(
        q, k_cache, v_cache, k=k, v=v, rotary_cos=cos, rotary_sin=sin, cache_seqlens=seqlens, cache_batch_idx=rows,
        cache_leftpad=pads, softmax_scale=0.3, causal=True, window_size=(4, 0), rotary_interleaved=False,
        num_splits=2, return_softmax_lse=True,
    )  # fmt: skip
    assert torch.equal(positional[0], named[0]) and torch.equal(positional[1], named[1])


def test_default_cache_seqlens_fill_a_contiguous_cache():
    """Without cache_seqlens a contiguous cache is full: the new tokens take its last seqlen_new rows."""
    q, k_cache, v_cache = (
        torch.randn(2, 1, HEADS, DIM),
        torch.randn(2, 8, KV_HEADS, DIM),
        torch.randn(2, 8, KV_HEADS, DIM),
    )
    k, v = torch.randn(2, 1, KV_HEADS, DIM), torch.randn(2, 1, KV_HEADS, DIM)
    ref = reference(q, k_cache, v_cache, k, v, [7, 7], [0, 1], [0, 0])[0]
    assert_out_close(ascend_attn.flash_attn_with_kvcache(q, k_cache, v_cache, k, v), ref)


def test_repeated_batch_idx_is_fine_without_new_kv():
    q, k_cache, v_cache = (
        torch.randn(2, 1, HEADS, DIM),
        torch.randn(3, 8, KV_HEADS, DIM),
        torch.randn(3, 8, KV_HEADS, DIM),
    )
    out = ascend_attn.flash_attn_with_kvcache(
        q, k_cache, v_cache, cache_seqlens=5, cache_batch_idx=torch.tensor([2, 2], dtype=torch.int32)
    )
    assert_out_close(out, reference(q, k_cache, v_cache, None, None, [5, 5], [2, 2], [0, 0])[0])


# ---- rejections: each names flash-attn's argument, and the caches are left as they were ----


def _paged_call(**overrides):
    """A valid paged call (sequences of 5 and 9 cached tokens, 3 new each, blocks of 8), with overrides."""
    torch.manual_seed(1)
    k_cache, v_cache = torch.randn(6, 8, KV_HEADS, 16), torch.randn(6, 8, KV_HEADS, 16)
    args = dict(
        q=torch.randn(2, 3, HEADS, 16), k_cache=k_cache, v_cache=v_cache, k=torch.randn(2, 3, KV_HEADS, 16),
        v=torch.randn(2, 3, KV_HEADS, 16), cache_seqlens=torch.tensor([5, 9], dtype=torch.int32),
        block_table=torch.tensor([[0, 1, -1], [2, 3, 4]], dtype=torch.int32), causal=True,
    )  # fmt: skip
    args.update(overrides)
    return args


def _contiguous_call(**overrides):
    torch.manual_seed(1)
    args = dict(
        q=torch.randn(2, 3, HEADS, 16), k_cache=torch.randn(3, 16, KV_HEADS, 16),
        v_cache=torch.randn(3, 16, KV_HEADS, 16), k=torch.randn(2, 3, KV_HEADS, 16),
        v=torch.randn(2, 3, KV_HEADS, 16), cache_seqlens=torch.tensor([5, 9], dtype=torch.int32),
    )  # fmt: skip
    args.update(overrides)
    return args


cos8, sin8 = rotary_tables(32, 8)
REJECTED = {
    "softcap": (dict(softcap=-1.0), RuntimeError, "softcap must be >= 0"),
    "window": (dict(window_size=(-2, 0)), RuntimeError, "window_size entries must be >= 0, or -1"),
    "window-arity": (dict(window_size=(1, 2, 3)), RuntimeError, r"window_size must be \(left, right\)"),
    "softmax_scale": (dict(softmax_scale=float("inf")), RuntimeError, "softmax_scale must be finite"),
    "alibi-shape": (dict(alibi_slopes=torch.rand(3)), RuntimeError, r"alibi_slopes must have shape \(nheads,\)"),
    "alibi-dtype": (dict(alibi_slopes=torch.rand(4).double()), RuntimeError, "alibi_slopes must be float32"),
    "q-dtype": (dict(q=torch.randn(2, 3, HEADS, 16).double()), RuntimeError, "q must be float32, float16 or bf"),
    "q-vs-cache-dtype": (dict(q=torch.randn(2, 3, HEADS, 16).half()), RuntimeError, "k_cache must have the same dtype"),
    "q-heads": (dict(q=torch.randn(2, 3, 3, 16)), RuntimeError, "Number of heads in key/value must divide"),
    "q-headdim": (dict(q=torch.randn(2, 3, HEADS, 8)), RuntimeError, "k_cache headdim must equal q headdim"),
    "q-rank": (dict(q=torch.randn(6, HEADS, 16)), RuntimeError, "q must be a 4-D tensor"),
    "k-without-v": (dict(v=None), RuntimeError, "k and v must be given together"),
    "k-shape": (dict(k=torch.randn(2, 3, 1, 16)), RuntimeError, r"k must have shape \(batch, seqlen_new"),
    "v-shape": (dict(v=torch.randn(2, 2, KV_HEADS, 16)), RuntimeError, r"v must have shape \(batch, seqlen_new"),
    "k-dtype": (dict(k=torch.randn(2, 3, KV_HEADS, 16).half()), RuntimeError, "k must have the same dtype as q"),
    "block-out-of-range": (
        dict(block_table=torch.tensor([[0, 1, -1], [2, 99, 4]], dtype=torch.int32)),
        RuntimeError,
        r"block_table\[1\]\[1\] = 99 is out of range \[0, 6\)",
    ),
    "block-missing-for-new-keys": (
        dict(
            block_table=torch.tensor([[0, -1, -1], [2, 3, 4]], dtype=torch.int32),
            cache_seqlens=torch.tensor([7, 9], dtype=torch.int32),  # new keys at positions 7..9: blocks 0 and 1
        ),
        RuntimeError,
        r"block_table\[0\]\[1\] = -1 is out of range",
    ),
    "block-table-int64": (
        dict(block_table=torch.tensor([[0, 1, -1], [2, 3, 4]])),
        RuntimeError,
        "block_table must have dtype torch.int32",
    ),
    "block-table-rows": (
        dict(block_table=torch.tensor([[0, 1, 2]], dtype=torch.int32)),
        RuntimeError,
        r"block_table must have one row per sequence of q \(2\)",
    ),
    "shared-written-block": (
        dict(block_table=torch.tensor([[2, 3, -1], [2, 3, 4]], dtype=torch.int32), cache_seqlens=9),
        RuntimeError,
        "block_table: two sequences would write new k/v to the same cache slot",
    ),
    "capacity": (
        dict(cache_seqlens=torch.tensor([5, 22], dtype=torch.int32)),
        RuntimeError,
        r"cache_seqlens\[1\] \+ seqlen_new = 22 \+ 3 exceeds the cache's capacity of 24",
    ),
    "cache_seqlens-dtype": (dict(cache_seqlens=torch.tensor([5, 9])), RuntimeError, "cache_seqlens must have dtype"),
    "cache_seqlens-negative": (dict(cache_seqlens=-1), RuntimeError, r"cache_seqlens\[0\] = -1 must be >= 0"),
    "cache_seqlens-missing": (dict(cache_seqlens=None), RuntimeError, "cache_seqlens is required with a block_table"),
    "rotary-without-new-kv": (
        dict(k=None, v=None, rotary_cos=cos8, rotary_sin=sin8),
        RuntimeError,
        "rotary_cos / rotary_sin need the new k and v",
    ),
    "rotary-half": (dict(rotary_cos=cos8), RuntimeError, "rotary_cos and rotary_sin must be given together"),
    "rotary-shapes": (
        dict(rotary_cos=cos8, rotary_sin=sin8[:, :2]),
        RuntimeError,
        "rotary_sin must have the shape of rotary_cos",
    ),
    "rotary-dim": (
        dict(rotary_cos=torch.ones(32, 9), rotary_sin=torch.ones(32, 9)),
        RuntimeError,
        r"rotary_dim = 2 \* rotary_cos.shape\[1\] = 18 must be in \[2, headdim = 16\]",
    ),
    "rotary-rows": (
        dict(rotary_cos=cos8[:10], rotary_sin=sin8[:10]),
        RuntimeError,
        r"rotary_cos has 10 rows \(positions\), but position 11 is rotated",
    ),
    "num_splits": (dict(num_splits=-1), RuntimeError, "num_splits must be an int >= 0"),
    "batch-idx-with-paged": (
        dict(cache_batch_idx=torch.tensor([0, 1], dtype=torch.int32)),
        NotImplementedError,
        "cache_batch_idx with a block_table",
    ),
    "leftpad-with-paged": (
        dict(cache_leftpad=torch.tensor([0, 1], dtype=torch.int32)),
        NotImplementedError,
        "cache_leftpad with a block_table",
    ),
    "k_cache-device": (
        dict(k_cache=torch.randn(6, 8, KV_HEADS, 16, device="meta")),
        RuntimeError,
        r"k_cache must be on the same device as q \(cpu\), got meta",
    ),
}


@pytest.mark.parametrize("overrides, error, match", REJECTED.values(), ids=REJECTED.keys())
def test_paged_rejects_before_writing(overrides, error, match):
    args = _paged_call(**overrides)
    before = [args[name].clone() for name in ("k_cache", "v_cache") if args[name].device.type == "cpu"]
    with pytest.raises(error, match=match):
        ascend_attn.flash_attn_with_kvcache(**args)
    after = [args[name] for name in ("k_cache", "v_cache") if args[name].device.type == "cpu"]
    for b, a in zip(before, after, strict=True):
        assert torch.equal(a, b)


REJECTED_CONTIGUOUS = {
    "batch-idx-range": (
        dict(cache_batch_idx=torch.tensor([0, 7], dtype=torch.int32)),
        r"cache_batch_idx\[1\] = 7 is out of range \[0, 3\)",
    ),
    "batch-idx-repeated": (dict(cache_batch_idx=torch.tensor([1, 1], dtype=torch.int32)), "repeats a row"),
    "leftpad-past-seqlens": (
        dict(cache_leftpad=torch.tensor([6, 0], dtype=torch.int32)),
        r"cache_leftpad\[0\] = 6 must be in \[0, cache_seqlens\[0\] = 5\]",
    ),
    "too-few-cache-rows": (
        dict(k_cache=torch.randn(1, 16, KV_HEADS, 16), v_cache=torch.randn(1, 16, KV_HEADS, 16)),
        "k_cache has 1 rows",
    ),
    "capacity": (dict(cache_seqlens=14), r"exceeds the cache's capacity of 16 tokens per sequence \(k_cache.shape"),
    "v_cache-shape": (dict(v_cache=torch.randn(3, 15, KV_HEADS, 16)), "v_cache must match k_cache"),
}


@pytest.mark.parametrize("overrides, match", REJECTED_CONTIGUOUS.values(), ids=REJECTED_CONTIGUOUS.keys())
def test_contiguous_rejects_before_writing(overrides, match):
    args = _contiguous_call(**overrides)
    before = args["k_cache"].clone(), args["v_cache"].clone()
    with pytest.raises(RuntimeError, match=match):
        ascend_attn.flash_attn_with_kvcache(**args)
    assert torch.equal(args["k_cache"], before[0]) and torch.equal(args["v_cache"], before[1])
