"""The simulator enforces the hardware's rules: one purpose-built kernel per rule (tests/sim/rule_kernels.cpp), each
violation caught with a message naming the rule and the kernel source line; the correct variants run and compute."""

from __future__ import annotations

import pytest
import torch


def run(kernels, name, buffers=None, roles=None, cores=1, seed=None):
    buffers = buffers if buffers is not None else [torch.zeros(256)]
    roles = roles if roles is not None else ["inout"] * len(buffers)
    kernels.run(name, buffers, roles, cores, seed)
    return buffers


def matmul_buffers():
    c = torch.zeros(512)
    ab = torch.randn(512).half()
    return [c, ab], ["inout", "inout"]


VIOLATIONS = [
    # capacities, alignment, copies, GM bounds
    ("ub_capacity", {}, r"UB capacity exceeded: InitBuffer of 40960 bytes"),
    ("l1_capacity", {}, r"L1 capacity exceeded"),
    ("matmul_l1", {}, r"depthA1/depthB1 need 524288 bytes of L1"),
    ("matmul_depth", {}, r"depthA1 3 / depthB1 2 are not stepM x stepKa / stepN x stepKb times 1 or 2"),
    ("matmul_l0c", {}, r"base block \(m 128, n 128, k 64\) needs .* L0C 131072 bytes: more than L0 holds"),
    ("unaligned", {}, r"local source at byte offset 12 is not 32-byte aligned"),
    ("copy_length", {}, r"DataCopy of 5 elements \(20 bytes\) is not a whole number of 32-byte blocks"),
    ("repeat_limit", {}, r"repeatTime 300 outside 0..255"),
    ("gm_out_of_bounds", {}, r"GM access of elements \[0, 16\) is outside its GlobalTensor \(8 elements\)"),
    (
        "gm_outside_buffers",
        {"buffers": [torch.zeros(64)]},
        r"SetGlobalBuffer of 256 bytes is not inside any GM buffer",
    ),
    # flags and event ids
    ("unmatched_set_flag", {}, r"SetFlag<HardEvent::MTE2_V>\(0\) has no matching WaitFlag at kernel exit"),
    ("wait_without_set", {}, r"WaitFlag<HardEvent::V_MTE3>\(1\) with no SetFlag before it"),
    ("set_flag_twice", {}, r"SetFlag<HardEvent::MTE2_V>\(1\) twice without a WaitFlag between"),
    ("reserved_event_id", {}, r"event ids 6 and 7 are reserved"),
    ("cube_event_on_aiv", {}, r"SetFlag<HardEvent::M_MTE1>: no such event on the AIV"),
    ("pipe_barrier_s", {}, r"PipeBarrier<PIPE_S>"),
    ("hardcoded_event_id", {}, r"event ids must come from TPipe::AllocEventID or FetchEventID"),
    ("fetched_id_collides", {}, r"SetFlag<HardEvent::V_MTE3>\(0\) twice without a WaitFlag between"),
    # queues
    ("enque_without_deque", {}, r"1 EnQue without DeQue at kernel exit"),
    ("alloc_without_free", {}, r"1 AllocTensor without FreeTensor at kernel exit"),
    ("use_after_free", {}, r"use of a LocalTensor after its FreeTensor at rule_kernels.cpp:\d+"),
    ("enque_freed", {}, r"a LocalTensor used after its FreeTensor"),
    # races between the pipes of one core
    ("vecin_copy_through", {}, r"data race on UB of AIV 0 .*MTE2 write at rule_kernels.cpp:\d+ and AIV 0 MTE3 read"),
    ("tbuf_no_flag", {}, r"data race on UB .*V write at rule_kernels.cpp:\d+ and AIV 0 MTE3 read"),
    ("tbuf_reuse_no_flag", {}, r"data race on UB .*MTE3 read at rule_kernels.cpp:\d+ and AIV 0 V write"),
    ("mte2_overlap", {}, r"MTE2 write .* and AIV 0 MTE2 write .* needs PipeBarrier<PIPE_MTE2>"),
    # the scalar data cache and other cores
    ("setvalue_then_dma", {"cores": 2}, r"MTE2 reads GM 'gm0' \+ 0 \(32 bytes\), which AIV 0 wrote with SetValue"),
    (
        "two_cores_one_line",
        {"cores": 2},
        r"data race on GM .gm0. bytes \[0, 64\): AIV [01] S write .* AIV [01] S write",
    ),
    ("two_cores_dirty_one_line", {"cores": 2}, r"two cores dirty one 64-byte data-cache line .*AIV 0 \(SetValue at"),
    ("setvalue_unflushed", {}, r"SetValue\) is still in this core's data cache at kernel exit"),
    ("stale_scalar_read", {"cores": 2}, r"hits a data-cache line this core cached before MTE3 of AIV 1 changed it"),
    (
        "gm_cross_core_race",
        {"cores": 2},
        r"data race on GM 'gm0' .*(AIV 0 MTE3 write .* AIV 1 MTE2 read|AIV 1 MTE2 read .* AIV 0 MTE3 write)",
    ),
    ("syncall_early_exit", {"cores": 2}, r"SyncAll .*reached by 1 of 2 AIVs: AIV 1 returned before it"),
    ("syncall_in_aiv_only", {}, r"SyncAll needs the scheduling module of a mix launch"),
    ("cross_core_in_aiv_only", {}, r"CrossCoreSetFlag needs the scheduling module"),
    ("cross_core_syncall_id", {}, r"flag id 12 is one of SyncAll's"),
    ("deadlock_flag", {}, r"deadlock: every live thread is blocked .*AIV 0 waits in CrossCoreWaitFlag\(3\) at rule_"),
    ("cross_core_saturation", {}, r"CrossCoreSetFlag id 3 would give AIV 0 more than 15 pending sets"),
    # Matmul
    ("matmul_async_unwaited_read", {"mm": True}, r"data race on GM 'gm0' .*Matmul write .* MTE2 read"),
    ("matmul_after_initbuffer", {}, r"REGIST_MATMUL_OBJ after InitBuffer"),
    ("matmul_without_end", {"mm": True}, r"a second Matmul object used without End\(\) on the first"),
    ("matmul_reads_dma_output", {"mm": True}, r"data race on GM 'gm1' .*MTE3 write .* Matmul read"),
    (
        "matmul_atomic_vs_read",
        {"mm": True, "cores": 2},
        r"data race on GM 'gm0' .*(Matmul atomic add .* MTE2 read|MTE2 read .* Matmul atomic add)",
    ),
    (
        "matmul_atomic_vs_write",
        {"mm": True, "cores": 2},
        r"data race on GM 'gm0' .*(Matmul atomic add .* MTE3 write|MTE3 write .* Matmul atomic add)",
    ),
    ("matmul_atomic_max", {"mm": True}, r"IterateAll enAtomic 2: the simulator has 0 \(none\) and 1 \(AtomicAdd\)"),
    # buffers
    ("write_input", {"roles": ["input"]}, r"the kernel writes GM 'gm0', an input buffer of the launch"),
]


@pytest.mark.parametrize("name, options, message", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_violation_is_caught_with_kernel_line(kernels, name, options, message):
    options = dict(options)
    if options.pop("mm", False):
        options["buffers"], options["roles"] = matmul_buffers()
    with pytest.raises(RuntimeError, match=message) as err:
        run(kernels, name, **options)
    assert "rule_kernels.cpp:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name", ["gm_cross_core_race", "setvalue_then_dma", "stale_scalar_read"])
@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_cross_core_violations_do_not_depend_on_the_interleaving(kernels, name, seed):
    """The race detector follows the synchronisation, not the schedule: every seeded order, and free-running threads,
    report the same rule."""
    rule = {"gm_cross_core_race": "data race", "setvalue_then_dma": "SetValue", "stale_scalar_read": "cached before"}
    with pytest.raises(RuntimeError, match=rule[name]):
        run(kernels, name, cores=2, seed=seed)


@pytest.mark.parametrize("seed", [None, 7])
def test_ordered_variants_run_and_compute(kernels, seed):
    x = torch.randn(256)
    (g,) = run(kernels, "bind_copy_through", [x.clone()], seed=seed)
    assert torch.equal(g[:64], x[:64]) and torch.equal(g[64:128], x[:64])
    (g,) = run(kernels, "tbuf_reuse_flagged", seed=seed)
    assert torch.equal(g[:64], torch.ones(64))
    run(kernels, "mte2_overlap_barrier", seed=seed)
    (g,) = run(kernels, "scalar_reads_vector", seed=seed)
    assert g[0].item() == 8.0
    (g,) = run(kernels, "setvalue_flushed_then_dma", cores=2, seed=seed)
    assert g[32].item() == 5.0
    (g,) = run(kernels, "gm_cross_core_synced", cores=2, seed=seed)
    assert torch.equal(g[64:128], torch.full((64,), 4.0))
    (g,) = run(kernels, "mode1_barrier", seed=seed)
    assert torch.equal(g[64:128], torch.full((64,), 6.0))


def test_matmul_waited_result(kernels):
    buffers, roles = matmul_buffers()
    c, ab = run(kernels, "matmul_async_waited", buffers, roles, cores=2)
    ref = ab[:256].float().view(16, 16) @ ab[256:].float().view(16, 16)
    assert torch.allclose(c[:256].view(16, 16), ref, atol=1e-3) and torch.equal(c[256:], c[:256])
    buffers, roles = matmul_buffers()
    c, ab = run(kernels, "matmul_reads_dma_output_flagged", buffers, roles)
    assert torch.allclose(c[:256].view(16, 16), ab[256:].float().view(16, 16).sum(0).expand(16, 16), atol=1e-2)


@pytest.mark.parametrize("seed", [None, 4, 9])
def test_matmul_atomic_adds_from_several_cores_commute(kernels, seed):
    """IterateAll(..., enAtomic = 1) on three cores into one C: no race (atomic adds need no order among themselves)
    and C gains every core's product."""
    buffers, roles = matmul_buffers()
    buffers[0][:256] = 1.0
    c, ab = run(kernels, "matmul_atomic_add", buffers, roles, cores=3, seed=seed)
    ref = ab[:256].float().view(16, 16) @ ab[256:].float().view(16, 16)
    assert torch.allclose(c[:256].view(16, 16), 1.0 + 3 * ref, atol=1e-3)


@pytest.mark.parametrize(
    "roles, message",
    [
        (["scratch", "input"], r"an atomic add onto GM 'gm0' bytes \[0, 64\) that nothing in this launch has written"),
        (["output", "input"], r"an atomic add onto GM 'gm0' bytes \[0, 64\) that nothing in this launch has written"),
        (["inout", "scratch"], r"the cube reads GM 'gm1' bytes \[0, 32\) that nothing in this launch has written"),
    ],
)
def test_unwritten_gm_folded_into_a_result_is_caught(kernels, roles, message):
    """The cube multiplying workspace (or output) bytes no instruction of the launch wrote, or an atomic add onto
    them, folds whatever an earlier kernel left there into the result: named, not left to show as NaN from the
    poison. (An inout buffer holds the caller's data: atomic adds onto it are fine, as in the test above.)"""
    buffers = [torch.zeros(512), torch.randn(512).half()]
    with pytest.raises(RuntimeError, match=message) as err:
        run(kernels, "matmul_atomic_add", buffers, roles)
    assert "rule_kernels.cpp:" in str(err.value), str(err.value)


def test_outputs_are_poisoned(kernels):
    (g,) = run(kernels, "writes_nothing", [torch.zeros(64)], ["output"])
    assert torch.isnan(g).all()
    (g,) = run(kernels, "writes_nothing", [torch.zeros(64)], ["inout"])
    assert not g.any()


@pytest.mark.parametrize("seed", [None, 5])
def test_cross_core_flags_and_sync_all(kernels, seed):
    (g,) = run(kernels, "handshake", [torch.zeros(128)], cores=3, seed=seed)
    assert [g[16 * i].item() for i in range(6)] == [1, 2, 3, 4, 5, 6]
    assert g[16 * 7 + 15].item() == 21  # AIV 0 saw every AIV's write after SyncAll


def test_row_broadcast_and_cast_rounding(kernels):
    gm = torch.zeros(128)
    x = torch.randn(4, 16)
    stats = torch.tensor([2.0, -1.0, 0.5, 3.0])
    vals = torch.randn(16) * 1000 + 0.3
    gm[:64], gm[64:68], gm[72:88] = x.flatten(), stats, vals
    run(kernels, "row_broadcast", [gm])
    assert torch.equal(gm[:64].view(4, 16), x * stats[:, None])
    assert torch.equal(gm[72:88], vals.half().float())  # round to nearest even, as torch does


def test_whole_reduce_gives_one_result_per_repeat(kernels):
    gm = torch.zeros(384)
    x = torch.randn(4, 80)
    gm[:320] = x.flatten()
    run(kernels, "row_reductions", [gm])
    assert torch.equal(gm[320:324], x[:, :48].max(1).values)  # the count mask limits the lanes
    assert torch.allclose(gm[328:332], x[:, :64].sum(1), rtol=1e-6, atol=1e-5)
    pairs = gm[336:344].view(4, 2)
    assert torch.equal(pairs[:, 0], x[:, :64].max(1).values)
    assert torch.equal(pairs[:, 1].view(torch.int32), x[:, :64].argmax(1).int())


def test_block_reductions(kernels):
    gm = torch.zeros(384)
    x = torch.randn(4, 80)
    gm[:320] = x.flatten()
    run(kernels, "block_reductions", [gm])
    blocks = x[:, :64].reshape(4, 8, 8)
    sums = gm[320:352].view(4, 8)
    assert torch.allclose(sums[:, :5], blocks[:, :5].sum(2), rtol=1e-6, atol=1e-5)
    assert torch.equal(sums[:, 5:], torch.full((4, 3), -7.0))  # blocks with no enabled lane keep their result
    assert torch.equal(gm[352:384].view(4, 8), blocks[:, :, :2].max(2).values)


def test_block_reduce_results_need_their_alignment(kernels):
    with pytest.raises(RuntimeError, match=r"not aligned to its 32-byte results \(ReduceDataBlock.md\)"):
        run(kernels, "block_reduce_misaligned")


def test_reduction_strides_are_16_bit(kernels):
    with pytest.raises(RuntimeError, match=r"reduction strides must be in \[0, 65535\] \(ReduceDataBlock.md\)"):
        run(kernels, "reduce_wide_stride")


def test_reduction_destination_must_be_ub(kernels):
    with pytest.raises(RuntimeError, match="reduction destination is not a UB tensor"):
        run(kernels, "reduce_into_nothing")


def test_whole_reduce_pairs_need_their_alignment(kernels):
    with pytest.raises(RuntimeError, match=r"not aligned to its 8-byte result \(ReduceRepeat.md table 3\)"):
        run(kernels, "reduce_misaligned")


def test_compare_select_masked_duplicate_and_rounding_modes(kernels):
    gm = torch.zeros(192)
    x, y = torch.randn(64) * 100, torch.randn(64) * 100
    gm[:64], gm[64:128] = x, y
    run(kernels, "select_and_round", [gm])
    expect = torch.where(x < y, x, torch.tensor(-1.0))
    expect[3:6] = 7.0  # lanes 3..5 of the bitwise mask
    assert torch.equal(gm[64:128], expect)
    # The two fp16 neighbours of each x, then each rounding mode picks one (ROUND: nearest, ties away from zero).
    v = x[:16].double()
    near = v.half().double()
    other = torch.nextafter(v.half(), torch.where(near > v, -torch.inf, torch.inf).half()).double()
    down, up = torch.minimum(near, other), torch.maximum(near, other)
    down, up = torch.where(near == v, near, down), torch.where(near == v, near, up)
    tie_away = torch.where(v >= 0, up, down)
    nearest = torch.where(v - down < up - v, down, torch.where(v - down > up - v, up, tie_away))
    for i, ref in enumerate([down, up, nearest, torch.where(v >= 0, down, up)]):  # floor, ceil, round, trunc
        assert torch.equal(gm[128 + 16 * i : 144 + 16 * i].double(), ref), i
