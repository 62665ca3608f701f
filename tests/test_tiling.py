"""Host tiling of the Ascend C flash_attention kernel (csrc/tiling), a pure function tested without any device."""

from __future__ import annotations

import itertools
import random

import pytest

from ascend_attn import _sim

FP16 = 0


def plan(q_lens, k_lens, heads=4, kv_heads=2, d=128, dv=128, window=(-1, -1), softcap=0.0, cores=24):
    cu_q = [0, *itertools.accumulate(q_lens)]
    cu_k = [0, *itertools.accumulate(k_lens)]
    return _sim.flash_attention_plan(FP16, heads, kv_heads, d, dv, cu_q, cu_k, window[0], window[1], softcap, cores)


def best_max_load(weights, parts):
    """Brute force: the smallest maximum part load over all contiguous splits into at most `parts` parts."""
    n, best = len(weights), sum(weights)
    for k in range(1, min(parts, n) + 1):
        for cuts in itertools.combinations(range(1, n), k - 1):
            bounds = [0, *cuts, n]
            best = min(best, max(sum(weights[a:b]) for a, b in itertools.pairwise(bounds)))
    return best


def test_partition_is_optimal_on_small_inputs():
    rng = random.Random(0)
    for _ in range(200):
        weights = [rng.randint(1, 9) for _ in range(rng.randint(1, 8))]
        parts = rng.randint(1, 5)
        begin = _sim.partition_contiguous(weights, parts)
        assert begin[0] == 0 and begin[-1] == len(weights) and begin == sorted(set(begin))
        assert len(begin) - 1 <= parts
        loads = [sum(weights[a:b]) for a, b in itertools.pairwise(begin)]
        assert max(loads) == best_max_load(weights, parts), (weights, parts, begin)


@pytest.mark.parametrize(
    "q_lens, k_lens, window, cores",
    [
        ([4096], [4096], (-1, 0), 24),  # causal: triangular weights
        ([8192], [8192], (-1, -1), 24),
        ([1, 700, 3000, 129, 0, 55], [1, 700, 5000, 129, 9, 55], (-1, 0), 7),  # ragged varlen
        ([300], [300], (64, 0), 3),  # sliding window
    ],
)
def test_every_task_once_and_balanced(q_lens, k_lens, window, cores):
    p = plan(q_lens, k_lens, window=window, cores=cores)
    begin, weights = p["core_task_begin"], p["task_weights"]
    heads, task_rows = 4, 2 * p["rows_per_aiv"]  # each AIV of a core takes half of a task's rows
    assert len(weights) == heads * sum((n + task_rows - 1) // task_rows for n in q_lens)
    # Contiguous, non-empty, covering every task exactly once.
    assert begin[0] == 0 and begin[-1] == len(weights) and all(a < b for a, b in itertools.pairwise(begin))
    assert p["block_dim"] == len(begin) - 1 <= cores
    loads = [sum(weights[a:b]) for a, b in itertools.pairwise(begin)]
    # Greedy contiguous bound: the max load is within one task of the perfect share.
    assert max(loads) <= sum(weights) / cores + max(weights)
    if window == (-1, 0) and len(q_lens) == 1:
        assert max(loads) / (sum(weights) / len(loads)) <= 1.10  # causal imbalance goal of the kernel issue


def test_weights_count_visible_kv_tiles():
    p = plan([256], [1024], heads=1, kv_heads=1, window=(-1, 0))  # bottom-right causal: rows see 769..1024 keys
    assert p["block_cols"] == 512 and p["task_weights"] == [2, 2]
    p = plan([256], [1024], heads=1, kv_heads=1, window=(100, 0))  # rows see at most 101 keys
    assert p["task_weights"] == [1, 1]
    p = plan([3], [0], heads=1, kv_heads=1)  # no keys: still one unit (the rows are written)
    assert p["task_weights"] == [1]


def test_workspace_and_ub():
    p = plan([1000], [1000], d=256, dv=256, softcap=30.0, cores=8)
    # Two slot sets (the cube works a KV tile ahead), each S fp32, P fp16, O_tmp fp32 (512-byte multiples already).
    per_aiv = 2 * (64 * 512 * 4 + 64 * 512 * 2 + 64 * 256 * 4)
    assert p["ws_per_aiv"] == per_aiv
    assert p["workspace_bytes"] == 512 + 2 * p["block_dim"] * per_aiv
    assert p["ub_bytes"] <= p["ub_budget"] and p["chunk_rows"] >= 8
    small = plan([20], [20])
    assert small["block_cols"] == 32  # short keys: the KV tile shrinks to the longest range, rounded to 16


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


def paged_plan(context_lens, q_lens=None, heads=32, kv_heads=8, d=128, block_size=128, window=(-1, 0), cores=24):
    q_lens = q_lens or [1] * len(context_lens)
    cu_q = [0, *itertools.accumulate(q_lens)]
    max_blocks = max(-(-c // block_size) for c in context_lens)
    num_blocks = max_blocks * len(context_lens)
    return _sim.paged_attention_plan(heads, kv_heads, d, d, num_blocks, block_size, max_blocks, context_lens, cu_q,
                                     window[0], window[1], cores)  # fmt: skip


@pytest.mark.parametrize(
    "context_lens, q_lens, splits",
    [
        ([8192], None, True),  # one sequence x 8 kv heads cannot fill 48 AIVs: split the KV length
        ([32768, 100, 5], None, True),
        ([8192] * 8, None, True),  # 64 items fill 48 AIVs' two rounds to 67%, two splits three to 89%: three splits
        ([4096] * 12, None, True),  # 24 items of 4 kv heads, 2 splits of 2048 keys: one full round
        ([1000], None, True),  # 8 items: two splits of 512 keys double the AIVs in use
        ([600], None, False),  # two splits would be shorter than 512 keys: not worth a combine
        ([300, 4000], [100, 7], True),  # multi-token queries (items of 16 tokens x 4 q heads): 64 items, split the long
    ],
)
def test_paged_items_cover_everything_once(context_lens, q_lens, splits):
    p = paged_plan(context_lens, q_lens)
    begin, weights = p["worker_item_begin"], p["item_weights"]
    tokens = q_lens or [1] * len(context_lens)
    blocks = [-(-t // p["tokens_per_item"]) for t in tokens]
    split = [max(1, -(-c // p["split_keys"])) for c in context_lens]
    assert len(weights) == 8 // p["heads_per_item"] * sum(b * s for b, s in zip(blocks, split, strict=True))
    assert begin[0] == 0 and begin[-1] == len(weights) and all(a < b for a, b in itertools.pairwise(begin))
    assert len(begin) - 1 <= 2 * 24 and p["block_dim"] <= 24
    assert (p["kv_splits"] > 1) == splits and p["split_keys"] % 128 == 0
    loads = [sum(weights[a:b]) for a, b in itertools.pairwise(begin)]
    assert max(loads) <= sum(weights) / (2 * 24) + max(weights)
    # Per-AIV slots, partial O/lse when split, the error word.
    parts = sum(tokens) * 32 * p["kv_splits"] if p["kv_splits"] > 1 else 0
    slots = 2 * max(p["block_dim"], 1) * p["ws_per_aiv"]
    assert p["workspace_bytes"] >= 512 + slots + parts * (128 + 1) * 4


@pytest.mark.parametrize(
    "context_lens, heads_per_item, splits",
    [
        ([8192] * 8, 4, 3),  # 16 items of 4 kv heads: 2 splits fill one round of 48 to 67%, 3 splits exactly
        ([8192], 1, 6),  # 8 kv heads x 6 splits = 48 items: one full round (4 heads per item: 2 x 24 < 2048 keys)
        ([8192] * 64, 4, 3),  # 128 items of 4 kv heads fill three rounds to 89%; 3 splits: 384 items, eight rounds
        ([4096] * 12, 4, 2),
        ([1024] * 64, 1, 1),  # 512 items fill eleven rounds to 97%: no split; grouped items would read 1024 keys
    ],
)
def test_paged_split_count_fills_the_aiv_rounds(context_lens, heads_per_item, splits):
    """The fewest splits whose items fill the AIVs' rounds to at least 95%: a 90% filling leaves a tenth of the
    AIVs idle during the last round (MODELLED 8 x 8192, one kv head per item: 0.68 of GM bandwidth with 2 splits, 0.76
    with 3)."""
    p = paged_plan(context_lens)
    assert (p["heads_per_item"], p["kv_splits"]) == (heads_per_item, splits)


@pytest.mark.parametrize(
    "kwargs, heads_per_item",
    [
        ({}, 4),  # GQA 4: 4 kv heads give the cube its 16 rows
        ({"d": 256}, 2),  # a page's K rows of the item: 512 elements at most
        ({"heads": 64, "kv_heads": 4}, 1),  # GQA 16 fills the 16 rows alone
        ({"block_size": 64}, 2),  # O_tmp [rows, hp * dv] per page within an eighth of the page's K and V: 8 rows
        ({"heads": 8, "kv_heads": 8, "block_size": 16}, 2),  # MHA, pages of 16 keys: 2 rows
        ({"heads": 24, "kv_heads": 6}, 3),  # 4 does not divide 6 kv heads: 3 do (12 rows)
        ({"heads": 28, "kv_heads": 7}, 1),  # 7 kv heads: no divisor gives at most 16 rows
    ],
)
def test_paged_groups_kv_heads_into_one_item(kwargs, heads_per_item):
    """Decode rows of consecutive kv heads share an item (one request per page for all of them) up to the cube's 16
    rows, when the items stay long and fill the AIVs (MODELLED 8 x 8192, GQA 4: 0.74 of GM bandwidth at 4 kv heads per
    item, 0.58 at 1)."""
    p = paged_plan([8192] * 8, **kwargs)
    assert p["heads_per_item"] == heads_per_item
    assert p["tokens_per_item"] * heads_per_item * kwargs.get("heads", 32) // kwargs.get("kv_heads", 8) <= 64


def test_paged_single_sequence_uses_every_aiv():
    p = paged_plan([8192])
    assert p["block_dim"] == 24 and len(p["worker_item_begin"]) - 1 == 48


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"block_size": 24}, "block_size must be a multiple of 16"),
        ({"heads": 128, "kv_heads": 1}, "at most 64 query heads per kv head"),
        ({"d": 40}, "head_dim must be a multiple of 16"),
        ({"heads": 8192, "kv_heads": 8192, "d": 256}, "heads x head_dim must be at most 1048560"),
        ({"cores": 65}, "num_cores must be in"),
    ],
)
def test_paged_rejections(kwargs, message):
    with pytest.raises(ValueError, match=message):
        paged_plan([100], **kwargs)


# The constraints every valid TCubeTiling meets (CANN docs, TCubeTiling结构体.md, table 2), for fp16/bf16 A and B in
# GM (ND) and fp32 C, applied to the simulator's hand-filled Matmul tilings: NPU builds use CANN's own tiling API
# instead, which this machine cannot run.
L0A_BYTES, L0B_BYTES, L0C_BYTES, L1_BYTES = 64 * 1024, 64 * 1024, 128 * 1024, 512 * 1024 - 256


def check_cube_tiling(t: dict, m: int, n: int, k: int) -> None:
    assert t["usedCoreNum"] == 1  # one AIV's single-core GEMM (vector-master)
    assert (t["singleCoreM"], t["singleCoreN"], t["singleCoreK"]) == (m, n, k)
    for name in ("baseM", "baseN", "baseK"):
        assert t[name] > 0 and t[name] % 16 == 0, (name, t[name])  # NZ fractals; C0 of fp16/bf16 is 16
    for name in ("dbL0A", "dbL0B", "dbL0C"):
        assert t[name] in (1, 2), name
    assert t["isBias"] in (0, 1) and t["iterateOrder"] in (0, 1)
    assert min(t[s] for s in ("stepM", "stepN", "stepKa", "stepKb")) > 0
    assert t["depthA1"] in (t["stepM"] * t["stepKa"], 2 * t["stepM"] * t["stepKa"])
    assert t["depthB1"] in (t["stepN"] * t["stepKb"], 2 * t["stepN"] * t["stepKb"])
    assert t["baseM"] * t["baseK"] * 2 * t["dbL0A"] < L0A_BYTES
    assert t["baseN"] * t["baseK"] * 2 * t["dbL0B"] < L0B_BYTES
    assert t["baseM"] * t["baseN"] * 4 * t["dbL0C"] < L0C_BYTES
    assert (t["baseM"] * t["depthA1"] + t["baseN"] * t["depthB1"]) * t["baseK"] * 2 <= L1_BYTES


@pytest.mark.parametrize("d, dv", [(16, 16), (64, 64), (128, 128), (192, 128), (256, 256), (512, 512)])
@pytest.mark.parametrize("seqlen", [16, 100, 512, 3000])
def test_flash_matmul_tilings_meet_the_documented_constraints(d, dv, seqlen):
    p = plan([seqlen], [seqlen], d=d, dv=dv)
    rows = p["rows_per_aiv"]
    check_cube_tiling(p["mm1"], rows, p["block_cols"], d)  # S = Q K^T: the AIV's rows, a KV tile of keys
    check_cube_tiling(p["mm2"], rows, dv, p["block_cols"])  # O = P V


@pytest.mark.parametrize(
    "kwargs, piece_rows",
    [
        ({}, 32),  # 8 KB hold two tokens of 4 kv heads x GQA 4 (decode items have one)
        ({"q_lens": [64] * 8, "kv_heads": 32}, 32),  # MHA prefill, 4 kv heads per item: 8 tokens per trip
        ({"heads": 64, "kv_heads": 1, "d": 512, "q_lens": [20] * 8}, 8),  # a token's 64 rows in 8-row pieces
        ({"context_lens": [9000], "q_lens": [3], "heads": 64, "kv_heads": 1, "d": 512}, 1),  # 15 splits' combine
    ],
)
def test_paged_query_rows_cross_ub_in_pieces_that_fit(kwargs, piece_rows):
    """The queries go to the Q slot through UB in pieces: whole tokens, kv head runs or rows, as UB leaves room after
    the softmax state and the combine buffers (d 512 with 15 splits leaves about 1 KB: one row at a time)."""
    kwargs = {"context_lens": [8192] * 8, **kwargs}
    p = paged_plan(**kwargs)
    assert p["query_piece_rows"] == piece_rows and p["chunk_rows"] >= 1


@pytest.mark.parametrize("context_lens", [[1000], [8192] * 8], ids=["one kv head per item", "grouped"])
@pytest.mark.parametrize("block_size", [16, 64, 128, 512])
@pytest.mark.parametrize("d", [64, 128, 256])
def test_paged_matmul_tilings_meet_the_documented_constraints(context_lens, block_size, d):
    p = paged_plan(context_lens, block_size=block_size, d=d)
    width = p["heads_per_item"] * d  # one page of the item's kv heads per GEMM
    check_cube_tiling(p["mm1"], 64, block_size, width)
    check_cube_tiling(p["mm2"], 64, width, block_size)


@pytest.mark.parametrize("field", ["heads", "kv_heads", "d", "dv", "cores"])
def test_plan_sizes_past_int32_are_named(field):
    """The plan bindings hold sizes in 32 bits: 2^32 + 4 must not wrap into 4."""
    with pytest.raises(ValueError, match="must be in \\[0, 2\\^31 - 1\\], got 4294967300"):
        plan([10], [10], **{field: 2**32 + 4})


def test_rows_per_aiv_grows_when_there_is_work_to_balance():
    """128 rows per AIV (256-row tasks) read each K/V tile once for twice the rows; the tiling takes them when the
    UB holds their O and statistics and there are at least 4 tasks per core, else 64."""
    long = plan([8192], [8192], heads=32, kv_heads=32, cores=24)
    assert long["rows_per_aiv"] == 128 and len(long["task_weights"]) == 32 * 8192 // 256
    assert long["ub_bytes"] <= long["ub_budget"]
    check_cube_tiling(long["mm1"], 128, long["block_cols"], 128)  # a 128 x 128 fp32 block fits L0C only once
    check_cube_tiling(long["mm2"], 128, 128, long["block_cols"])
    assert plan([1024], [1024], heads=2, kv_heads=2, cores=24)["rows_per_aiv"] == 64  # 8 tasks: keep 64-row ones
    wide = plan([8192], [8192], heads=32, kv_heads=32, dv=512, cores=24)  # O of 128 rows x 512 does not fit UB
    assert wide["rows_per_aiv"] == 64 and wide["ub_bytes"] <= wide["ub_budget"]
