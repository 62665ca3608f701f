"""op_kernel/paged_attention and op_kernel/reshape_and_cache in the simulator, against the references."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_lse_close, assert_out_close
from reference import make_paged, paged_attention_ref

import ascend_attn
from ascend_attn import sim

DTYPES = [torch.float16, torch.bfloat16]

# (context_lens, q_lens (None: decode), block_size, heads, kv_heads, head_dim, options, num_cores, splits expected,
#  kv heads per item expected)
CASES = [
    ([37, 300, 5, 129], None, 16, 8, 8, 64, {}, 8, False, 1),  # MHA decode, block 16
    ([2500, 40, 7], None, 128, 8, 2, 128, {}, 24, True, 1),  # one long and two short: split KV, GQA 4
    ([700, 3], None, 512, 16, 2, 64, {}, 1, False, 1),  # block 512, GQA 8, one core: every item on two AIVs
    ([90, 400], [5, 3], 16, 4, 1, 64, {"causal": True}, 3, False, 1),  # multi-token (speculative) queries, MQA
    ([1200], [9], 32, 8, 2, 256, {"window_size": (100, 0), "softcap": 8.0}, 24, True, 1),  # window, softcap, split
    ([64, 1000], [64, 17], 16, 2, 2, 64, {"causal": True}, 2, False, 1),  # chunked prefill: 64 rows per item
    ([300, 129, 1000], [3, 1, 2], 128, 32, 8, 64, {"causal": True}, 5, False, 1),  # multi-token rows via the Q slot
    ([300], [20], 16, 64, 1, 512, {"causal": True}, 24, False, 1),  # d 512, GQA 64: a token's rows in 8-row pieces
    # Items of several kv heads: block-diagonal queries in the Q slot, O_tmp rows of [hp * dv]
    ([4200, 2100], None, 128, 32, 8, 64, {}, 1, False, 4),
    ([6000], [2], 128, 16, 4, 128, {"causal": True, "softcap": 5.0}, 2, True, 2),
    ([5000, 3000], [2, 1], 256, 16, 2, 128, {"window_size": (700, 0)}, 1, False, 2),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_matches_reference(case, dtype):
    lens, q_lens, block_size, heads, kv_heads, d, options, cores, split, heads_per_item = case
    torch.manual_seed(sum(lens) + d)
    kc, vc, tables, ctx = make_paged(lens, block_size, kv_heads, d, d, dtype)
    tokens = len(lens) if q_lens is None else sum(q_lens)
    cu = None if q_lens is None else torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    q = torch.randn(tokens, heads, d).to(dtype)
    r = sim.paged_attention(q, kc, vc, tables, ctx, cu, return_lse=True, num_cores=cores, **options)
    ref, ref_lse = paged_attention_ref(q.float(), kc.float(), vc.float(), tables, ctx, cu, **options)
    ref_lowp, _ = paged_attention_ref(q, kc, vc, tables, ctx, cu, upcast=False, **options)
    assert_out_close(r.out, ref, ref_lowp)
    assert_lse_close(r.lse, ref_lse, atol=2e-3)
    assert (r.stats.kv_splits > 1) == split, r.stats.kv_splits
    assert r.stats.heads_per_item == heads_per_item
    assert r.stats.block_dim <= cores
    dry = sim.paged_attention(q, kc, vc, tables, ctx, cu, return_lse=True, num_cores=cores, dry_run=True, **options)
    assert dry.stats.per_core == r.stats.per_core  # exact counters without the arithmetic


def test_items_of_several_kv_heads_with_head_dim_v():
    """Grouped items when V's head dim differs from K's: the Q slot is [rows, hp * d], O_tmp [rows, hp * dv]."""
    torch.manual_seed(7)
    kc, vc, tables, ctx = make_paged([4200, 2100], 128, 4, 64, 128, torch.bfloat16)
    q = torch.randn(2, 16, 64).bfloat16()
    r = sim.paged_attention(q, kc, vc, tables, ctx, return_lse=True, num_cores=1, softcap=30.0)
    ref, ref_lse = paged_attention_ref(q.float(), kc.float(), vc.float(), tables, ctx, softcap=30.0)
    ref_lowp, _ = paged_attention_ref(q, kc, vc, tables, ctx, upcast=False, softcap=30.0)
    assert r.stats.heads_per_item == 4 and r.out.shape == (2, 16, 128)
    assert_out_close(r.out, ref, ref_lowp)
    assert_lse_close(r.lse, ref_lse, atol=2e-3)


@pytest.mark.parametrize("seed", [2, 9])
@pytest.mark.parametrize("lens, heads, kv_heads, heads_per_item", [([2500, 40, 7], 8, 2, 1), ([9000, 40], 32, 8, 2)])
def test_split_kv_is_schedule_independent(seed, lens, heads, kv_heads, heads_per_item):
    """Flash-decoding (partials, SyncAll, combine across cores) gives bit-identical results whatever order the
    simulated cores run in."""
    kc, vc, tables, ctx = make_paged(lens, 128, kv_heads, 64, 64, torch.bfloat16)
    q = torch.randn(len(lens), heads, 64).bfloat16()
    free = sim.paged_attention(q, kc, vc, tables, ctx, return_lse=True, num_cores=6)
    serial = sim.paged_attention(q, kc, vc, tables, ctx, return_lse=True, num_cores=6, schedule_seed=seed)
    assert free.stats.kv_splits > 1 and free.stats.heads_per_item == heads_per_item
    assert torch.equal(free.out, serial.out) and torch.equal(free.lse, serial.lse)


def test_reads_only_the_pages_in_use():
    """Decode traffic is the sequence's pages (K and V once per kv head), plus workspace; never the spare blocks."""
    kc, vc, tables, ctx = make_paged([1000], 128, 2, 128, 128, torch.float16, spare_blocks=50)
    q = torch.randn(1, 8, 128).half()
    st = sim.paged_attention(q, kc, vc, tables, ctx, num_cores=4).stats
    moved = sum(c["gm_read_bytes"] + c["gm_write_bytes"] - c["gm_workspace_bytes"] for c in st.per_core)
    kv_bytes = 2 * 1000 * 2 * 128 * 2  # K and V rows of both kv heads, fp16
    assert kv_bytes <= moved < 1.05 * kv_bytes + 16 * 1024


def test_reshape_and_cache_matches_cpu_op():
    torch.manual_seed(0)
    for slot_dtype in (torch.int32, torch.int64):
        key, value = torch.randn(6, 2, 32).half(), torch.randn(6, 2, 48).half()
        kc, vc = torch.zeros(4, 16, 2, 32).half(), torch.zeros(4, 16, 2, 48).half()
        slots = torch.tensor([5, -1, 63, 0, -7, 17], dtype=slot_dtype)
        kc_ref, vc_ref = kc.clone(), vc.clone()
        ascend_attn.reshape_and_cache(key, value, kc_ref, vc_ref, slots)
        r = sim.reshape_and_cache(key, value, kc, vc, slots, num_cores=2)
        assert torch.equal(kc, kc_ref) and torch.equal(vc, vc_ref)
        assert r.stats.block_dim == 4 and sum(c["gm_write_bytes"] for c in r.stats.per_core) == 4 * 2 * (32 + 48) * 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"bad_block": True}, r"block_tables\[0\]\[1\] = 99 is out of range"),
        ({"block_size": 8}, "block_size must be a multiple of 16"),
        ({"dtype": torch.float32}, "takes float16 or bfloat16"),
        ({"heads": 128, "kv_heads": 1}, "at most 64 query heads per kv head"),
    ],
)
def test_rejections(change, message):
    args = {"bad_block": False, "block_size": 16, "dtype": torch.float16, "heads": 4, "kv_heads": 2}
    args.update(change)
    kc, vc, tables, ctx = make_paged([40], args["block_size"], args["kv_heads"], 64, 64, args["dtype"])
    if args["bad_block"]:
        tables[0, 1] = 99
    q = torch.randn(1, args["heads"], 64).to(args["dtype"])
    with pytest.raises(ValueError, match=message):
        sim.paged_attention(q, kc, vc, tables, ctx, num_cores=2)


def test_reshape_and_cache_rejects_slot_past_cache():
    kc, vc = torch.zeros(2, 16, 1, 32).half(), torch.zeros(2, 16, 1, 32).half()
    key = torch.ones(1, 1, 32).half()
    with pytest.raises(ValueError, match=r"slot_mapping\[0\] = 32 is out of range"):
        sim.reshape_and_cache(key, key, kc, vc, torch.tensor([32], dtype=torch.int32))
    assert not kc.any() and not vc.any()
