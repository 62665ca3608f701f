"""The simulator enforces the hardware's rules: one purpose-built kernel per rule (tests/sim/rule_kernels.cpp), each
violation caught with a message naming the rule and the kernel source line."""

from __future__ import annotations

import os

import pytest
import torch
from torch.utils.cpp_extension import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def kernels():
    kernel_file = os.path.join(ROOT, "tests", "sim", "rule_kernels.cpp")
    sources = [kernel_file, os.path.join(ROOT, "csrc", "sim", "sim_runtime.cpp")]
    return load(
        name="ascend_attn_sim_rule_kernels",
        sources=sources,
        extra_include_paths=[os.path.join(ROOT, "csrc", "sim")],
        extra_cflags=["-O1", "-std=c++17"],
    )


def run(kernels, name, cores=1):
    gm = torch.zeros(64 if name != "row_broadcast" else 128)
    kernels.run(name, gm, cores)
    return gm


@pytest.mark.parametrize(
    "name, message",
    [
        ("ub_capacity", r"UB capacity exceeded: InitBuffer of 40960 bytes"),
        ("l1_capacity", r"L1 capacity exceeded"),
        ("matmul_l1", r"depthA1/depthB1 need 524288 bytes of L1"),
        ("unaligned", r"local source at byte offset 12 is not 32-byte aligned"),
        ("copy_length", r"DataCopy of 5 elements \(20 bytes\) is not a whole number of 32-byte blocks"),
        ("repeat_limit", r"repeatTime 300 outside 0..255"),
        ("unmatched_set_flag", r"SetFlag without a matching WaitFlag for event 0 id 0 at kernel exit"),
        ("wait_without_set", r"WaitFlag for event 2 id 1 with no prior SetFlag"),
        ("enque_without_deque", r"1 EnQue without DeQue at kernel exit"),
        ("alloc_without_free", r"1 AllocTensor without FreeTensor at kernel exit"),
        ("gm_out_of_bounds", r"GM access of elements \[0, 16\) is outside its GlobalTensor \(8 elements\)"),
        ("gm_outside_buffers", r"SetGlobalBuffer of 256 bytes is not inside any GM buffer passed to the launch"),
        ("cross_core_saturation", r"CrossCoreSetFlag id 3 has more than 15 pending sets"),
    ],
)
def test_violation_is_caught_with_kernel_line(kernels, name, message):
    with pytest.raises(RuntimeError, match=message) as err:
        run(kernels, name)
    assert "rule_kernels.cpp:" in str(err.value), str(err.value)


def test_cross_core_flags_and_sync_all(kernels):
    gm = run(kernels, "handshake", cores=3)
    assert gm[:6].tolist() == [1, 2, 3, 4, 5, 6]
    assert gm[63].item() == 21  # AIV 0 saw every AIV's write after SyncAll


def test_row_broadcast_and_cast_rounding(kernels):
    gm = torch.zeros(128)
    x = torch.randn(4, 16)
    stats = torch.tensor([2.0, -1.0, 0.5, 3.0])
    vals = torch.randn(16) * 1000 + 0.3
    gm[:64], gm[64:68], gm[72:88] = x.flatten(), stats, vals
    kernels.run("row_broadcast", gm, 1)
    assert torch.equal(gm[:64].view(4, 16), x * stats[:, None])
    assert torch.equal(gm[72:88], vals.half().float())  # round to nearest even, as torch does


def test_compare_select_masked_duplicate_and_rounding_modes(kernels):
    gm = torch.zeros(192)
    x, y = torch.randn(64) * 100, torch.randn(64) * 100
    gm[:64], gm[64:128] = x, y
    kernels.run("select_and_round", gm, 1)
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
