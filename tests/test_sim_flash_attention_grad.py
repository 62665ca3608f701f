"""op_kernel/flash_attention_grad (the backward of flash_attention) in the simulator, through
ascend_attn.sim.flash_attn_varlen_backward, against PyTorch autograd through the fp64 reference."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_out_close
from reference import attention_varlen_ref, make_varlen

from ascend_attn import sim

DTYPES = [torch.float16, torch.bfloat16]

# (q_lens, k_lens, heads, kv_heads, head_dim, head_dim_v, options, num_cores)
CASES = [
    ([37, 130, 1], [37, 130, 5], 4, 4, 64, 64, {"causal": True}, 3),  # MHA, ragged, bottom-right with sq != sk
    ([200, 0, 3], [260, 7, 0], 4, 2, 128, 128, {}, 2),  # GQA; keys no query reads, queries with no key
    ([129, 64], [129, 300], 4, 1, 64, 64, {"causal": True}, 24),  # MQA, three key tiles, more cores than tasks
    ([70, 20], [90, 20], 2, 2, 128, 64, {"window_size": (16, 8)}, 3),  # sliding window, head_dim_v != head_dim
    ([40], [300], 2, 1, 256, 256, {"softcap": 5.0, "causal": True}, 3),
    ([150, 9], [150, 33], 2, 2, 64, 64, {"window_size": (-1, 3), "softmax_scale": 0.3}, 2),
    ([1, 1, 6], [1, 5, 1], 2, 1, 64, 64, {"causal": True}, 2),  # length-1 sequences
    ([60], [20], 2, 2, 64, 64, {"causal": True, "softcap": 2.0}, 1),  # the first 40 rows see no key
    # Three 256-row blocks per q head of the first tiles: dV and dK over a pair of full blocks, over a full block and
    # an 8-row one, and over single blocks in either P / dS slot (a pair never spans two heads).
    ([600, 40], [520, 40], 4, 2, 64, 64, {"causal": True}, 3),
]


def reference_grads(q, k, v, dout, cu_q, cu_k, dtype, **options):
    """(dq, dk, dv) by autograd through the reference: in fp64 when dtype is None, else in that dtype (PyTorch's own
    error at that precision, the tolerance policy's yardstick)."""
    work = [x.to(dtype or torch.float64).requires_grad_() for x in (q, k, v)]
    out, _ = attention_varlen_ref(*work, cu_q, cu_k, upcast=False, **options)
    out.backward(dout.to(out.dtype))
    return [x.grad for x in work]


def run_case(case, dtype, **kwargs):
    q_lens, k_lens, heads, kv_heads, d, dv, options, cores = case
    torch.manual_seed(len(q_lens) + d + dv)
    q, k, v, cu_q, cu_k = make_varlen(q_lens, k_lens, heads, kv_heads, d, dv, dtype)
    out, lse = attention_varlen_ref(q, k, v, cu_q, cu_k, **options)  # the forward: out in dtype, lse fp32
    dout = torch.randn(out.shape).to(dtype)
    r = sim.flash_attn_varlen_backward(dout, q, k, v, out, lse, cu_q, cu_k, max(q_lens), max(k_lens),
                                       num_cores=cores, **options, **kwargs)  # fmt: skip
    return r, (q, k, v, dout, cu_q, cu_k)


@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_matches_autograd(case, dtype, deterministic):
    options = case[6]
    r, (q, k, v, dout, cu_q, cu_k) = run_case(case, dtype, deterministic=deterministic)
    exact = reference_grads(q, k, v, dout, cu_q, cu_k, None, **options)
    lowp = reference_grads(q, k, v, dout, cu_q, cu_k, dtype, **options)
    for name, got, ref, ref_lowp in zip(("dq", "dk", "dv"), (r.dq, r.dk, r.dv), exact, lowp, strict=True):
        assert got.dtype == dtype, name
        assert_out_close(got, ref, ref_lowp)
    assert r.stats.block_dim <= case[7] and len(r.stats.per_core) == r.stats.block_dim


def test_rows_and_keys_nothing_reaches_get_zero_gradients():
    """A query row that sees no key has dq = 0; a key no query sees has dk = dv = 0 (exactly, not NaN)."""
    q, k, v, cu_q, cu_k = make_varlen([60, 0, 4], [20, 9, 0], 2, 1, 64, 64, torch.float16)
    options = {"causal": True}
    out, lse = attention_varlen_ref(q, k, v, cu_q, cu_k, **options)
    dout = torch.randn(out.shape).half()
    for deterministic in (False, True):
        r = sim.flash_attn_varlen_backward(dout, q, k, v, out, lse, cu_q, cu_k, 60, 20, num_cores=2,
                                           deterministic=deterministic, **options)  # fmt: skip
        assert torch.equal(r.dq[:40], torch.zeros_like(r.dq[:40]))  # rows 0..39 sit before key 0
        assert torch.equal(r.dq[60:], torch.zeros_like(r.dq[60:]))  # the sequence with no key
        assert r.dq[40:60].abs().sum() > 0
        assert torch.equal(r.dk[20:], torch.zeros_like(r.dk[20:]))  # the sequence with no query
        assert torch.equal(r.dv[20:], torch.zeros_like(r.dv[20:]))
        assert r.dk[:20].abs().sum() > 0 and r.dv[:20].abs().sum() > 0


def test_no_query_or_no_key_launches_nothing():
    q, k, v, cu_q, cu_k = make_varlen([0, 0], [5, 3], 2, 2, 64, 64, torch.bfloat16)
    out, lse = attention_varlen_ref(q, k, v, cu_q, cu_k)
    r = sim.flash_attn_varlen_backward(out, q, k, v, out, lse, cu_q, cu_k, 0, 5, num_cores=2)
    assert r.stats.block_dim == 0 and r.dk.shape == k.shape and not r.dk.any() and not r.dv.any()


@pytest.mark.parametrize("seed", [3, 11])
def test_deterministic_is_bit_identical_over_interleavings(seed):
    """deterministic=True: the seeded schedules (cores switched in an order drawn from the seed) give the same bits as
    the free-running one. By default dk and dv are bit-identical too; dq only close (atomic adds in schedule order)."""
    case = ([300, 130], [300, 260], 4, 2, 64, 64, {"causal": True}, 3)
    free, _ = run_case(case, torch.float16, deterministic=True)
    serial, _ = run_case(case, torch.float16, deterministic=True, schedule_seed=seed)
    for a, b in zip((free.dq, free.dk, free.dv), (serial.dq, serial.dk, serial.dv), strict=True):
        assert torch.equal(a, b)
    free, _ = run_case(case, torch.float16)
    serial, _ = run_case(case, torch.float16, schedule_seed=seed)
    assert torch.equal(free.dk, serial.dk) and torch.equal(free.dv, serial.dv)
    assert torch.allclose(free.dq.float(), serial.dq.float(), atol=2e-3, rtol=1e-2)


@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
def test_dry_run_counts_the_same(deterministic):
    case = ([300, 40], [300, 90], 4, 2, 128, 128, {"causal": True, "softcap": 3.0}, 3)
    real, _ = run_case(case, torch.bfloat16, deterministic=deterministic)
    dry, _ = run_case(case, torch.bfloat16, deterministic=deterministic, dry_run=True)
    assert dry.stats.per_core == real.stats.per_core and dry.stats.modelled_us == real.stats.modelled_us


def test_stats_count_the_work():
    case = ([512], [512], 2, 2, 64, 64, {}, 4)  # two 256-key tiles, two 256-row blocks
    full, _ = run_case(case, torch.float16)
    causal, _ = run_case(case[:6] + ({"causal": True}, 4), torch.float16)
    det, _ = run_case(case, torch.float16, deterministic=True)
    # Five products of 512 x 512 x 64 per head (padding adds nothing here: every size is a multiple of 16).
    macs = sum(c["cube_macs"] for c in full.stats.per_core)
    assert macs == 5 * 2 * 512 * 512 * 64
    assert sum(c["cube_macs"] for c in det.stats.per_core) == 7 * 2 * 512 * 512 * 64  # S and dP twice
    # Causal: the second key tile is seen by the second row block only, so 3 of the 4 (rows, keys) blocks are done.
    assert sum(c["cube_macs"] for c in causal.stats.per_core) == 3 * macs // 4
    assert full.stats.useful_flops == 2 * (3 * 64 + 2 * 64) * 2 * 512 * 512
    for st in (full.stats, causal.stats, det.stats):  # the timeline never beats its roofline, on any core
        assert st.modelled_us >= st.roofline_us > st.launch_overhead_us
        assert all(c["modelled_us"] >= c["roofline_us"] for c in st.per_core)
        assert 0 < st.cube_utilisation <= 1 and st.critical


def test_rejections_name_the_argument():
    q, k, v, cu_q, cu_k = make_varlen([5], [7], 4, 2, 64, 64, torch.float16)
    out, lse = attention_varlen_ref(q, k, v, cu_q, cu_k)
    dout = torch.randn(out.shape).half()

    def call(**change):
        args = {"dout": dout, "q": q, "k": k, "v": v, "out": out, "lse": lse, "num_cores": 2}
        args.update(change)
        sim.flash_attn_varlen_backward(args.pop("dout"), args.pop("q"), args.pop("k"), args.pop("v"), args.pop("out"),
                                       args.pop("lse"), cu_q, cu_k, 5, 7, **args)  # fmt: skip

    cases = [
        ({"dout": dout[:, :2]}, "dout must have the forward output's shape"),
        ({"dout": dout.float()}, "dout must have the same dtype as q"),
        ({"out": out[:4]}, "out must have the forward output's shape"),
        ({"lse": torch.empty(0)}, r"lse is empty: .* return_lse=True"),
        ({"lse": lse[:, :3]}, r"lse must have shape \[heads, total_q\] = \[4, 5\]"),
        ({"lse": lse.double()}, "lse must be float32"),
        ({"q": q.float(), "k": k.float(), "v": v.float(), "out": out.float(), "dout": dout.float()},
         "takes float16 or bfloat16"),
        ({"num_cores": 0}, "num_cores must be >= 1"),
        ({"num_cores": 65}, r"num_cores must be in \[1, 64\]"),
        ({"k": k[:, :1].expand(-1, 3, -1), "v": v[:, :1].expand(-1, 3, -1)}, "must divide"),
        ({"alibi_slopes": torch.ones(4)}, "alibi_slopes: not supported by the Ascend C flash_attention_backward"),
    ]  # fmt: skip
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            call(**change)
    q40, k40, v40, _, _ = make_varlen([5], [7], 4, 2, 40, 40, torch.float16)
    out40, lse40 = attention_varlen_ref(q40, k40, v40, cu_q, cu_k)
    with pytest.raises(ValueError, match="head_dim must be a multiple of 16"):
        sim.flash_attn_varlen_backward(out40, q40, k40, v40, out40, lse40, cu_q, cu_k, 5, 7)
