"""flash_attention_backward / flash_attention_varlen_backward on CPU and the autograd of every entry point, against
PyTorch autograd through the fp64 reference."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_grad_close
from reference import attention_ref, attention_varlen_ref, grads_ref, make_varlen
from test_flash_attention import DTYPES, OPTIONS, _ids, make_options, make_qkv

import ascend_attn
from ascend_attn import autograd as autograd_module

# (batch, seqlen_q, seqlen_k, heads, kv_heads, head_dim, head_dim_v): MHA / GQA / MQA, every head dim of the issue,
# several q tiles (64 rows) and kv tiles (128 keys), seqlen_q above and below seqlen_k, head_dim_v != head_dim.
SHAPES = [
    (2, 17, 17, 4, 4, 40, 40),
    (1, 150, 150, 8, 2, 64, 64),
    (1, 300, 300, 2, 1, 128, 128),
    (2, 1, 97, 4, 1, 111, 111),
    (1, 97, 17, 4, 2, 256, 256),
    (1, 70, 260, 2, 2, 192, 128),
    (1, 33, 40, 2, 1, 1, 1),
]


def dense_grads(q, k, v, dout, **opts):
    """(dq, dk, dv) through the op's autograd (register_autograd), the forward run with return_lse=True."""
    leaves = [x.detach().requires_grad_() for x in (q, k, v)]
    out, _ = ascend_attn.flash_attention(*leaves, return_lse=True, **opts)
    out.backward(dout)
    return [x.grad for x in leaves]


def check_dense(shape, dtype, option, grads=dense_grads):
    q, k, v = make_qkv(shape, dtype)
    opts = make_options(option, shape[0], shape[3])
    dout = torch.randn(*q.shape[:3], v.shape[-1], dtype=dtype)

    def forward(q, k, v):
        return attention_ref(q, k, v, upcast=False, **opts)[0]

    ref = grads_ref(forward, (q, k, v), dout)
    same = grads_ref(forward, (q, k, v), dout, upcast=False)
    for name, got, r, s in zip(("dq", "dk", "dv"), grads(q, k, v, dout, **opts), ref, same, strict=True):
        assert got.dtype == dtype
        assert_grad_close(got, r, s, name)


@pytest.mark.parametrize("option", OPTIONS, ids=_ids(OPTIONS))
@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
def test_shapes_x_options_fp32(shape, option):
    check_dense(shape, torch.float32, option)


@pytest.mark.parametrize("dtype", DTYPES, ids=_ids(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
def test_shapes_x_dtypes_causal(shape, dtype):
    check_dense(shape, dtype, {"causal": True})


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=_ids([torch.float16, torch.bfloat16]))
@pytest.mark.parametrize("option", OPTIONS, ids=_ids(OPTIONS))
def test_options_x_lowp_dtypes(option, dtype):
    check_dense((2, 97, 130, 4, 2, 64, 64), dtype, option)


def test_backward_op_called_directly():
    """The backward op on the forward's out and lse equals autograd's gradients, bit for bit."""
    q, k, v = make_qkv((2, 70, 90, 4, 2, 48, 40), torch.bfloat16)
    dout = torch.randn(2, 70, 4, 40, dtype=torch.bfloat16)
    opts = dict(causal=True, softcap=3.0, window_size=(30, 2))
    out, lse = ascend_attn.flash_attention(q, k, v, return_lse=True, **opts)
    direct = ascend_attn.ops.flash_attention_backward(dout, q, k, v, out, lse, **opts)
    for got, want in zip(direct, dense_grads(q, k, v, dout, **opts), strict=True):
        assert torch.equal(got, want)


# ---- varlen ----

VARLEN_CASES = [
    # (q lengths, k lengths, heads, kv_heads, head_dim, head_dim_v, options): zero-length and length-1 sequences
    ([1, 0, 97, 17, 200], [1, 0, 97, 17, 200], 4, 2, 64, 64, {"causal": True}),
    ([5, 0, 60, 1], [70, 3, 60, 129], 4, 1, 40, 40, {"causal": True, "alibi": "batch"}),
    ([33, 150], [33, 140], 2, 2, 192, 128, {"window_size": (20, 5), "softcap": 3.0}),
    ([0, 0, 7], [4, 0, 7], 2, 1, 111, 111, {}),
    ([1, 1, 1], [1, 5, 0], 4, 4, 256, 256, {"alibi": "head"}),
]


def varlen_grads(q, k, v, cu_q, cu_k, max_q, max_k, dout, **opts):
    leaves = [x.detach().requires_grad_() for x in (q, k, v)]
    out, _ = ascend_attn.flash_attention_varlen(*leaves, cu_q, cu_k, max_q, max_k, return_lse=True, **opts)
    out.backward(dout)
    return [x.grad for x in leaves]


@pytest.mark.parametrize("dtype", DTYPES, ids=_ids(DTYPES))
@pytest.mark.parametrize("case", VARLEN_CASES, ids=[f"varlen{i}" for i in range(len(VARLEN_CASES))])
def test_varlen(case, dtype):
    q_lens, k_lens, heads, kv_heads, head_dim, head_dim_v, option = case
    q, k, v, cu_q, cu_k = make_varlen(q_lens, k_lens, heads, kv_heads, head_dim, head_dim_v, dtype)
    opts = make_options(option, len(q_lens), heads)
    dout = torch.randn(q.shape[0], heads, head_dim_v, dtype=dtype)

    def forward(q, k, v):
        return attention_varlen_ref(q, k, v, cu_q, cu_k, upcast=False, **opts)[0]

    ref = grads_ref(forward, (q, k, v), dout)
    same = grads_ref(forward, (q, k, v), dout, upcast=False)
    got = varlen_grads(q, k, v, cu_q, cu_k, max(q_lens), max(k_lens), dout, **opts)
    for name, g, r, s in zip(("dq", "dk", "dv"), got, ref, same, strict=True):
        assert_grad_close(g, r, s, name)


def test_varlen_equals_dense_per_sequence():
    q_lens, k_lens = [13, 140, 1], [20, 130, 9]
    q, k, v, cu_q, cu_k = make_varlen(q_lens, k_lens, 4, 2, 48, 48, torch.float32)
    dout = torch.randn(q.shape[0], 4, 48)
    got = varlen_grads(q, k, v, cu_q, cu_k, 140, 130, dout, causal=True)
    for b in range(3):
        qs, ks = slice(cu_q[b], cu_q[b + 1]), slice(cu_k[b], cu_k[b + 1])
        dense = dense_grads(q[None, qs], k[None, ks], v[None, ks], dout[None, qs], causal=True)
        for g, d, rows in zip(got, dense, (qs, ks, ks), strict=True):
            torch.testing.assert_close(g[rows], d[0], rtol=0, atol=1e-6)


# ---- finite differences (the CPU kernel takes no fp64, so no torch.autograd.gradcheck) ----


@pytest.mark.parametrize(
    "option", [{"causal": True}, {"softcap": 2.0, "window_size": (5, 1)}, {"alibi": "head"}], ids=str
)
def test_directional_finite_difference_fp32(option):
    """<grad, u> of f = sum(out * dout) equals (f(x + eps u) - f(x - eps u)) / 2 eps for a random direction u of
    (q, k, v), f evaluated by our own forward in fp32."""
    q, k, v = make_qkv((1, 20, 24, 4, 2, 16, 16), torch.float32)
    opts = make_options(option, 1, 4)
    dout = torch.randn(1, 20, 4, 16)
    grads = dense_grads(q, k, v, dout, **opts)
    directions = [torch.randn_like(x) for x in (q, k, v)]

    def f(t):
        shifted = [x + t * u for x, u in zip((q, k, v), directions, strict=True)]
        return (ascend_attn.flash_attention(*shifted, **opts)[0].double() * dout).sum().item()

    eps = 1e-2
    numeric = (f(eps) - f(-eps)) / (2 * eps)
    analytic = sum((g.double() * u).sum().item() for g, u in zip(grads, directions, strict=True))
    assert analytic == pytest.approx(numeric, rel=2e-3, abs=1e-3)


# ---- masks: what sees nothing gets nothing ----


def test_rows_without_keys_get_zero_gradients():
    """seqlen_q > seqlen_k with causal: the first rows see no key (out 0, lse -inf), so their dq is exactly 0; with
    a window, keys no query sees get dk = dv = 0 exactly."""
    q, k, v = make_qkv((1, 40, 10, 2, 1, 32, 32), torch.float32)
    dout = torch.randn(1, 40, 2, 32)
    dq, dk, dv = dense_grads(q, k, v, dout, causal=True)
    assert torch.equal(dq[:, :30], torch.zeros_like(dq[:, :30]))
    assert (dq[:, 30:].abs().sum(-1) > 0).all()
    q, k, v = make_qkv((1, 8, 300, 2, 2, 32, 32), torch.float32)
    dq, dk, dv = dense_grads(q, k, v, torch.randn(1, 8, 2, 32), window_size=(4, 0))
    seen = slice(300 - 8 - 4, 300)  # query i sits at 292 + i and sees 4 keys to its left
    for g in (dk, dv):
        assert torch.equal(g[:, : seen.start], torch.zeros_like(g[:, : seen.start]))
        assert (g[:, seen].abs().sum(-1) > 0).all()


# ---- autograd entry points ----


def test_raw_op_without_lse_recomputes_it():
    """torch.ops.ascend_attn.flash_attention run with return_lse=False: the backward recomputes lse and gives the
    same gradients."""
    q, k, v = make_qkv((2, 50, 60, 4, 2, 32, 32), torch.float32)
    dout = torch.randn(2, 50, 4, 32)
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out, lse = torch.ops.ascend_attn.flash_attention.default(*leaves, None, True, [-1, -1], 0.0, None, False)
    assert lse.numel() == 0
    out.backward(dout)
    for got, want in zip([x.grad for x in leaves], dense_grads(q, k, v, dout, causal=True), strict=True):
        assert torch.equal(got, want)
    vq, vk, vv, cu_q, cu_k = make_varlen([3, 40], [9, 40], 4, 2, 16, 16, torch.float32)
    vdout = torch.randn(43, 4, 16)
    leaves = [x.clone().requires_grad_() for x in (vq, vk, vv)]
    args = (cu_q, cu_k, 40, 40, None, True, [-1, -1], 0.0, None, False)
    torch.ops.ascend_attn.flash_attention_varlen.default(*leaves, *args)[0].backward(vdout)
    want = varlen_grads(vq, vk, vv, cu_q, cu_k, 40, 40, vdout, causal=True)
    for got, w in zip([x.grad for x in leaves], want, strict=True):
        assert torch.equal(got, w)


class _RecordingOps:
    """Stands in for torch.ops.ascend_attn in ascend_attn.autograd and records every op it runs, with its last
    argument (deterministic for the backward ops)."""

    def __init__(self, seen):
        self._seen = seen

    def __getattr__(self, name):
        op = getattr(torch.ops.ascend_attn, name)
        seen = self._seen

        class Recorder:
            @staticmethod
            def default(*args):
                seen.append((name, args[-1]))
                return op.default(*args)

        return Recorder


def test_wrappers_without_lse_run_no_second_forward(monkeypatch):
    """The Python entry points ask the op for lse whenever q, k or v require grad, so their backward runs the
    backward op alone; the caller still gets the empty lse it asked for."""
    q, k, v = (x.requires_grad_() for x in make_qkv((1, 9, 9, 2, 2, 8, 8), torch.float32))
    cu = torch.tensor([0, 4, 9], dtype=torch.int32)
    out, lse = ascend_attn.flash_attention(q, k, v, causal=True)
    varlen_out, varlen_lse = ascend_attn.flash_attention_varlen(q[0], k[0], v[0], cu, cu, 5, 5)
    assert lse.numel() == 0 and varlen_lse.numel() == 0
    outs = [out, varlen_out, ascend_attn.flash_attn_func(q, k, v)]
    outs.append(ascend_attn.flash_attn_varlen_func(q[0], k[0], v[0], cu, cu, 5, 5))
    seen = []
    monkeypatch.setattr(autograd_module, "_ops", _RecordingOps(seen))
    for o in outs:
        o.sum().backward()
    assert [name for name, _ in seen] == ["flash_attention_backward", "flash_attention_varlen_backward"] * 2


def test_flash_attn_api_gradients_equal_the_ops():
    q, k, v = make_qkv((2, 33, 33, 4, 1, 64, 64), torch.bfloat16)
    dout = torch.randn(2, 33, 4, 64, dtype=torch.bfloat16)
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out, lse, _ = ascend_attn.flash_attn_func(*leaves, causal=True, softcap=2.0, return_attn_probs=True)
    assert not lse.requires_grad  # lse is a non-differentiable output
    out.backward(dout)
    for got, want in zip([x.grad for x in leaves], dense_grads(q, k, v, dout, causal=True, softcap=2.0), strict=True):
        assert torch.equal(got, want)
    vq, vk, vv, cu_q, cu_k = make_varlen([17, 1, 0, 30], [17, 9, 4, 30], 4, 2, 40, 40, torch.float16)
    vdout = torch.randn(48, 4, 40, dtype=torch.float16)
    leaves = [x.clone().requires_grad_() for x in (vq, vk, vv)]
    ascend_attn.flash_attn_varlen_func(*leaves, cu_q, cu_k, 30, 30, window_size=(8, 8)).backward(vdout)
    want = varlen_grads(vq, vk, vv, cu_q, cu_k, 30, 30, vdout, window_size=(8, 8))
    for got, w in zip([x.grad for x in leaves], want, strict=True):
        assert torch.equal(got, w)


@pytest.mark.parametrize("flag", [False, True])
def test_deterministic_reaches_the_backward_op(monkeypatch, flag):
    seen = []
    monkeypatch.setattr(autograd_module, "_ops", _RecordingOps(seen))
    q, k, v = make_qkv((1, 9, 9, 2, 2, 8, 8), torch.float32)
    leaves = [x.requires_grad_() for x in (q, k, v)]
    ascend_attn.flash_attn_func(*leaves, deterministic=flag).sum().backward()
    cu = torch.tensor([0, 4, 9], dtype=torch.int32)
    ascend_attn.flash_attn_varlen_func(*(x[0] for x in leaves), cu, cu, 5, 5, deterministic=flag).sum().backward()
    ascend_attn.flash_attention(*leaves)[0].sum().backward()  # the op: torch's switch decides
    torch.use_deterministic_algorithms(True)
    try:
        ascend_attn.flash_attention(*leaves)[0].sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)
    assert [call for call in seen if call[0].endswith("_backward")] == [
        ("flash_attention_backward", flag),
        ("flash_attention_varlen_backward", flag),
        ("flash_attention_backward", False),
        ("flash_attention_backward", True),
    ]


def test_alibi_slopes_that_require_grad_raise():
    q, k, v = make_qkv((1, 5, 5, 2, 2, 8, 8), torch.float32)
    slopes = torch.rand(2, requires_grad=True)
    with pytest.raises(NotImplementedError, match="alibi_slopes requires grad"):
        ascend_attn.flash_attn_func(q.requires_grad_(), k, v, alibi_slopes=slopes)
    with pytest.raises(NotImplementedError, match="alibi_slopes requires grad"):
        ascend_attn.flash_attention(q, k, v, alibi_slopes=slopes)


# ---- determinism ----


def test_bit_identical_run_to_run_and_across_thread_counts():
    """Many items per (q head, q tile) and GQA, so dQ really is reduced across threads: every run, with 1 or 2
    threads, gives the same bits."""
    q, k, v = make_qkv((1, 700, 700, 4, 2, 64, 64), torch.bfloat16)
    dout = torch.randn(1, 700, 4, 64, dtype=torch.bfloat16)
    out, lse = ascend_attn.flash_attention(q, k, v, causal=True, return_lse=True)
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (2, 2, 1, 2):
            torch.set_num_threads(n)
            runs.append(ascend_attn.ops.flash_attention_backward(dout, q, k, v, out, lse, causal=True))
    finally:
        torch.set_num_threads(threads)
    for run in runs[1:]:
        for got, want in zip(run, runs[0], strict=True):
            assert torch.equal(got, want)


# ---- instruction sets ----


def test_each_isa(isa):
    for dtype in DTYPES:
        check_dense((2, 97, 130, 8, 2, 80, 64), dtype, {"causal": True, "softcap": 4.0, "alibi": "head"})
        check_dense((1, 200, 300, 2, 1, 128, 128), dtype, {"window_size": (50, 10)})
    q, k, v, cu_q, cu_k = make_varlen([3, 0, 70], [40, 5, 70], 4, 4, 40, 40, torch.float32)
    dout = torch.randn(73, 4, 40)

    def forward(q, k, v):
        return attention_varlen_ref(q, k, v, cu_q, cu_k, upcast=False, causal=True)[0]

    got = varlen_grads(q, k, v, cu_q, cu_k, 70, 70, dout, causal=True)
    ref, same = grads_ref(forward, (q, k, v), dout), grads_ref(forward, (q, k, v), dout, upcast=False)
    for g, r, s in zip(got, ref, same, strict=True):
        assert_grad_close(g, r, s)


# ---- torch.library / torch.compile ----


def test_opcheck_flash_attention_backward():
    q, k, v = make_qkv((2, 9, 12, 4, 2, 16, 8), torch.float32)
    out, lse = ascend_attn.flash_attention(q, k, v, causal=True, return_lse=True)
    dout = torch.randn_like(out)
    for deterministic in (False, True):
        torch.library.opcheck(
            torch.ops.ascend_attn.flash_attention_backward.default,
            (dout, q, k, v, out, lse, None, True, [-1, -1], 0.0, None, deterministic),
        )


def test_opcheck_flash_attention_varlen_backward():
    q, k, v, cu_q, cu_k = make_varlen([3, 9], [5, 9], 4, 2, 16, 16, torch.bfloat16)
    out, lse = ascend_attn.flash_attention_varlen(q, k, v, cu_q, cu_k, 9, 9, 0.25, True, return_lse=True)
    torch.library.opcheck(
        torch.ops.ascend_attn.flash_attention_varlen_backward.default,
        (torch.randn_like(out), q, k, v, out, lse, cu_q, cu_k, 9, 9, 0.25, True, [-1, -1], 0.0, None, False),
    )


def test_opcheck_forward_ops_with_grad():
    """opcheck's autograd checks on the forward ops with inputs that require grad (register_autograd)."""
    q, k, v = (x.requires_grad_() for x in make_qkv((1, 9, 12, 4, 2, 16, 8), torch.float32))
    for return_lse in (False, True):
        torch.library.opcheck(
            torch.ops.ascend_attn.flash_attention.default, (q, k, v, None, True, [-1, -1], 0.0, None, return_lse)
        )
    vq, vk, vv, cu_q, cu_k = make_varlen([3, 9], [5, 9], 4, 2, 16, 16, torch.float32)
    torch.library.opcheck(
        torch.ops.ascend_attn.flash_attention_varlen.default,
        (vq.requires_grad_(), vk.requires_grad_(), vv, cu_q, cu_k, 9, 9, None, True, [-1, -1], 0.0, None, True),
    )


def test_torch_compile_training_step():
    """A fullgraph-compiled step (flash-attn API, varlen, and the op without lse) gives eager's gradients."""
    q, k, v = make_qkv((2, 40, 40, 4, 2, 32, 32), torch.float32)
    vq, vk, vv, cu_q, cu_k = make_varlen([9, 31], [9, 31], 4, 2, 32, 32, torch.float32)

    def loss_fn(q, k, v, vq, vk, vv):
        dense = ascend_attn.flash_attn_func(q, k, v, causal=True, softcap=3.0)
        packed = ascend_attn.flash_attn_varlen_func(vq, vk, vv, cu_q, cu_k, 31, 31, causal=True)
        op_out, _ = ascend_attn.flash_attention(q, k, v, window_size=(6, 6))
        return (dense * dense).sum() + packed.square().mean() + op_out.sum()

    def step(fn):
        leaves = [x.clone().requires_grad_() for x in (q, k, v, vq, vk, vv)]
        loss = fn(*leaves)
        loss.backward()
        return loss.detach(), [x.grad for x in leaves]

    compiled = torch.compile(loss_fn, fullgraph=True)
    eager_loss, eager_grads = step(loss_fn)
    loss, grads = step(compiled)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=1e-6)
    for got, want in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


# ---- rejected inputs: each error names the argument, before anything is computed ----


def _backward_args():
    q, k, v = make_qkv((1, 8, 10, 4, 2, 16, 12), torch.float32)
    out, lse = ascend_attn.flash_attention(q, k, v, return_lse=True)
    return dict(dout=torch.randn_like(out), q=q, k=k, v=v, out=out, lse=lse)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: a.update(dout=a["dout"][..., :8]), r"dout must have the forward output's shape \[1, 8, 4, 12\]"),
        (lambda a: a.update(dout=a["dout"][None]), r"dout must have the forward output's shape"),
        (lambda a: a.update(dout=a["dout"].bfloat16()), "dout must have the same dtype as q"),
        (lambda a: a.update(out=a["out"][:, :7]), r"out must have the forward output's shape \[1, 8, 4, 12\]"),
        (lambda a: a.update(out=a["out"].half()), "out must have the same dtype as q"),
        (lambda a: a.update(lse=torch.empty(0)), r"lse is empty: .* return_lse=True .* \[batch, heads, seqlen_q\]"),
        (lambda a: a.update(lse=a["lse"].double()), "lse must be float32"),
        (lambda a: a.update(lse=a["lse"].transpose(1, 2)), r"lse must have shape \[batch, heads, seqlen_q\] = \[1, 4"),
        (lambda a: a.update(q=a["q"].half()), "q must be float32, float16 or bfloat16|k must have the same dtype"),
        (lambda a: a.update(k=a["k"][:, :, :1]), "v must have as many heads as k"),
    ],
    ids=["dout-shape", "dout-rank", "dout-dtype", "out-shape", "out-dtype", "lse-empty", "lse-dtype", "lse-shape",
         "q-dtype", "k-heads"],
)  # fmt: skip
def test_backward_rejects(change, match):
    args = _backward_args()
    change(args)
    with pytest.raises(RuntimeError, match=match):
        ascend_attn.ops.flash_attention_backward(**args)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: a.update(dout=a["dout"][:-1]), r"dout must have the forward output's shape \[8, 4, 16\]"),
        (lambda a: a.update(dout=a["dout"].half()), "dout must have the same dtype as q"),
        (lambda a: a.update(out=a["out"][:, :3]), r"out must have the forward output's shape \[8, 4, 16\]"),
        (lambda a: a.update(lse=torch.empty(0)), r"lse is empty: .* \[heads, total_q\] = \[4, 8\]"),
        (lambda a: a.update(lse=a["lse"].t()), r"lse must have shape \[heads, total_q\] = \[4, 8\]"),
        (lambda a: a.update(lse=a["lse"].half()), "lse must be float32"),
        (lambda a: a.update(cu_seqlens_k=a["cu_seqlens_k"].long()), "cu_seqlens_k must have dtype Int"),
        (lambda a: a.update(max_seqlen_q=2), "max_seqlen_q must be >= the longest sequence"),
    ],
    ids=["dout-shape", "dout-dtype", "out-shape", "lse-empty", "lse-shape", "lse-dtype", "cu-dtype", "max-seqlen"],
)
def test_varlen_backward_rejects(change, match):
    q, k, v, cu_q, cu_k = make_varlen([3, 5], [4, 6], 4, 2, 16, 16, torch.float32)
    out, lse = ascend_attn.flash_attention_varlen(q, k, v, cu_q, cu_k, 5, 6, return_lse=True)
    args = dict(dout=torch.randn_like(out), q=q, k=k, v=v, out=out, lse=lse, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k,
                max_seqlen_q=5, max_seqlen_k=6)  # fmt: skip
    change(args)
    with pytest.raises(RuntimeError, match=match):
        ascend_attn.ops.flash_attention_varlen_backward(**args)
