"""Calibration of the timeline model (csrc/sim/sim_timeline.*): purpose-built kernels whose modelled time follows
from the cost table (csrc/sim/sim_config.h, exposed as ascend_attn._sim.model) by hand."""

from __future__ import annotations

import pytest
import torch

from ascend_attn import _sim

M = _sim.model
GM_PER_CYCLE = M["gm_bytes_per_second"] / M["cores"] / M["clock_hz"]  # one core's share, bytes per cycle
L2_PER_CYCLE = M["l2_bytes_per_second"] / M["cores"] / M["clock_hz"]


def copy(kernels, n, chunk, buffers, passes=1):
    gm = torch.randn(2 * n)
    args = torch.tensor([n, chunk, buffers, passes], dtype=torch.int32)
    timeline = kernels.run("copy_through", [gm, args], ["inout", "input"], 1, None)
    assert torch.equal(gm[n:], gm[:n])
    return timeline


def test_large_copy_runs_at_the_cores_share_of_gm_bandwidth(kernels):
    """16 MiB in and out through UB: every byte is new to L2, so the copy moves at one core's share of GM."""
    n = 4 * 1024 * 1024
    t = copy(kernels, n, 8192, 2)
    ideal = 2 * n * 4 / GM_PER_CYCLE
    assert ideal <= t["end"] <= 1.1 * ideal, (t["end"], ideal)


def test_tiny_copy_is_latency_bound(kernels):
    """32 bytes in from HBM, 32 bytes out to the L2 granule the copy-in brought there: two latencies, next to no
    transfer time."""
    t = copy(kernels, 8, 8, 1)
    transfer = 2 * 32 / GM_PER_CYCLE
    latencies = M["gm_latency_cycles"] + M["l2_latency_cycles"]
    assert latencies <= t["end"] <= latencies + 0.1 * latencies
    assert latencies > 20 * transfer


def test_double_buffering_hides_the_latency(kernels):
    """Single-buffered, each chunk's copy-in and copy-out wait for each other's latency; double-buffered, the port
    stays busy: the ratio tends to (2 x (transfer + latency)) / (2 x transfer) for many chunks."""
    n, chunk = 1024 * 1024, 8192
    single, double = copy(kernels, n, chunk, 1)["end"], copy(kernels, n, chunk, 2)["end"]
    transfer = chunk * 4 / GM_PER_CYCLE
    expected = (transfer + M["gm_latency_cycles"]) / transfer
    assert double < single
    assert abs(single / double - expected) < 0.1 * expected, (single / double, expected)


def test_dependent_instructions_add_independent_ones_overlap(kernels):
    gm = torch.zeros(8192)
    vector = 8192 * 4 / M["vector_bytes_per_cycle"] + M["vector_startup_cycles"]
    dma = 8192 * 4 / GM_PER_CYCLE + M["gm_latency_cycles"]
    dependent = kernels.run("dependent_pair", [gm], ["inout"], 1, None)["end"]
    independent = kernels.run("independent_pair", [gm], ["inout"], 1, None)["end"]
    issue = 4 * M["issue_cycles"]  # the scalar unit issues each instruction (and flag) in turn
    assert vector + dma <= dependent <= vector + dma + issue
    assert max(vector, dma) <= independent <= max(vector, dma) + issue


# Elements per cycle on Atlas A2, fp16 and fp32, as the API appendix page 附录/Vector指令理论性能汇总.md states them
# (tables 3 and 8); written out here so the test checks the model against the page, not against itself.
A2_VECTOR_RATES = {
    "Duplicate": (128, 64),
    "Add": (128, 64),
    "Exp": (32, 32),
    "Ln": (32, 32),
    "Div": (32, 32),
    "Reciprocal": (128, 64),
    "WholeReduceMax": (128 / 7, 64 / 7),  # the page's ReduceRepeat
    "WholeReduceSum": (128 / 7, 64 / 7),
    "BlockReduceMax": (128 / 7, 64),  # the page's ReduceDataBlock
    "BlockReduceSum": (128 / 7, 64),
}


@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_vector_instructions_run_at_the_documented_rates(kernels, dtype):
    """Eight 256-byte repeats of each instruction: its time on the V pipe is 8 x (elements per repeat / the page's
    rate) cycles plus the start-up every vector instruction pays."""
    t = kernels.run(f"vector_rates_{dtype}", [], [], 1, None)
    timed = [(name, end - start) for _, pipe, start, end, name in t["events"] if pipe == "V"]
    assert [name for name, _ in timed] == ["Duplicate", "Duplicate", "Add", "Exp", "Ln", "Div", "Reciprocal",
                                           "WholeReduceMax", "WholeReduceSum", "BlockReduceMax",
                                           "BlockReduceSum"]  # fmt: skip
    per_repeat = 128 if dtype == "fp16" else 64
    for name, cycles in timed:
        rate = A2_VECTOR_RATES[name][0 if dtype == "fp16" else 1]
        expected = 8 * per_repeat / rate + M["vector_startup_cycles"]
        assert cycles == pytest.approx(expected), (name, cycles, expected)


@pytest.mark.parametrize("cores", [1, 2])
def test_matmul_only_approaches_but_never_exceeds_the_cube_peak(kernels, cores):
    buffers = [torch.zeros(2 * cores * 128 * 256), torch.randn(128 * 512 + 512 * 256).half()]
    t = kernels.run("matmul_only", buffers, ["inout", "inout"], cores, None)
    macs = 16 * 2 * 128 * 256 * 512  # per core: 16 requests from each of its two AIVs
    compute = macs / M["cube_macs_per_cycle"]
    for core in range(cores):
        assert compute <= t["busy"][f"core {core} cube"] <= t["end"]  # the cube is never faster than its peak
    # The two AIVs keep it busy; what is left is the first request's cold reads from HBM and each request's fill.
    assert compute / t["end"] >= 0.85, compute / t["end"]


def test_thin_matmul_is_bound_by_loading_l0b(kernels):
    """16 x 512 x 512 fp16 requests on L2-resident operands: the cube loads A into L0A at 256 bytes per cycle (once per
    128-column base block of B) and B into L0B at 128 bytes per cycle (Cube指令理论性能汇总.md table 3, A2), which takes
    longer than the multiply-adds and than moving the operands through the core's port."""
    buffers = [torch.zeros(16 * 512), torch.randn(16 * 512 + 512 * 512).half()]
    t = kernels.run("matmul_thin", buffers, ["inout", "inout"], 1, None)
    requests = [end - start for _, pipe, start, end, name in t["events"] if name == "IterateAll"]
    assert len(requests) == 8
    load = 16 * 512 * 2 * 4 / 256 + 512 * 512 * 2 / 128
    compute = 16 * 512 * 512 / M["cube_macs_per_cycle"]
    port = (16 * 512 * 2 + 512 * 512 * 2 + 16 * 512 * 4) / L2_PER_CYCLE + M["l2_latency_cycles"]
    assert load > 1.05 * max(compute, port)
    for cycles in requests[1:]:  # the first request reads its operands from HBM
        assert cycles == pytest.approx(load + M["cube_fill_cycles"]), (cycles, load)


def test_the_l2_serves_repeated_reads(kernels):
    """Copying the same 1 MiB twice in one launch, single-buffered (each chunk's copy-in and copy-out wait out each
    other's latency, so the time follows by hand): the first pass moves at one core's share of HBM with HBM's
    latency, the second finds every byte in L2 and moves at the L2 rate with the L2 latency. Every launch starts
    with a cold L2."""
    n, chunk = 256 * 1024, 16384
    once, twice = copy(kernels, n, chunk, 1)["end"], copy(kernels, n, chunk, 1, passes=2)["end"]
    chunks, nbytes = n // chunk, chunk * 4
    cold = chunks * 2 * (nbytes / GM_PER_CYCLE + M["gm_latency_cycles"])
    warm = chunks * 2 * (nbytes / L2_PER_CYCLE + M["l2_latency_cycles"])
    assert once == pytest.approx(cold, rel=0.02)
    assert twice - once == pytest.approx(warm, rel=0.02)
    assert copy(kernels, n, chunk, 1)["end"] == once
