"""op_kernel/flash_attention in the simulator against the reference, through ascend_attn.sim."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_lse_close, assert_out_close
from reference import attention_varlen_ref, make_varlen

from ascend_attn import sim

DTYPES = [torch.float16, torch.bfloat16]

# (q_lens, k_lens, heads, kv_heads, head_dim, head_dim_v, options, num_cores)
CASES = [
    ([37, 130, 1], [37, 130, 5], 4, 4, 64, 64, {"causal": True}, 3),  # MHA, ragged, bottom-right with sq != sk
    ([200, 0, 3], [260, 7, 0], 4, 2, 128, 128, {}, 1),  # GQA, empty q and empty k sequences
    ([129, 64], [129, 600], 4, 1, 64, 64, {"causal": True}, 24),  # MQA, two KV tiles, more cores than tasks
    ([70, 20], [90, 20], 2, 2, 192, 128, {"window_size": (16, 8)}, 3),  # MLA dims, sliding window
    ([40], [300], 2, 1, 256, 256, {"softcap": 5.0, "causal": True}, 3),
    ([150, 9], [150, 33], 2, 2, 64, 64, {"window_size": (-1, 3), "softmax_scale": 0.3}, 2),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_matches_reference(case, dtype):
    q_lens, k_lens, heads, kv_heads, d, dv, options, cores = case
    torch.manual_seed(len(q_lens) + d)
    q, k, v, cu_q, cu_k = make_varlen(q_lens, k_lens, heads, kv_heads, d, dv, dtype)
    r = sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, max(q_lens), max(k_lens), return_lse=True, num_cores=cores,
                                   **options)  # fmt: skip
    ref, ref_lse = attention_varlen_ref(q.float(), k.float(), v.float(), cu_q, cu_k, **options)
    ref_lowp, _ = attention_varlen_ref(q, k, v, cu_q, cu_k, upcast=False, **options)
    assert_out_close(r.out, ref, ref_lowp)
    assert_lse_close(r.lse, ref_lse, atol=2e-3)  # scores from fp16/bf16 inputs, exp differs by an ulp
    assert r.stats.block_dim <= cores and len(r.stats.per_core) == r.stats.block_dim
    # A dry run (no arithmetic) counts exactly what the real run did: the instruction stream never depends on data.
    dry = sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, max(q_lens), max(k_lens), return_lse=True,
                                     num_cores=cores, dry_run=True, **options).stats  # fmt: skip
    assert dry.per_core == r.stats.per_core and dry.modelled_us == r.stats.modelled_us


def test_stats_count_the_work():
    q, k, v, cu_q, cu_k = make_varlen([256], [256], 2, 2, 64, 64, torch.float16)
    full = sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 256, 256, num_cores=4).stats
    causal = sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 256, 256, causal=True, num_cores=4).stats
    assert full.block_dim == 4 and all(c["cube_macs"] > 0 for c in full.per_core)
    # 2 heads x 256 x 256 keys x (64 + 64) MACs per AIV row is the least the cube can do; padding adds a little.
    macs = sum(c["cube_macs"] for c in full.per_core)
    assert 2 * 256 * 256 * 128 <= macs <= 1.1 * 2 * 256 * 256 * 128
    assert sum(c["cube_macs"] for c in causal.per_core) < macs  # masked tiles skipped
    assert full.useful_flops == 2 * 128 * 2 * 256 * 256 and causal.useful_flops == 2 * 128 * 2 * (256 * 257 // 2)
    assert full.modelled_us > full.launch_overhead_us and full.modelled_tflops > 0
    for st in (full, causal):  # the timeline never beats its roofline, on any core
        assert st.modelled_us >= st.roofline_us > st.launch_overhead_us
        assert all(c["modelled_us"] >= c["roofline_us"] for c in st.per_core)
        assert 0 < st.cube_utilisation <= 1 and st.critical
    read = sum(c["gm_read_bytes"] for c in full.per_core)
    assert read >= q.nbytes + k.nbytes + v.nbytes


@pytest.mark.parametrize("seed", [3, 11])
def test_seeded_interleavings_give_the_same_result(seed):
    """Simulated cores run one at a time in a seeded order: the result is bit-identical to free-running threads (the
    kernel's synchronisation, not the schedule, decides what it computes)."""
    q, k, v, cu_q, cu_k = make_varlen([150, 70], [150, 300], 4, 2, 64, 64, torch.float16)
    free = sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 150, 300, causal=True, return_lse=True, num_cores=3)
    serial = sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 150, 300, causal=True, return_lse=True, num_cores=3,
                                        schedule_seed=seed)  # fmt: skip
    assert torch.equal(free.out, serial.out) and torch.equal(free.lse, serial.lse)
    counters = ("gm_read_bytes", "gm_write_bytes", "cube_macs", "vector_elems", "vector_cycles")
    for a, b in zip(free.stats.per_core, serial.stats.per_core, strict=True):  # the same work; the timeline may differ
        assert all(a[c] == b[c] for c in counters)


def test_dry_run_counts_the_same():
    q, k, v, cu_q, cu_k = make_varlen([300], [300], 2, 1, 128, 128, torch.bfloat16)
    real = sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 300, 300, causal=True, num_cores=3).stats
    dry = sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 300, 300, causal=True, num_cores=3, dry_run=True).stats
    assert dry.per_core == real.per_core and dry.modelled_us == real.modelled_us


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dtype": torch.float32}, "takes float16 or bfloat16"),
        ({"head_dim": 40}, "head_dim must be a multiple of 16"),
        ({"num_cores": 0}, "num_cores must be >= 1"),
        ({"num_cores": 65}, r"num_cores must be in \[1, 64\]"),
        ({"kv_heads": 3}, "must divide"),
    ],
)
def test_rejections(change, message):
    args = {"dtype": torch.float16, "head_dim": 64, "num_cores": 2, "kv_heads": 2}
    args.update(change)
    q, k, v, cu_q, cu_k = make_varlen([5], [5], 4, args["kv_heads"], args["head_dim"], 64, args["dtype"])
    with pytest.raises(ValueError, match=message):
        sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 5, 5, num_cores=args["num_cores"])


def test_trace_shows_the_cube_working_during_the_softmax(tmp_path):
    """One AIV's loop over four KV tiles of 512 keys: the softmax of tile j (four chunks of 16 rows, an Exp each)
    starts while the cube computes the scores of tile j + 1. A kernel that waits for each Matmul before its softmax
    shows no such overlap."""
    import json

    q, k, v, cu_q, cu_k = make_varlen([64], [2048], 1, 1, 128, 128, torch.float16)
    path = tmp_path / "trace.json"
    st = sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 64, 2048, num_cores=1, dry_run=True, trace=str(path)).stats
    events = json.loads(path.read_text())["traceEvents"]
    tracks = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert {"AIV 0 V", "AIV 0 Matmul", "AIV 0 MTE2", "AIV 0 S"} <= set(tracks.values())
    slices = [e for e in events if e["ph"] == "X"]
    assert all(e["dur"] >= 0 and ":" in e["args"]["at"] for e in slices)
    on = lambda track, name: [(e["ts"], e["ts"] + e["dur"]) for e in slices  # noqa: E731
                              if tracks[(e["pid"], e["tid"])] == track and e["name"] == name]  # fmt: skip
    cube = on("AIV 0 Matmul", "IterateAll<false>")
    exps = [x for x in on("AIV 0 V", "Exp") if x[1] - x[0] > 0.05]  # the tiles' Exp, not the [rows, 8] factors
    assert len(cube) == 8 and sum(m for m in (e["args"]["macs"] for e in slices) if m) > 0  # S and P V per tile
    assert len(exps) == 16
    during = [any(c < b and a < d for c, d in cube) for a, b in exps]
    assert all(any(during[4 * j : 4 * j + 4]) for j in range(3)), (exps, cube)  # tiles 0..2: S(j + 1) in flight
    assert st.modelled_us >= st.roofline_us
