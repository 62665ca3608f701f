"""Ring attention (ascend_attn.distributed), forward and backward, against single-process flash_attn_func on the
gathered sequence.

Three layers: the planner (which op calls a ring step makes) checked without processes against the brute-force mask;
every rank's forward and backward steps replayed in one process; and real rings of 2 and 4 gloo processes
(torch.multiprocessing spawn, a file store in tmp_path), one spawn per world size running every case (outputs, and
gradients for the "grad" cases), plus rings whose peer dies in the forward or the backward, or stays silent.
"""

from __future__ import annotations

import os
import re
import socket
import time
import traceback
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import assert_grad_close, assert_lse_close, assert_out_close
from reference import attention_ref, attention_varlen_ref, grads_ref

import ascend_attn
from ascend_attn import distributed as ring
from ascend_attn.distributed import (
    RingPeerError,
    SequenceShardError,
    ShardMismatchError,
    ring_flash_attn_func,
    ring_flash_attn_varlen_func,
    varlen_merge,
    varlen_split,
    zigzag_merge,
    zigzag_split,
)

SPAWN_TIMEOUT_S = 120  # a wedged ring fails the test instead of hanging CI


# ----------------------------------------------------------------------------------------------------------------
# Sharding helpers


def test_zigzag_split_holds_chunks_r_and_2w_minus_1_minus_r():
    x = torch.arange(16)[None, :]
    shards = zigzag_split(x, 4)
    assert [s[0].tolist() for s in shards] == [[0, 1, 14, 15], [2, 3, 12, 13], [4, 5, 10, 11], [6, 7, 8, 9]]
    assert torch.equal(zigzag_merge(shards), x)
    lse = torch.randn(2, 3, 24)  # [batch, heads, seqlen]: the sequence axis is dim 2
    assert torch.equal(zigzag_merge(zigzag_split(lse, 3, dim=2), dim=2), lse)


def test_varlen_split_follows_the_documented_example():
    cu = torch.tensor([0, 8, 12], dtype=torch.int32)
    x = torch.arange(12)
    shards, local_cu = varlen_split(x, cu, 2)
    # seq 0 chunks a0..a3 = [0,1] [2,3] [4,5] [6,7], seq 1 chunks b0..b3 = [8] [9] [10] [11]
    assert [s.tolist() for s in shards] == [[0, 1, 6, 7, 8, 11], [2, 3, 4, 5, 9, 10]]
    assert local_cu.tolist() == [0, 4, 6] and local_cu.dtype == torch.int32
    assert torch.equal(varlen_merge(shards, cu), x)
    shards, local_cu = varlen_split(x, cu, 2, layout="contiguous")
    assert [s.tolist() for s in shards] == [[0, 1, 2, 3, 8, 9], [4, 5, 6, 7, 10, 11]]
    assert torch.equal(varlen_merge(shards, cu, layout="contiguous"), x)


def test_varlen_round_trip_on_the_lse_axis():
    cu = torch.tensor([0, 24, 24, 32, 80], dtype=torch.int32)  # with an empty sequence
    lse = torch.randn(3, 80)
    for layout in ring.LAYOUTS:
        shards, _ = varlen_split(lse, cu, 4, layout=layout, dim=1)
        assert torch.equal(varlen_merge(shards, cu, layout=layout, dim=1), lse)


def test_split_rejects_lengths_the_rank_count_does_not_divide():
    with pytest.raises(SequenceShardError, match=r"x.shape\[1\] = 12 must be divisible by 2 \* world_size = 8"):
        zigzag_split(torch.zeros(1, 12, 2, 4), 4)
    cu = torch.tensor([0, 8, 14], dtype=torch.int32)
    with pytest.raises(SequenceShardError, match="sequence 1 of cu_seqlens has length 6, which is not divisible by"):
        varlen_split(torch.zeros(14, 2, 4), cu, 2)
    varlen_split(torch.zeros(14, 2, 4), cu, 2, layout="contiguous")  # 2 divides 8 and 6
    with pytest.raises(ValueError, match="layout must be one of"):
        varlen_split(torch.zeros(14, 2, 4), cu, 2, layout="stripes")
    with pytest.raises(ValueError, match="cu_seqlens must be a 1-D int32 tensor"):
        varlen_split(torch.zeros(14, 2, 4), cu.long(), 2)


# ----------------------------------------------------------------------------------------------------------------
# The planner, without processes


def _band_mask(lq, lk, lo, hi):
    d = torch.arange(lk)[None, :] - torch.arange(lq)[:, None]
    mask = torch.ones(lq, lk, dtype=torch.bool)
    if lo is not None:
        mask &= d >= lo
    if hi is not None:
        mask &= d <= hi
    return mask


def _op_mask(rows, keys, left, right):
    """The op's bottom-right aligned window on a rows x keys block (reference.visible_mask's rule)."""
    pos = torch.arange(rows)[:, None] + keys - rows
    j = torch.arange(keys)[None, :]
    mask = torch.ones(rows, keys, dtype=torch.bool)
    if left >= 0:
        mask &= j >= pos - left
    if right >= 0:
        mask &= j <= pos + right
    return mask


def test_band_block_is_the_exact_mask_for_every_offset():
    bounds = [None, -9, -5, -3, -1, 0, 1, 2, 4, 7, 12]
    checked = 0
    for lq, lk in [(1, 1), (5, 5), (4, 7), (7, 3)]:
        for lo in bounds:
            for hi in bounds:
                if lo is not None and hi is not None and lo > hi:
                    continue
                want = _band_mask(lq, lk, lo, hi)
                block = ring._band_block(lq, lk, lo, hi)
                if block is None:
                    assert not want.any(), (lq, lk, lo, hi)
                    continue
                i0, i1, j0, j1, left, right = block
                got = torch.zeros(lq, lk, dtype=torch.bool)
                got[i0:i1, j0:j1] = _op_mask(i1 - i0, j1 - j0, left, right)
                assert torch.equal(got, want), (lq, lk, lo, hi, block)
                assert got[i0:i1].any(dim=1).all(), "a kept row sees no key"
                checked += 1
    assert checked > 200


def _replay(q, k, v, lengths, world, layout, causal, window, softcap=0.0, scale=None):
    """Every rank's ring steps in one process (no communication): the planner and the fp32 merge, exactly as
    _ring_forward runs them. q/k/v are global packed [total, heads, dim]; returns the global (out, lse)."""
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    qs, local_cu = varlen_split(q, cu, world, layout)
    ks, _ = varlen_split(k, cu, world, layout)
    vs, _ = varlen_split(v, cu, world, layout)
    local = [n // world for n in lengths]
    segments = 2 if layout == "zigzag" else 1
    starts = tuple(local_cu[:-1].tolist())
    left, right = window
    plan = ring._Plan(layout, world, starts, tuple(n // segments for n in local), left, 0 if causal else right)
    outs, lses = [], []
    for rank in range(world):
        acc = ring._Accumulator(qs[rank].shape[0], q.shape[1], v.shape[-1], q.device, scale, softcap)
        for step in range(plan.steps()):
            src = (rank - step) % world
            for task in plan.tasks(rank, src):
                acc.attend(task, qs[rank], ks[src], vs[src])
        outs.append(acc.out.to(q.dtype))
        lses.append(acc.lse)
    return varlen_merge(outs, cu, layout), varlen_merge(lses, cu, layout, dim=1), plan


REPLAY_CASES = [
    # (lengths, world, layout, causal, window)
    ([40], 1, "zigzag", True, (-1, -1)),
    ([40, 6], 1, "contiguous", False, (5, 3)),
    ([48], 2, "zigzag", True, (-1, -1)),
    ([48, 18], 3, "zigzag", True, (-1, -1)),
    ([64], 4, "zigzag", True, (-1, -1)),
    ([64], 4, "contiguous", True, (-1, -1)),
    ([40, 8], 2, "contiguous", False, (-1, -1)),
    ([64], 4, "zigzag", False, (-1, -1)),
    ([64], 4, "zigzag", True, (5, -1)),
    ([64], 4, "zigzag", True, (0, -1)),
    ([64, 32, 0, 96], 4, "zigzag", True, (13, -1)),
    ([64], 4, "contiguous", False, (3, 9)),
    ([64], 4, "contiguous", False, (-1, 6)),
    ([64, 24], 2, "zigzag", False, (17, 2)),
    ([96], 3, "contiguous", True, (40, -1)),
    ([1 * 8, 3 * 8, 5 * 8], 4, "zigzag", True, (7, -1)),
]


@pytest.mark.parametrize("lengths, world, layout, causal, window", REPLAY_CASES)
def test_replayed_ring_equals_single_process(lengths, world, layout, causal, window):
    total = sum(lengths)
    q = torch.randn(total, 4, 24)
    k = torch.randn(total, 2, 24)
    v = torch.randn(total, 2, 16)
    out, lse, plan = _replay(q, k, v, lengths, world, layout, causal, window, softcap=3.0)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    longest = max(lengths)
    ref, ref_lse, _ = ascend_attn.flash_attn_varlen_func(
        q, k, v, cu, cu, longest, longest, causal=causal, window_size=window, softcap=3.0, return_attn_probs=True
    )
    assert_out_close(out, ref)
    assert_lse_close(lse, ref_lse)


# fp32 ring gradients against single-process flash_attn_func's: the same op math, summed in another order (per
# step, then across steps in fp32). Measured max diff 9.5e-7 (4.2e-7 of the largest gradient) over the replay cases.
FP32_GRAD_RTOL = 1e-5


def assert_fp32_grad_close(got, ref, name):
    """Max abs diff at most FP32_GRAD_RTOL of the reference's largest entry (at least 1)."""
    assert got.dtype == ref.dtype == torch.float32 and got.shape == ref.shape, (name, got.dtype, got.shape, ref.shape)
    assert not torch.isnan(got).any(), f"{name} has NaN"
    err = (got - ref).abs().max().item() if got.numel() else 0.0
    bound = FP32_GRAD_RTOL * max(1.0, ref.abs().max().item() if ref.numel() else 0.0)
    assert err <= bound, f"{name}: max diff {err:.3e}, bound {bound:.3e}"


def _replay_backward(q, k, v, dout, lengths, world, layout, causal, window, softcap=0.0):
    """Every rank's backward ring steps in one process: the same tasks as the forward, dK/dV summed in fp32 into the
    shard they belong to (what the accumulator travelling the ring does). Returns the global (dq, dk, dv)."""
    out, lse, plan = _replay(q, k, v, lengths, world, layout, causal, window, softcap)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    qs, outs, douts, ks, vs = (varlen_split(x, cu, world, layout)[0] for x in (q, out, dout, k, v))
    lses = varlen_split(lse, cu, world, layout, dim=1)[0]
    dks = [torch.zeros(x.shape) for x in ks]
    dvs = [torch.zeros(x.shape) for x in vs]
    dqs = []
    for rank in range(world):
        grads = ring._GradAccumulator(douts[rank], qs[rank], outs[rank], lses[rank], None, softcap, False)
        for step in range(plan.steps()):
            src = (rank - step) % world
            for task in plan.tasks(rank, src):
                k_sel, dk, dv = grads.attend(task, ks[src], vs[src])
                ring._add_rows(dks[src], k_sel, dk)
                ring._add_rows(dvs[src], k_sel, dv)
        dqs.append(grads.dq)
    return tuple(varlen_merge(x, cu, layout) for x in (dqs, dks, dvs))


@pytest.mark.parametrize("lengths, world, layout, causal, window", REPLAY_CASES)
def test_replayed_ring_backward_equals_single_process(lengths, world, layout, causal, window):
    total = sum(lengths)
    q, k, v = torch.randn(total, 4, 24), torch.randn(total, 2, 24), torch.randn(total, 2, 16)
    dout = torch.randn(total, 4, 16)
    got = _replay_backward(q, k, v, dout, lengths, world, layout, causal, window, softcap=3.0)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    longest = max(lengths)
    out = ascend_attn.flash_attn_varlen_func(
        *leaves, cu, cu, longest, longest, causal=causal, window_size=window, softcap=3.0
    )
    out.backward(dout)
    for name, g, leaf in zip(("dq", "dk", "dv"), got, leaves, strict=True):
        assert_fp32_grad_close(g, leaf.grad, name)


def _work(plan, rank, src):
    """Query-key pairs the op calls of one step cover (rows x keys summed over calls, sequence by sequence)."""
    return sum(
        qn * kn for task in plan.tasks(rank, src) for (_, qn), (_, kn) in zip(task.q_runs, task.k_runs, strict=True)
    )


def test_zigzag_causal_steps_are_balanced_and_skip_masked_halves():
    world, c = 4, 8
    plan = ring._Plan("zigzag", world, (0,), (c,), -1, 0)
    assert plan.steps() == world
    for rank in range(world):
        # Step 0: one causal call over the local 2c x 2c; later steps: one unmasked call of half of that.
        (diag,) = plan.tasks(rank, rank)
        assert diag.window == (-1, 0) and diag.q_runs == ((0, 2 * c),) and diag.k_runs == ((0, 2 * c),)
        for step in range(1, world):
            src = (rank - step) % world
            (task,) = plan.tasks(rank, src)
            assert task.window == (-1, -1) and _work(plan, rank, src) == 2 * c * c
            if src < rank:  # all queries, the first K/V chunk
                assert task.q_runs == ((0, 2 * c),) and task.k_runs == ((0, c),)
            else:  # the second query chunk, all K/V
                assert task.q_runs == ((c, c),) and task.k_runs == ((0, 2 * c),)


def test_short_window_stops_the_ring_early_and_skips_masked_pairs():
    # A window of 10 keys back reaches at most the neighbouring chunk. Zig-zag, W = 4, chunks of 16: rank 0 holds
    # chunks 0 and 7, whose neighbours 6 and 1 are on ranks 1 and 3, so all steps run but the one with rank 2
    # (chunks 2 and 5) computes nothing.
    zigzag = ring._Plan("zigzag", 4, (0,), (16,), 10, 0)
    assert zigzag.steps() == 4 and zigzag.tasks(0, 2) == []
    contiguous = ring._Plan("contiguous", 4, (0,), (32,), 10, 0)
    assert contiguous.steps() == 2
    assert contiguous.tasks(0, 3) == [] and contiguous.tasks(2, 1) != []
    (task,) = contiguous.tasks(2, 1)
    assert task.q_runs == ((0, 10),) and task.k_runs == ((22, 10),)  # only the corner the window reaches
    assert ring._Plan("contiguous", 4, (0,), (32,), -1, -1).steps() == 4


# ----------------------------------------------------------------------------------------------------------------
# Checks that need no ring


@pytest.mark.skipif(dist.is_available() and dist.is_initialized(), reason="a process group is already initialized")
def test_without_a_process_group_raises():
    q = torch.randn(1, 8, 2, 16)
    with torch.no_grad(), pytest.raises(RuntimeError, match="needs torch.distributed: call .*init_process_group"):
        ring_flash_attn_func(q, q, q)


# ----------------------------------------------------------------------------------------------------------------
# Real rings: spawned gloo processes


def _case(kind, dtype, shape, options, lengths=None, kv_heads=None, head_dim_v=None, raw=False, grad=False):
    """Inputs of one case, made in the parent (seeded) and sharded by every rank itself. ``grad``: the ranks also
    backpropagate the loss ``sum(out * weight)`` for a random ``weight`` of out's shape (so dout = weight)."""
    batch, seqlen, heads, head_dim = shape
    kv_heads = kv_heads or heads
    head_dim_v = head_dim_v or head_dim
    g = torch.Generator().manual_seed(zlib.crc32(repr((kind, shape, options, lengths)).encode()))
    lead = (sum(lengths),) if kind == "varlen" else (batch, seqlen)
    q = torch.randn(*lead, heads, head_dim, generator=g).to(dtype)
    k = torch.randn(*lead, kv_heads, head_dim, generator=g).to(dtype)
    v = torch.randn(*lead, kv_heads, head_dim_v, generator=g).to(dtype)
    case = {"kind": kind, "q": q, "k": k, "v": v, "options": options, "raw": raw, "grad": grad}
    if grad:
        case["weight"] = torch.randn(*lead, heads, head_dim_v, generator=g).to(dtype)
    if kind == "varlen":
        case["cu"] = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return case


F32, BF16 = torch.float32, torch.bfloat16
CAUSAL = {"causal": True}

CASES_2 = {
    "fp32 causal": _case("bsnd", F32, (2, 64, 4, 40), CAUSAL),
    "bf16 causal gqa": _case("bsnd", BF16, (1, 96, 4, 64), CAUSAL, kv_heads=2),
    "fp32 gqa head_dim_v": _case("bsnd", F32, (1, 64, 4, 48), {}, kv_heads=1, head_dim_v=32),
    "bf16 non-causal": _case("bsnd", BF16, (2, 32, 2, 64), {}),
    "fp32 causal window": _case("bsnd", F32, (1, 64, 2, 32), {"causal": True, "window_size": (20, -1)}),
    "fp32 window contiguous": _case("bsnd", F32, (1, 64, 2, 32), {"window_size": (7, 20)}),
    "fp32 window zigzag": _case("bsnd", F32, (1, 64, 2, 32), {"window_size": (5, 3), "layout": "zigzag"}),
    "fp32 causal contiguous": _case("bsnd", F32, (1, 64, 2, 32), {"causal": True, "layout": "contiguous"}),
    "fp32 softcap": _case("bsnd", F32, (1, 64, 4, 32), {"causal": True, "softcap": 2.0, "softmax_scale": 0.3}),
    "bf16 softcap window": _case("bsnd", BF16, (1, 64, 4, 32), {"causal": True, "softcap": 5.0, "window_size": (9, 0)}),
    "varlen fp32 causal": _case("varlen", F32, (0, 0, 4, 32), CAUSAL, lengths=[8, 36, 0, 20, 4], kv_heads=2),
    "varlen bf16 causal window": _case(
        "varlen", BF16, (0, 0, 2, 64), {"causal": True, "window_size": (6, -1)}, lengths=[12, 40, 4]
    ),
    "varlen fp32 window contiguous": _case("varlen", F32, (0, 0, 2, 16), {"window_size": (3, 5)}, lengths=[10, 2, 30]),
    # Named errors, raised identically on every rank before any K/V is sent.
    "error odd seqlen": _case("bsnd", F32, (1, 7, 2, 16), CAUSAL, raw=True),
    "error k seqlen": _case("bsnd", F32, (1, 8, 2, 16), {"k_rows": 6}, raw=True),
    "error varlen odd": _case("varlen", F32, (0, 0, 2, 16), CAUSAL, lengths=[4, 3], raw=True),
    "error op check": _case("bsnd", F32, (1, 8, 3, 16), {"causal": True, "kv_heads": 2}, raw=True),
    "error shapes differ": _case("bsnd", F32, (1, 8, 2, 16), {"shrink_by_rank": True}, raw=True),
    "error options differ": _case("bsnd", F32, (1, 8, 2, 16), {"causal_on_rank_0_only": True}, raw=True),
    # Forward and backward: the ranks' gradients against single-process autograd.
    "grad fp32 causal gqa": _case("bsnd", F32, (2, 64, 4, 32), CAUSAL, kv_heads=2, grad=True),
    "grad fp32 head_dim_v": _case("bsnd", F32, (1, 64, 4, 48), {}, kv_heads=1, head_dim_v=32, grad=True),
    "grad fp32 causal window softcap": _case(
        "bsnd",
        F32,
        (1, 64, 2, 32),
        {"causal": True, "window_size": (20, -1), "softcap": 2.0, "softmax_scale": 0.3},
        grad=True,
    ),
    "grad fp32 window zigzag": _case(
        "bsnd", F32, (1, 64, 2, 32), {"window_size": (5, 3), "layout": "zigzag"}, grad=True
    ),
    "grad bf16 causal gqa": _case("bsnd", BF16, (1, 96, 4, 64), CAUSAL, kv_heads=2, grad=True),
    "grad bf16 softcap window": _case(
        "bsnd", BF16, (1, 64, 4, 32), {"causal": True, "softcap": 5.0, "window_size": (9, 0)}, grad=True
    ),
    "grad varlen fp32 causal": _case(
        "varlen", F32, (0, 0, 4, 32), CAUSAL, lengths=[8, 36, 0, 20, 4], kv_heads=2, grad=True
    ),
    "grad varlen bf16 causal window": _case(
        "varlen", BF16, (0, 0, 2, 64), {"causal": True, "window_size": (6, -1)}, lengths=[12, 40, 4], grad=True
    ),
}

CASES_4 = {
    "fp32 causal": _case("bsnd", F32, (1, 64, 4, 32), CAUSAL, kv_heads=2),
    "bf16 causal": _case("bsnd", BF16, (2, 64, 2, 64), CAUSAL),
    "fp32 non-causal window": _case("bsnd", F32, (1, 64, 2, 32), {"window_size": (9, 4)}),
    "fp32 causal window": _case("bsnd", F32, (1, 128, 2, 32), {"causal": True, "window_size": (10, -1)}),
    "fp32 softcap": _case("bsnd", F32, (1, 64, 2, 32), {"causal": True, "softcap": 2.0}),
    "varlen fp32 causal": _case("varlen", F32, (0, 0, 4, 32), CAUSAL, lengths=[16, 72, 8, 0, 40], kv_heads=1),
    "varlen bf16 causal": _case("varlen", BF16, (0, 0, 2, 32), CAUSAL, lengths=[24, 8, 48]),
    "grad fp32 causal gqa": _case("bsnd", F32, (1, 64, 4, 32), CAUSAL, kv_heads=2, grad=True),
    "grad fp32 causal window": _case(
        "bsnd", F32, (1, 128, 2, 32), {"causal": True, "window_size": (10, -1)}, grad=True
    ),
    # Chunks of 32 and a 10-key window: the ring stops after 2 of 4 steps, so the dK/dV accumulators go back to
    # their owners 1 rank back instead of 1 rank on.
    "grad fp32 window stops the ring early": _case(
        "bsnd", F32, (1, 128, 2, 32), {"causal": True, "window_size": (10, -1), "layout": "contiguous"}, grad=True
    ),
    "grad fp32 non-causal window": _case("bsnd", F32, (1, 64, 2, 32), {"window_size": (9, 4)}, grad=True),
    "grad bf16 causal": _case("bsnd", BF16, (2, 64, 2, 64), CAUSAL, grad=True),
    "grad varlen fp32 causal": _case(
        "varlen", F32, (0, 0, 4, 32), CAUSAL, lengths=[16, 72, 8, 0, 40], kv_heads=1, grad=True
    ),
    "grad varlen fp32 window contiguous": _case(
        "varlen", F32, (0, 0, 2, 16), {"window_size": (3, 5)}, lengths=[8, 40, 4, 24], grad=True
    ),
}

GRIDS = {2: CASES_2, 4: CASES_4}

ERRORS = {
    "error odd seqlen": (SequenceShardError, r"q.shape\[1\] = 7 must be even for the zig-zag layout"),
    "error k seqlen": (ValueError, r"k must have q's leading shape \(1, 8\) \(the same tokens\)"),
    "error varlen odd": (SequenceShardError, r"sequence 1 has local length 3 \(cu_seqlens\)"),
    "error op check": (RuntimeError, "Number of heads in key/value must divide number of heads in query"),
    "error shapes differ": (ShardMismatchError, r"disagree on q.shape\[1\] from 6 to 8; k.shape\[1\] from 6 to 8"),
    "error options differ": (ShardMismatchError, r"disagree on options \(causal, window_size"),
}


def _layout(options):
    return options.get("layout", "zigzag" if options.get("causal") else "contiguous")


def _run_case(case, rank, world):
    options = dict(case["options"])
    q, k, v = case["q"], case["k"], case["v"]
    if case["raw"]:  # error cases: the given tensors are this rank's shard
        if options.pop("shrink_by_rank", False):
            q = k = v = q[:, : q.shape[1] - 2 * rank]
        if options.pop("causal_on_rank_0_only", False):
            options["causal"] = rank == 0
        k = k[:, : options.pop("k_rows")] if "k_rows" in options else k
        if "kv_heads" in options:
            k = v = k[:, :, : options.pop("kv_heads")]
        if case["kind"] == "varlen":
            cu = case["cu"]
            return ring_flash_attn_varlen_func(q, k, v, cu, 8, **options)
        return ring_flash_attn_func(q, k, v, **options)
    layout = _layout(options)
    tensors = (q, k, v, case["weight"]) if case["grad"] else (q, k, v)
    if case["kind"] == "varlen":
        shards = [varlen_split(x, case["cu"], world, layout)[0][rank] for x in tensors]
        local_cu = varlen_split(case["q"], case["cu"], world, layout)[1]
        longest = int((local_cu[1:] - local_cu[:-1]).max())

        def attend(q, k, v):
            return ring_flash_attn_varlen_func(q, k, v, local_cu, longest, return_lse=True, **options)
    else:
        if layout == "zigzag":
            shards = [zigzag_split(x, world)[rank] for x in tensors]
        else:
            shards = [x.chunk(world, dim=1)[rank].clone() for x in tensors]

        def attend(q, k, v):
            return ring_flash_attn_func(q, k, v, return_lse=True, **options)

    if not case["grad"]:
        return attend(*shards)
    leaves = [x.requires_grad_() for x in shards[:3]]
    with torch.enable_grad():
        out, lse = attend(*leaves)
        assert out.requires_grad and not lse.requires_grad, "lse must be a non-differentiable output"
        (out * shards[3]).sum().backward()
    return out.detach(), lse, *(x.grad for x in leaves)


def _init(rank, world, store_file, timeout_s):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store_file}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=timeout_s),
    )


def _cases_worker(rank, world, store_file, cases_file, out_dir):
    _init(rank, world, store_file, 60)
    results = {}
    with torch.no_grad():
        for name, case in torch.load(cases_file).items():
            try:
                results[name] = _run_case(case, rank, world)
            except Exception as err:  # recorded; the parent asserts the expected errors
                results[name] = (type(err), str(err), traceback.format_exc())
    torch.save(results, Path(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _spawn(fn, world, args, expect_exit_codes=None):
    # A fork server imports torch once per test session; every rank is then a fork of it (a spawned rank would
    # import torch again: seconds each on a 2-core CI machine). The server never ran a torch op: fork-safe.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "torch.distributed", "ascend_attn", "pytest"])
    procs = [ctx.Process(target=fn, args=(rank, world, *args)) for rank in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
        p.join()
    assert not alive, f"ranks still running after {SPAWN_TIMEOUT_S} s: the ring hung"
    codes = [p.exitcode for p in procs]
    assert codes == (expect_exit_codes or [0] * world), f"exit codes {codes}"


@pytest.fixture(scope="module")
def ring_results(tmp_path_factory):
    """world -> (cases, every rank's results); each world size is spawned once, on first use."""
    cache = {}

    def get(world):
        if world not in cache:
            cases = GRIDS[world]
            tmp = tmp_path_factory.mktemp(f"ring{world}")
            torch.save(cases, tmp / "cases.pt")
            _spawn(_cases_worker, world, (str(tmp / "store"), str(tmp / "cases.pt"), str(tmp)))
            cache[world] = cases, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(world)]
        return cache[world]

    return get


def _reference(case):
    """(out fp32 reference, same-dtype PyTorch reference or None, lse) of the whole sequence in one process."""
    options = {key: val for key, val in case["options"].items() if key != "layout"}
    q, k, v = case["q"], case["k"], case["v"]
    if case["kind"] == "varlen":
        cu = case["cu"]
        longest = int((cu[1:] - cu[:-1]).max())
        ref, lse, _ = ascend_attn.flash_attn_varlen_func(
            q.float(), k.float(), v.float(), cu, cu, longest, longest, return_attn_probs=True, **options
        )
        lowp = None if q.dtype == F32 else attention_varlen_ref(q, k, v, cu, cu, upcast=False, **options)[0]
        return ref, lowp, lse
    ref, lse, _ = ascend_attn.flash_attn_func(q.float(), k.float(), v.float(), return_attn_probs=True, **options)
    lowp = None if q.dtype == F32 else attention_ref(q, k, v, upcast=False, **options)[0]
    return ref, lowp, lse


def _gather(case, per_rank, name):
    """Every rank's results of a case (out, lse and, with grad, dq, dk, dv) back in global sequence order."""
    layout = _layout(case["options"])
    gathered = []
    for i in range(len(per_rank[0][name])):
        shards = [r[name][i] for r in per_rank]
        dim = (1 if i == 1 else 0) if case["kind"] == "varlen" else (2 if i == 1 else 1)  # lse: [.., heads, tokens]
        if case["kind"] == "varlen":
            gathered.append(varlen_merge(shards, case["cu"], layout, dim=dim))
        elif layout == "zigzag":
            gathered.append(zigzag_merge(shards, dim=dim))
        else:
            gathered.append(torch.cat(shards, dim=dim))
    return gathered


def _grad_references(case):
    """Gradients of ``sum(out * weight)`` on the whole sequence in one process: (fp64 PyTorch autograd, PyTorch autograd
    in the inputs' dtype, ascend_attn's flash_attn_func / flash_attn_varlen_func)."""
    options = {key: val for key, val in case["options"].items() if key != "layout"}
    q, k, v, weight = case["q"], case["k"], case["v"], case["weight"]
    if case["kind"] == "varlen":
        cu = case["cu"]
        longest = int((cu[1:] - cu[:-1]).max())

        def forward(q, k, v):
            return attention_varlen_ref(q, k, v, cu, cu, upcast=False, **options)[0]

        def single(q, k, v):
            return ascend_attn.flash_attn_varlen_func(q, k, v, cu, cu, longest, longest, **options)
    else:

        def forward(q, k, v):
            return attention_ref(q, k, v, upcast=False, **options)[0]

        def single(q, k, v):
            return ascend_attn.flash_attn_func(q, k, v, **options)

    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    (single(*leaves) * weight).sum().backward()
    ref = grads_ref(forward, (q, k, v), weight)
    same = grads_ref(forward, (q, k, v), weight, upcast=False)
    return ref, same, [x.grad for x in leaves]


def _ids(errors):
    return [(w, n) for w, cases in GRIDS.items() for n in cases if (n in ERRORS) == errors]


@pytest.mark.parametrize("world, name", _ids(errors=False))
def test_ring_equals_single_process(ring_results, world, name):
    cases, per_rank = ring_results(world)
    case = cases[name]
    for rank, results in enumerate(per_rank):
        assert not isinstance(results[name][0], type), f"rank {rank} raised:\n{results[name][2]}"
    out, lse = _gather(case, per_rank, name)[:2]
    ref, lowp, ref_lse = _reference(case)
    assert out.dtype == case["q"].dtype
    assert_out_close(out, ref, lowp)
    assert_lse_close(lse, ref_lse)


@pytest.mark.parametrize("world, name", [(w, n) for w, cases in GRIDS.items() for n in cases if cases[n]["grad"]])
def test_ring_gradients_equal_single_process(ring_results, world, name):
    """fp32: the single-process gradients up to summation order; bf16: the tolerance policy against fp64 autograd
    (every dtype is also held to that policy)."""
    cases, per_rank = ring_results(world)
    case = cases[name]
    for rank, results in enumerate(per_rank):
        assert not isinstance(results[name][0], type), f"rank {rank} raised:\n{results[name][2]}"
    _, _, *grads = _gather(case, per_rank, name)
    ref, same, single = _grad_references(case)
    for grad_name, grad, r, s, one in zip(("dq", "dk", "dv"), grads, ref, same, single, strict=True):
        assert grad.dtype == case["q"].dtype, (grad_name, grad.dtype)
        assert_grad_close(grad, r, s, grad_name)
        if grad.dtype == F32:
            assert_fp32_grad_close(grad, one, grad_name)


@pytest.mark.parametrize("world, name", _ids(errors=True))
def test_ring_rejects_bad_shards_on_every_rank(ring_results, world, name):
    cases, per_rank = ring_results(world)
    error, pattern = ERRORS[name]
    for rank, results in enumerate(per_rank):
        raised, message, _ = results[name]
        assert isinstance(raised, type) and issubclass(raised, error), (rank, raised, message)
        assert re.search(pattern, message), message


# ----------------------------------------------------------------------------------------------------------------
# A peer that dies, a peer that hangs


PEER_TIMEOUT_S = 4


def _peer_failure_worker(rank, world, store_file, out_dir, role_of):
    _init(rank, world, store_file, PEER_TIMEOUT_S)
    dist.barrier()  # every connection is up before anyone leaves
    role = role_of.get(rank, "ring")
    if role == "die in the ring":  # passes the shape agreement, posts its first exchange, dies while attending
        ring._Accumulator.attend = lambda *args: os._exit(3)
    if role == "die in the backward":  # completes the forward, posts its first backward exchange, dies computing
        ring._GradAccumulator.attend = lambda *args: os._exit(3)
    if role == "silent":  # alive and connected, but silent until the others have given up (or 4 timeouts)
        others = [Path(out_dir, f"rank{r}.pt") for r in range(world) if r not in role_of]
        deadline = time.monotonic() + 4 * PEER_TIMEOUT_S
        while not all(f.exists() for f in others) and time.monotonic() < deadline:
            time.sleep(0.1)
        os._exit(0)
    backward = "die in the backward" in role_of.values()  # then every rank trains: forward and backward
    q = torch.randn(1, 32, 2, 16, requires_grad=backward)
    start = time.monotonic()
    try:
        with torch.set_grad_enabled(backward):
            out = ring_flash_attn_func(q, q, q, causal=True)
        if backward:
            out.sum().backward()
        result = (None, "returned", time.monotonic() - start)
    except Exception as err:
        result = (type(err), str(err), time.monotonic() - start)
    torch.save(result, Path(out_dir, f"rank{rank}.pt"))
    os._exit(0)  # the group is broken: skip destroy_process_group


@pytest.mark.parametrize(
    "world, role_of, codes, failed",
    [
        (3, {2: "die in the ring"}, [0, 0, 3], r"the K/V exchange of ring step \d \(receive from rank \d, send to"),
        (2, {1: "silent"}, [0, 0], r"the shape agreement \(all_reduce\) before the ring failed"),
        (3, {2: "die in the backward"}, [0, 0, 3], r"the (dK/dV|K/V) exchange of ring step \d \(receive from rank \d,"),
    ],
    ids=["a rank dies in the ring", "a rank stops answering", "a rank dies in the backward"],
)
def test_dead_or_silent_peer_fails_with_a_clear_error_within_the_timeout(tmp_path, world, role_of, codes, failed):
    _spawn(_peer_failure_worker, world, (str(tmp_path / "store"), str(tmp_path), role_of), codes)
    for rank in range(world):
        if rank in role_of:
            continue
        raised, message, elapsed = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert raised is RingPeerError, (rank, raised, message)
        caller = (
            "ring_flash_attn_func backward" if "die in the backward" in role_of.values() else "ring_flash_attn_func"
        )
        assert re.match(rf"{caller} on rank {rank} of {world}: {failed}", message), message
        assert "did not answer within the process group's timeout" in message
        assert elapsed < PEER_TIMEOUT_S + 5, f"rank {rank} needed {elapsed:.1f} s to fail"


# ----------------------------------------------------------------------------------------------------------------
# The benchmark's entry point (a smoke test: it runs and prints measured rows; speed is never asserted)


def test_ring_benchmark_quick_run_prints_measured_rows(capsys, tmp_path):
    from ascend_attn.bench.__main__ import main

    main(["ring", "--quick", "--world-size", "2", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    rows = re.findall(r"^\| bf16 \| 1024 \| (True|False) \|.*\| [0-9.]+ \|$", printed, re.MULTILINE)
    assert sorted(rows) == ["False", "True"], printed
    assert (tmp_path / "ring.md").read_text().strip() == printed.strip()
    for line in printed.splitlines()[-2:]:
        diff = float(line.split("|")[7])  # max abs diff between the ring's and the baseline's outputs
        assert diff < 0.1, line  # a few bf16 ulps of |out| <= ~4 (a wrong result differs by ~1)


def test_ring_benchmark_rejects_a_length_the_ranks_do_not_divide():
    from ascend_attn.bench.__main__ import main

    with pytest.raises(SystemExit, match="--seqlens: 1004 is not divisible by 2 \\* world size = 8"):
        main(["ring", "--world-size", "4", "--seqlens", "1004"])


def _readme_worker(rank, world, port, script):
    """What torchrun gives each process: the env:// variables; then the README's script runs as __main__."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    exec(compile(script, "ring.py", "exec"), {"__name__": "__main__"})


def test_readme_torchrun_example_runs():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Long context across devices", 1)[1]
    script = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "torchrun --nproc-per-node 2 ring.py" in script
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _spawn(_readme_worker, 2, (port, script))  # the script asserts its result against flash_attn_func itself
