"""Host tiling of the Ascend C flash_attention_grad kernel (csrc/tiling/flash_attention_grad_tiling.cpp), a pure
function tested without any device."""

from __future__ import annotations

import itertools
import math

import pytest
from test_tiling import check_cube_tiling

from ascend_attn import _sim

FP16 = 0


def plan(q_lens, k_lens, heads=4, kv_heads=2, d=128, dv=128, window=(-1, -1), softcap=0.0, det=False, cores=24):
    cu_q = [0, *itertools.accumulate(q_lens)]
    cu_k = [0, *itertools.accumulate(k_lens)]
    return _sim.flash_attention_grad_plan(FP16, heads, kv_heads, d, dv, cu_q, cu_k, window[0], window[1], softcap,
                                          det, cores)  # fmt: skip


def seeing_rows(k0, k1, sq, sk, left, right):
    """Query rows of a sequence that see some key of [k0, k1), by brute force over the semantics."""
    rows = []
    for i in range(sq):
        pos = i + sk - sq
        lo = max(0, pos - left) if left >= 0 else 0
        hi = min(sk, pos + right + 1) if right >= 0 else sk
        if max(lo, k0) < min(hi, k1):
            rows.append(i)
    return rows


@pytest.mark.parametrize(
    "q_lens, k_lens, window, det",
    [
        ([8192], [8192], (-1, -1), False),
        ([8192], [8192], (-1, 0), False),  # causal: triangular weights
        ([1, 700, 3000, 129, 0, 55], [1, 700, 5000, 129, 9, 55], (-1, 0), True),  # ragged varlen
        ([300], [300], (64, 0), True),  # sliding window
        ([5, 900], [2000, 3], (3, 100), False),
    ],
)
def test_every_task_once_and_balanced(q_lens, k_lens, window, det):
    heads, kv_heads, cores = 8, 2, 24
    p = plan(q_lens, k_lens, heads, kv_heads, window=window, det=det, cores=cores)
    bk, bq, group = p["block_keys"], p["block_rows"], heads // kv_heads
    weights, begin = p["task_weights"], p["worker_task_begin"]
    # kv tasks: (batch, kv head group, key tile); dQ tasks (deterministic): (batch, q head group, row tile).
    kv_groups = math.ceil(kv_heads / p["kv_heads_per_group"])
    assert p["num_kv_tasks"] == kv_groups * sum(math.ceil(n / bk) for n in k_lens)
    q_groups = math.ceil(heads / p["q_heads_per_group"]) if det else 0
    assert p["num_q_tasks"] == q_groups * sum(math.ceil(n / bq) for n in q_lens)
    assert len(weights) == p["num_kv_tasks"] + p["num_q_tasks"]
    # Every AIV worker's range is contiguous; together they cover every task once.
    assert len(begin) == 2 * p["block_dim"] + 1 and p["block_dim"] <= cores
    assert begin[0] == 0 and begin[-1] == len(weights) and begin == sorted(begin)
    assert p["used_workers"] <= 2 * p["block_dim"]
    loads = [sum(weights[a:b]) for a, b in itertools.pairwise(begin)]
    assert max(loads) <= sum(weights) / (2 * cores) + max(weights)
    # A kv tile's weight counts the query blocks of every q head that see it (4 requests each: S, dP, dQ and half a
    # pair's dV and dK; 3 when deterministic), plus one; its task multiplies that by the kv heads of its group.
    steps = 3 if det else 4
    b = max(range(len(k_lens)), key=lambda i: k_lens[i])
    first = sum(kv_groups * math.ceil(n / bk) for n in k_lens[:b])
    sq, sk = q_lens[b], k_lens[b]
    for t in range(math.ceil(sk / bk)):
        rows = seeing_rows(t * bk, min(sk, (t + 1) * bk), sq, sk, *window)
        blocks = math.ceil((rows[-1] + 1 - rows[0]) / bq) if rows else 0
        assert weights[first + t] == p["kv_heads_per_group"] * (steps * group * blocks + 1), t


def test_long_sequences_share_heads_between_workers():
    """Long MHA: several heads per kv task, so the AIVs holding one group's key tiles walk its heads together; the
    largest task stays within 1/8 of a worker's mean share."""
    p = plan([8192], [8192], heads=32, kv_heads=32, cores=24)
    assert p["kv_heads_per_group"] > 1
    w = p["task_weights"]
    assert max(w) * 8 * 48 <= sum(w)
    short = plan([256], [256], heads=32, kv_heads=32, cores=24)
    assert short["kv_heads_per_group"] == 1  # too little work to group


def test_workspace_and_ub():
    p = plan([1000], [1000], heads=4, kv_heads=2, d=256, dv=128, softcap=30.0, cores=8)
    bq, bk = p["block_rows"], p["block_keys"]
    assert (bq, bk) == (256, 256)
    # Per AIV: two S slots and dP (fp32 [Bq, Bk]), two P and two dS slots (fp16), dK [Bk, 256] and dV [Bk, 128] fp32.
    assert p["ws_per_worker"] == 3 * bq * bk * 4 + 4 * bq * bk * 2 + bk * 256 * 4 + bk * 128 * 4
    assert p["ws_ds_offset"] - p["ws_p_offset"] == 2 * bq * bk * 2  # a pair's P slots form one [2 Bq, Bk] matrix
    rows = 1000 * 4  # D fp32 [heads, total_q], then the dQ accumulator fp32 [total_q, heads, d]
    d_bytes = math.ceil(rows * 4 / 512) * 512
    assert p["ws_worker_offset"] == d_bytes + rows * 256 * 4
    assert p["workspace_bytes"] == 512 + p["ws_worker_offset"] + 2 * p["block_dim"] * p["ws_per_worker"]
    assert p["ub_bytes"] <= p["ub_budget"] and p["chunk_rows"] >= 8
    det = plan([1000], [1000], heads=4, kv_heads=2, d=256, dv=128, det=True, cores=8)
    assert det["ws_worker_offset"] == d_bytes  # no shared dQ accumulator; each AIV has a [Bq, d] one instead
    assert det["ws_per_worker"] == p["ws_per_worker"] + bq * 256 * 4
    # The plan's softmax scale is 1: dQ and dK come back times it, and times 4 with softcap (the kernel's dS lacks it).
    assert (p["grad_scale"], det["grad_scale"]) == (4.0, 1.0)
    small = plan([20], [40])
    assert (small["block_rows"], small["block_keys"]) == (32, 48)  # shorter sequences, smaller tiles


def test_nothing_to_launch_without_queries_or_keys():
    assert plan([0, 0], [5, 9])["block_dim"] == 0
    assert plan([3], [0])["block_dim"] == 0


@pytest.mark.parametrize("d, dv", [(16, 16), (64, 64), (128, 128), (192, 128), (256, 256), (512, 512)])
@pytest.mark.parametrize("seqlen", [16, 100, 512, 3000])
def test_grad_matmul_tilings_meet_the_documented_constraints(d, dv, seqlen):
    p = plan([seqlen], [seqlen], d=d, dv=dv)
    bq, bk, dmax = p["block_rows"], p["block_keys"], max(d, dv)
    check_cube_tiling(p["mm_s"], bq, bk, dmax)  # S = Q K^T and dP = dO V^T
    check_cube_tiling(p["mm_t"], bk, dmax, 2 * bq)  # dV = P^T dO and dK = dS^T Q over a pair of steps
    check_cube_tiling(p["mm_dq"], bq, d, bk)  # dQ = dS K
    assert p["ub_bytes"] <= p["ub_budget"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"d": 40}, "head_dim must be a multiple of 16"),
        ({"dv": 1024}, "head_dim_v must be a multiple of 16 in"),
        ({"cores": 0}, "num_cores must be in"),
        ({"cores": 65}, "num_cores must be in"),
        ({"heads": 3, "kv_heads": 2}, "kv heads must divide heads"),
    ],
)
def test_rejections(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan([10], [10], **kwargs)
