"""paged_attention, reshape_and_cache, merge_attn_states and flash_attn_with_kvcache on CPU."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_lse_close, assert_out_close
from reference import attention_ref, gather_pages, make_paged, paged_attention_ref

import ascend_attn
from ascend_attn import sim

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
BLOCK_SIZES = [1, 16, 48, 128, 512]
NUM_HEADS = [(8, 8), (8, 2), (8, 1)]  # GQA ratios 1, 4, 8


def run_and_check(q, kc, vc, tables, lens, cu=None, dtype=torch.float32, **options):
    out, lse = ascend_attn.paged_attention(q, kc, vc, tables, lens, cu_seqlens_q=cu, return_lse=True, **options)
    ref, ref_lse = paged_attention_ref(q, kc, vc, tables, lens, cu, **options)
    low = (
        None if dtype == torch.float32 else paged_attention_ref(q, kc, vc, tables, lens, cu, upcast=False, **options)[0]
    )
    assert_out_close(out, ref, low)
    assert_lse_close(lse, ref_lse)
    return out


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
@pytest.mark.parametrize("heads", NUM_HEADS, ids=["mha", "gqa4", "gqa8"])
def test_decode_block_sizes_x_heads(block_size, heads):
    lens = [1, 37, 300, block_size, 2 * block_size + 5]
    kc, vc, tables, ctx = make_paged(lens, block_size, heads[1], 64, 64, torch.float32)
    q = torch.randn(len(lens), heads[0], 64)
    run_and_check(q, kc, vc, tables, ctx)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("dims", [(64, 64), (128, 128), (80, 80), (256, 256), (192, 128)], ids=str)
def test_decode_dtypes_x_head_dims(dtype, dims):
    lens = [5, 130, 17]
    kc, vc, tables, ctx = make_paged(lens, 16, 2, dims[0], dims[1], dtype)
    run_and_check(torch.randn(3, 8, dims[0]).to(dtype), kc, vc, tables, ctx, dtype=dtype)


@pytest.mark.parametrize(
    "options",
    [
        {"window_size": (50, -1)},
        {"softcap": 5.0},
        {"alibi": True},
        {"causal": False},
        {"softmax_scale": 0.2, "window_size": (7, 0)},
    ],
    ids=str,
)
def test_multi_token_queries(options):
    """Speculative / chunked-prefill queries: the last q_len positions of each context, causal among themselves."""
    options = dict(options)
    lens, q_lens = [40, 7, 300, 1], [5, 7, 64, 1]
    kc, vc, tables, ctx = make_paged(lens, 16, 2, 64, 64, torch.float32)
    cu = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    if options.pop("alibi", False):
        options["alibi_slopes"] = torch.rand(len(lens), 8)
    run_and_check(torch.randn(int(cu[-1]), 8, 64), kc, vc, tables, ctx, cu, **options)


def test_long_and_short_sequences_split_kv():
    """One long sequence and several short ones: few work items, so the long one is split over the KV length."""
    lens = [9000, 3, 70]
    kc, vc, tables, ctx = make_paged(lens, 128, 1, 128, 128, torch.bfloat16)
    run_and_check(torch.randn(3, 8, 128).bfloat16(), kc, vc, tables, ctx, dtype=torch.bfloat16)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize(
    "case",
    [
        # heads, kv_heads, head_dim, head_dim_v, block_size, context_lens, q_lens, options
        (32, 8, 128, 128, 128, [2000, 1, 300], [1, 1, 1], {}),  # eight kv heads per decode item
        (16, 8, 40, 72, 16, [2000, 1], [1, 1], {"softcap": 4.0}),  # head dims off the vector width, P V panel tails
        (8, 8, 1, 3, 48, [2000, 1, 300], [1, 1, 1], {"alibi": True}),  # MHA, head_dim 1: every K and V row a tail
        (12, 4, 64, 64, 16, [2000, 1, 300], [2, 1, 2], {"window_size": (100, 0)}),  # two query rows, causal window
        (8, 4, 96, 32, 512, [5000], [1], {}),  # one long sequence: key splits over items of all kv heads
    ],
    ids=["gqa4-d128", "d40-dv72", "mha-d1", "two-tokens-window", "one-long"],
)
def test_decode_items_of_several_kv_heads(dtype, case):
    """Decode items read the K and V rows of several kv heads together; each head's rows still see only their own."""
    heads, kv_heads, d, dv, block_size, lens, q_lens, options = case
    options = dict(options)
    kc, vc, tables, ctx = make_paged(lens, block_size, kv_heads, d, dv, dtype)
    cu = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    if options.pop("alibi", False):
        options["alibi_slopes"] = torch.rand(len(lens), heads)
    q = torch.randn(int(cu[-1]), heads, d).to(dtype)
    run_and_check(q, kc, vc, tables, ctx, cu, dtype=dtype, **options)


def test_each_isa(isa):
    kc, vc, tables, ctx = make_paged([33, 2000], 16, 2, 80, 80, torch.float16)
    cu = torch.tensor([0, 3, 4], dtype=torch.int32)
    run_and_check(torch.randn(4, 4, 80).half(), kc, vc, tables, ctx, cu, dtype=torch.float16, softcap=3.0)


@pytest.mark.parametrize(
    "options",
    [{}, {"causal": False}, {"window_size": (2, 0)}, {"softcap": 2.0, "alibi": True}],
    ids=["causal", "noncausal", "window", "softcap-alibi"],
)
def test_more_queries_than_keys(options):
    """flash-attn's rule: a sequence's queries are its last positions even when there are more queries than keys; the
    first ones then sit before position 0 and, under a causal mask, see no key (0, lse -inf)."""
    options = dict(options)
    lens, q_lens = [3, 0, 20], [5, 2, 4]
    kc, vc, tables, ctx = make_paged(lens, 8, 2, 32, 32, torch.float32)
    cu = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    if options.pop("alibi", False):
        options["alibi_slopes"] = torch.rand(8)
    out = run_and_check(torch.randn(int(cu[-1]), 8, 32), kc, vc, tables, ctx, cu, **options)
    if options.get("causal", True):
        assert torch.equal(out[:2], torch.zeros_like(out[:2])) and torch.equal(out[5:7], torch.zeros_like(out[5:7]))


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "noncausal"])
def test_more_queries_than_keys_on_the_simulator(causal):
    """The Ascend C kernel follows the same rule (the shared argument check lets it through on every executor)."""
    lens, q_lens = [3, 0, 40], [5, 2, 4]
    kc, vc, tables, ctx = make_paged(lens, 16, 2, 32, 32, torch.float16)
    cu = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    q = torch.randn(int(cu[-1]), 4, 32).half()
    r = sim.paged_attention(q, kc, vc, tables, ctx, cu, causal=causal, return_lse=True, num_cores=4)
    ref, ref_lse = paged_attention_ref(q.float(), kc.float(), vc.float(), tables, ctx, cu, causal=causal)
    low, _ = paged_attention_ref(q, kc, vc, tables, ctx, cu, causal=causal, upcast=False)
    assert_out_close(r.out, ref, low)
    assert_lse_close(r.lse, ref_lse, atol=2e-3)


def test_window_wider_than_int32_is_unbounded():
    """A window side >= 2^31 - 1 covers every key: the same as -1, never wrapped to a narrow window."""
    kc, vc, tables, ctx = make_paged([40, 7], 16, 2, 16, 16, torch.float32)
    q = torch.randn(2, 4, 16)
    unbounded = ascend_attn.paged_attention(q, kc, vc, tables, ctx, causal=False, window_size=(-1, -1))
    for window in [(2**31 + 3, 2**32 + 1), (2**31 - 1, 2**31 - 1), (2**40, -1)]:
        out = ascend_attn.paged_attention(q, kc, vc, tables, ctx, causal=False, window_size=window)
        assert torch.equal(out, unbounded), window
    kc, vc, q = kc.half(), vc.half(), q.half()  # and the Ascend C kernel, whose tiling holds int32 windows
    unbounded = sim.paged_attention(q, kc, vc, tables, ctx, causal=False, num_cores=2).out
    wide = sim.paged_attention(q, kc, vc, tables, ctx, causal=False, window_size=(2**31 + 3, 2**32 + 1), num_cores=2)
    assert torch.equal(wide.out, unbounded)


def test_equals_varlen_on_gathered_kv():
    lens, q_lens = [100, 17, 600], [3, 17, 1]
    kc, vc, tables, ctx = make_paged(lens, 32, 2, 64, 64, torch.float32)
    cu_q = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    cu_k = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32)
    k = torch.cat([gather_pages(kc, tables[s], n) for s, n in enumerate(lens)])
    v = torch.cat([gather_pages(vc, tables[s], n) for s, n in enumerate(lens)])
    q = torch.randn(int(cu_q[-1]), 8, 64)
    paged, paged_lse = ascend_attn.paged_attention(q, kc, vc, tables, ctx, cu_seqlens_q=cu_q, return_lse=True)
    dense, dense_lse = ascend_attn.flash_attention_varlen(q, k, v, cu_q, cu_k, 17, 600, causal=True, return_lse=True)
    torch.testing.assert_close(paged, dense, rtol=0, atol=1e-6)
    torch.testing.assert_close(paged_lse, dense_lse, rtol=0, atol=1e-6)


# ---- reshape_and_cache ----


@pytest.mark.parametrize("slot_dtype", [torch.int32, torch.int64])
def test_reshape_and_cache_writes_slots_and_skips_padding(slot_dtype):
    kc = torch.zeros(4, 8, 2, 16, dtype=torch.bfloat16)
    vc = torch.zeros(4, 8, 2, 12, dtype=torch.bfloat16)
    key, value = torch.randn(5, 2, 16).bfloat16(), torch.randn(5, 2, 12).bfloat16()
    slots = torch.tensor([31, -1, 0, 9, 17], dtype=slot_dtype)
    ascend_attn.reshape_and_cache(key, value, kc, vc, slots)
    expected_k, expected_v = torch.zeros_like(kc), torch.zeros_like(vc)
    for t, s in enumerate(slots.tolist()):
        if s >= 0:
            expected_k[s // 8, s % 8], expected_v[s // 8, s % 8] = key[t], value[t]
    assert torch.equal(kc, expected_k) and torch.equal(vc, expected_v)


def test_reshape_and_cache_out_of_range_leaves_caches_untouched():
    kc, vc = torch.randn(2, 4, 1, 8), torch.randn(2, 4, 1, 8)
    before_k, before_v = kc.clone(), vc.clone()
    slots = torch.tensor([0, 3, 8], dtype=torch.int32)  # 8 slots exist: the last is out of range
    with pytest.raises(RuntimeError, match=r"slot_mapping\[2\] = 8 is out of range"):
        ascend_attn.reshape_and_cache(torch.randn(3, 1, 8), torch.randn(3, 1, 8), kc, vc, slots)
    assert torch.equal(kc, before_k) and torch.equal(vc, before_v)


def test_reshape_and_cache_rejects_repeated_slots_before_writing():
    """Two tokens for one slot would leave an executor-dependent winner: every executor rejects it (shared check)."""
    kc, vc = torch.randn(2, 4, 1, 8), torch.randn(2, 4, 1, 8)
    before_k, before_v = kc.clone(), vc.clone()
    slots = torch.tensor([5, -1, 3, -1, 5], dtype=torch.int64)  # padding (-1) may repeat
    with pytest.raises(RuntimeError, match=r"slot_mapping\[4\] = 5 repeats slot_mapping\[0\]"):
        ascend_attn.reshape_and_cache(torch.randn(5, 1, 8), torch.randn(5, 1, 8), kc, vc, slots)
    assert torch.equal(kc, before_k) and torch.equal(vc, before_v)


def test_reshape_and_cache_on_the_simulator_rejects_repeated_slots():
    kc, vc = torch.zeros(2, 16, 1, 16).half(), torch.zeros(2, 16, 1, 16).half()
    slots = torch.tensor([17, 17], dtype=torch.int32)
    with pytest.raises(ValueError, match=r"slot_mapping\[1\] = 17 repeats slot_mapping\[0\]"):
        sim.reshape_and_cache(torch.randn(2, 1, 16).half(), torch.randn(2, 1, 16).half(), kc, vc, slots, num_cores=2)
    assert not kc.any() and not vc.any()


def _cache_pair():
    return torch.zeros(2, 4, 2, 8), torch.zeros(2, 4, 2, 8)


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: (torch.zeros(1, 4, 2, 8).expand(2, 4, 2, 8), torch.zeros(2, 4, 2, 8)),
            "key_cache is written in place",
        ),
        (
            lambda: (torch.zeros(2, 4, 2, 8), torch.zeros(64).as_strided((2, 4, 2, 8), (32, 4, 8, 1))),
            "value_cache is written in place, so each of its elements needs memory of its own",
        ),
        (lambda: (lambda c: (c, c))(torch.zeros(2, 4, 2, 8)), "value_cache and key_cache share memory"),
        (
            lambda: (lambda kv: (kv[0:2], kv[1:3]))(torch.zeros(3, 4, 2, 8)),
            "value_cache and key_cache share memory",
        ),
    ],
    ids=["expanded", "overlapping-strides", "same-tensor", "overlapping-views"],
)
def test_reshape_and_cache_rejects_aliased_caches(make, match):
    kc, vc = make()
    before_k, before_v = kc.clone(), vc.clone()
    with pytest.raises(RuntimeError, match=match):
        ascend_attn.reshape_and_cache(torch.ones(3, 2, 8), torch.ones(3, 2, 8), kc, vc, torch.tensor([0, 1, 6]))
    assert torch.equal(kc, before_k) and torch.equal(vc, before_v)


def test_reshape_and_cache_rejects_input_sharing_the_cache():
    kc, vc = _cache_pair()
    with pytest.raises(RuntimeError, match="key and key_cache share memory"):
        ascend_attn.reshape_and_cache(kc[0], torch.ones(4, 2, 8), kc, vc, torch.tensor([4, 5, 6, 7]))


def test_reshape_and_cache_takes_strided_caches_that_do_not_overlap():
    """vLLM's [2, num_blocks, ...] K/V pair and caches with padded strides are fine: no element shares memory."""
    kv = torch.zeros(2, 3, 4, 2, 8)
    padded = torch.zeros(3, 8, 2, 8)[:, ::2]  # every other row of a larger buffer
    key, value = torch.randn(2, 2, 8), torch.randn(2, 2, 8)
    slots = torch.tensor([1, 10])
    for kc, vc in ((kv[0], kv[1]), (padded, torch.zeros(3, 4, 2, 8))):
        ascend_attn.reshape_and_cache(key, value, kc, vc, slots)
        assert torch.equal(kc[0, 1], key[0]) and torch.equal(kc[2, 2], key[1]) and torch.equal(vc[2, 2], value[1])


def test_reshape_and_cache_opcheck():
    kc, vc = torch.zeros(3, 4, 2, 8), torch.zeros(3, 4, 2, 8)
    args = (torch.randn(5, 2, 8), torch.randn(5, 2, 8), kc, vc, torch.tensor([0, 5, -1, 11, 2], dtype=torch.int32))
    torch.library.opcheck(torch.ops.ascend_attn.reshape_and_cache.default, args)


def test_paged_attention_opcheck():
    kc, vc, tables, ctx = make_paged([20, 5], 8, 2, 16, 16, torch.float32, spare_blocks=0)
    kc, vc = kc.nan_to_num(0.0), vc.nan_to_num(0.0)  # opcheck compares outputs across runs: NaN != NaN
    cu = torch.tensor([0, 2, 3], dtype=torch.int32)
    for return_lse in (False, True):
        torch.library.opcheck(
            torch.ops.ascend_attn.paged_attention.default,
            (torch.randn(3, 4, 16), kc, vc, tables, ctx),
            {"cu_seqlens_q": cu, "return_lse": return_lse},
        )


# ---- merge_attn_states ----


def test_merge_identity():
    """Attention over keys A ∪ B equals the merge of attention over A and over B."""
    q, k, v = torch.randn(1, 9, 4, 32), torch.randn(1, 70, 2, 32), torch.randn(1, 70, 2, 32)
    full, full_lse = ascend_attn.flash_attention(q, k, v, return_lse=True)
    a, lse_a = ascend_attn.flash_attention(q, k[:, :30], v[:, :30], return_lse=True)
    b, lse_b = ascend_attn.flash_attention(q, k[:, 30:], v[:, 30:], return_lse=True)
    out, lse = ascend_attn.merge_attn_states(a[0], lse_a[0], b[0], lse_b[0])
    torch.testing.assert_close(out, full[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(lse, full_lse[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("empty", [float("-inf"), float("inf")], ids=["-inf", "+inf"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16", "bf16"])
def test_merge_handles_empty_sides_exactly(dtype, empty):
    """-inf (this library) and +inf (flash-attn 2's and vLLM's convention) both mark a side that saw no key."""
    out_a, out_b = torch.randn(3, 2, 8).to(dtype), torch.randn(3, 2, 8).to(dtype)
    inf = empty
    lse_a = torch.tensor([[0.5, inf, inf], [1.0, inf, 2.0]])
    lse_b = torch.tensor([[inf, 0.25, inf], [inf, 3.0, 2.0]])
    out, lse = ascend_attn.merge_attn_states(out_a, lse_a, out_b, lse_b)
    assert out.dtype == dtype
    assert torch.equal(out[0, 0], out_a[0, 0]) and torch.equal(out[1, 0], out_b[1, 0])  # one side -inf
    assert torch.equal(out[2, 0], torch.zeros_like(out[2, 0])) and lse[0, 2] == float("-inf")  # both empty
    assert torch.equal(lse[:, :2], torch.tensor([[0.5, 0.25], [1.0, 3.0]]))
    torch.testing.assert_close(out[2, 1].float(), ((out_a[2, 1].float() + out_b[2, 1].float()) / 2).to(dtype).float())


def test_merge_opcheck():
    args = (torch.randn(4, 2, 8), torch.randn(2, 4), torch.randn(4, 2, 8), torch.randn(2, 4))
    torch.library.opcheck(torch.ops.ascend_attn.merge_attn_states.default, args)


# ---- flash_attn_with_kvcache ----


@pytest.mark.parametrize("paged", [True, False], ids=["paged", "contiguous"])
def test_flash_attn_with_kvcache_appends_then_attends(paged):
    batch, new, heads, kv_heads, dim = 2, 3, 4, 2, 32
    old = torch.tensor([5, 20], dtype=torch.int32)
    k_new, v_new = torch.randn(batch, new, kv_heads, dim), torch.randn(batch, new, kv_heads, dim)
    history_k = [torch.randn(int(n), kv_heads, dim) for n in old]
    history_v = [torch.randn(int(n), kv_heads, dim) for n in old]
    if paged:
        block_size, blocks = 8, 4
        kc, vc = torch.full((batch * blocks, block_size, kv_heads, dim), float("nan")), torch.zeros(0)
        vc = kc.clone()
        table = torch.arange(batch * blocks, dtype=torch.int32).flip(0).reshape(batch, blocks)
        for b in range(batch):
            for t in range(int(old[b])):
                kc[table[b, t // block_size], t % block_size] = history_k[b][t]
                vc[table[b, t // block_size], t % block_size] = history_v[b][t]
    else:
        kc, vc, table = torch.zeros(batch, 32, kv_heads, dim), torch.zeros(batch, 32, kv_heads, dim), None
        for b in range(batch):
            kc[b, : int(old[b])], vc[b, : int(old[b])] = history_k[b], history_v[b]
    q = torch.randn(batch, new, heads, dim)
    out, lse = ascend_attn.flash_attn_with_kvcache(
        q, kc, vc, k_new, v_new, cache_seqlens=old, block_table=table, causal=True, return_softmax_lse=True
    )
    for b in range(batch):
        k = torch.cat([history_k[b], k_new[b]])[None]
        v = torch.cat([history_v[b], v_new[b]])[None]
        ref, ref_lse = attention_ref(q[b : b + 1], k, v, causal=True)
        assert_out_close(out[b : b + 1], ref)
        assert_lse_close(lse[b : b + 1], ref_lse)


# ---- rejected inputs ----


def _paged_call(**overrides):
    kc, vc, tables, ctx = make_paged([10, 20], 8, 2, 16, 16, torch.float32, spare_blocks=0)
    args = {
        "q": torch.randn(2, 4, 16),
        "key_cache": kc,
        "value_cache": vc,
        "block_tables": tables,
        "context_lens": ctx,
        "cu_seqlens_q": None,
    }
    args.update(overrides)
    return ascend_attn.paged_attention(
        args.pop("q"),
        args.pop("key_cache"),
        args.pop("value_cache"),
        args.pop("block_tables"),
        args.pop("context_lens"),
        **args,
    )


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            {"block_tables": torch.tensor([[0, 1, 2], [3, 4, 9]], dtype=torch.int32)},
            r"block_tables\[1\]\[2\] = 9 is out of range \[0, 5\)",
        ),
        ({"block_tables": torch.tensor([[0, -1, 2], [3, 4, 1]], dtype=torch.int32)}, r"block_tables\[0\]\[1\] = -1"),
        ({"block_tables": torch.zeros(2, 3, dtype=torch.int64)}, "block_tables must have dtype Int"),
        ({"context_lens": torch.tensor([10, 20])}, "context_lens must have dtype Int"),
        ({"context_lens": torch.tensor([10, 40], dtype=torch.int32)}, r"context_lens\[1\] = 40 exceeds block_tables"),
        ({"q": torch.randn(2, 4, 16).double()}, "q must be float32, float16 or bfloat16"),
        ({"key_cache": torch.zeros(5, 8, 2, 16).half()}, "key_cache must have the same dtype as q"),
        ({"q": torch.randn(2, 3, 16)}, "Number of heads in key/value must divide"),
        ({"q": torch.randn(2, 4, 32)}, "key_cache head_dim must equal q head_dim"),
        ({"q": torch.randn(3, 4, 16)}, r"q.size\(0\) must be 2"),
        ({"q": torch.randn(2, 4, 16)[None]}, "q must have 3 dimensions"),
        ({"cu_seqlens_q": torch.tensor([0, 1], dtype=torch.int32)}, "cu_seqlens_q must have num_seqs \\+ 1 = 3"),
        ({"cu_seqlens_q": torch.tensor([0, 1, 2])}, "cu_seqlens_q must have dtype Int"),
        ({"cu_seqlens_q": torch.tensor([[0, 1, 2]], dtype=torch.int32)}, "cu_seqlens_q must have 1 dimension"),
        ({"context_lens": torch.tensor([10, -1], dtype=torch.int32)}, r"context_lens\[1\] = -1 must be >= 0"),
        (
            {
                "q": torch.zeros(1, 4, 16).expand(2**31, 4, 16),
                "cu_seqlens_q": torch.tensor([0, 1, 1], dtype=torch.int32),
            },
            r"q's number of tokens \(dim 0; cu_seqlens_q is int32\) must be at most 2\^31 - 1",
        ),
        ({"cu_seqlens_q": torch.tensor([0, 1, 3], dtype=torch.int32)}, r"cu_seqlens_q\[-1\] must equal q.size\(0\)"),
        ({"alibi_slopes": torch.rand(3)}, r"alibi_slopes must have shape"),
    ],
)
def test_paged_attention_rejects(overrides, match):
    with pytest.raises(RuntimeError, match=match):
        _paged_call(**overrides)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: a.update(slots=a["slots"].float()), "slot_mapping must be int32 or int64"),
        (lambda a: a.update(key=a["key"].half()), "key_cache must have the same dtype as key"),
        (lambda a: a.update(key=a["key"][:, :1]), r"key_cache.size\(2\) must be 1"),
        (lambda a: a.update(value=a["value"][:2]), r"value.size\(0\) must be 3"),
        (lambda a: a.update(vc=torch.zeros(3, 4, 2, 8)), r"value_cache.size\(0\) must be 2"),
        (lambda a: a.update(kc=torch.zeros(2, 4, 2, 8)[..., ::2]), r"key_cache.size\(3\) must be 8"),
    ],
)
def test_reshape_and_cache_rejects(change, match):
    args = {
        "key": torch.randn(3, 2, 8),
        "value": torch.randn(3, 2, 8),
        "kc": torch.zeros(2, 4, 2, 8),
        "vc": torch.zeros(2, 4, 2, 8),
        "slots": torch.tensor([0, 1, 2], dtype=torch.int32),
    }
    change(args)
    with pytest.raises(RuntimeError, match=match):
        ascend_attn.reshape_and_cache(args["key"], args["value"], args["kc"], args["vc"], args["slots"])


@pytest.mark.parametrize(
    "args, match",
    [
        (
            (torch.randn(4, 2, 8), torch.randn(2, 4), torch.randn(4, 2, 8).half(), torch.randn(2, 4)),
            "out_b must have the same dtype as out_a",
        ),
        (
            (torch.randn(4, 2, 8), torch.randn(4, 2), torch.randn(4, 2, 8), torch.randn(2, 4)),
            r"lse_a must have shape \[heads, tokens\] = \[2, 4\]",
        ),
        (
            (torch.randn(4, 2, 8), torch.randn(2, 4).double(), torch.randn(4, 2, 8), torch.randn(2, 4)),
            "lse_a must have dtype Float",
        ),
        (
            (torch.randn(4, 2, 8), torch.randn(2, 4), torch.randn(4, 2, 9), torch.randn(2, 4)),
            "out_b must have the shape of out_a",
        ),
    ],
)
def test_merge_attn_states_rejects(args, match):
    with pytest.raises(RuntimeError, match=match):
        ascend_attn.merge_attn_states(*args)
