"""flash_attention / flash_attention_varlen on CPU against the fp32 reference, plus the flash-attn API and errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import assert_lse_close, assert_out_close
from reference import attention_ref, attention_varlen_ref, make_varlen

import ascend_attn

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# (batch, seqlen_q, seqlen_k, heads, kv_heads, head_dim, head_dim_v): awkward sizes, MHA / GQA / MQA,
# seqlen_q > seqlen_k (rows that see nothing under causal), and the MLA pair 192/128.
SHAPES = [
    (2, 17, 17, 4, 4, 40, 40),
    (1, 97, 97, 8, 2, 64, 64),
    (1, 1025, 1025, 2, 1, 128, 128),
    (2, 1, 97, 4, 1, 80, 80),
    (1, 97, 17, 4, 2, 256, 256),
    (1, 17, 1025, 2, 2, 192, 128),
    (1, 33, 40, 2, 1, 1, 1),
    (1, 20, 24, 2, 2, 512, 512),
]

# Mask / score options; alibi "head" = slopes [heads], "batch" = [batch, heads].
OPTIONS = [
    {},
    {"causal": True},
    {"window_size": (16, 3)},
    {"window_size": (-1, 0)},
    {"window_size": (0, 0)},
    {"causal": True, "softcap": 5.0},
    {"alibi": "head"},
    {"causal": True, "alibi": "batch", "softmax_scale": 0.3, "window_size": (7, -1)},
]


def _ids(values):
    return [str(v).replace(" ", "") for v in values]


def make_qkv(shape, dtype):
    batch, seqlen_q, seqlen_k, heads, kv_heads, head_dim, head_dim_v = shape
    q = torch.randn(batch, seqlen_q, heads, head_dim, dtype=dtype)
    k = torch.randn(batch, seqlen_k, kv_heads, head_dim, dtype=dtype)
    v = torch.randn(batch, seqlen_k, kv_heads, head_dim_v, dtype=dtype)
    return q, k, v


def make_options(option, batch, heads):
    opts = dict(option)
    alibi = opts.pop("alibi", None)
    if alibi == "head":
        opts["alibi_slopes"] = torch.rand(heads) * 0.5
    elif alibi == "batch":
        opts["alibi_slopes"] = torch.rand(batch, heads) * 0.5
    return opts


def check_dense(shape, dtype, option):
    q, k, v = make_qkv(shape, dtype)
    opts = make_options(option, shape[0], shape[3])
    out, lse = ascend_attn.flash_attention(q, k, v, return_lse=True, **opts)
    ref, ref_lse = attention_ref(q, k, v, **opts)
    ref_lowp = None if dtype == torch.float32 else attention_ref(q, k, v, upcast=False, **opts)[0]
    assert out.dtype == dtype
    assert_out_close(out, ref, ref_lowp)
    assert_lse_close(lse, ref_lse)


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


def test_rows_without_keys_are_zero():
    """seqlen_q > seqlen_k with causal: the first seqlen_q - seqlen_k rows see nothing -> 0 and lse -inf."""
    q, k, v = make_qkv((1, 40, 10, 2, 1, 32, 32), torch.float32)
    out, lse = ascend_attn.flash_attention(q, k, v, causal=True, return_lse=True)
    assert torch.equal(out[:, :30], torch.zeros_like(out[:, :30]))
    assert (lse[:, :, :30] == float("-inf")).all()
    assert torch.isfinite(lse[:, :, 30:]).all()


def test_lse_empty_unless_requested():
    q, k, v = make_qkv((1, 5, 5, 2, 2, 8, 8), torch.float32)
    out, lse = ascend_attn.flash_attention(q, k, v)
    assert lse.shape == (0,) and lse.dtype == torch.float32
    assert out.shape == (1, 5, 2, 8)


def test_non_contiguous_inputs():
    """Strided views (BNSD transposed to BSND, head slices, a non-unit last stride) give the same result."""
    base_q = torch.randn(2, 4, 50, 64)  # BNSD
    q = base_q.transpose(1, 2)  # BSND view
    k_big = torch.randn(2, 60, 6, 64)
    k = k_big[:, :50, 1:3]  # sliced heads
    v = torch.randn(2, 50, 64, 2).transpose(2, 3)  # last stride != 1
    out, _ = ascend_attn.flash_attention(q, k, v, causal=True)
    expected, _ = ascend_attn.flash_attention(q.contiguous(), k.contiguous(), v.contiguous(), causal=True)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert_out_close(out, attention_ref(q, k, v, causal=True)[0])


# ---- varlen ----

VARLEN_CASES = [
    # (q lengths, k lengths, heads, kv_heads, head_dim, head_dim_v, options)
    ([1, 0, 97, 17, 300], [1, 0, 97, 17, 300], 4, 2, 64, 64, {"causal": True}),
    ([5, 0, 60, 1], [70, 3, 60, 129], 4, 1, 80, 80, {"causal": True, "alibi": "batch"}),
    ([33, 200], [33, 150], 2, 2, 192, 128, {"window_size": (20, 5), "softcap": 3.0}),
    ([0, 0, 7], [4, 0, 7], 2, 1, 40, 40, {}),
    ([17, 1025], [17, 1025], 2, 2, 128, 128, {"alibi": "head"}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=_ids(DTYPES))
@pytest.mark.parametrize("case", VARLEN_CASES, ids=[f"varlen{i}" for i in range(len(VARLEN_CASES))])
def test_varlen(case, dtype):
    q_lens, k_lens, heads, kv_heads, head_dim, head_dim_v, option = case
    q, k, v, cu_q, cu_k = make_varlen(q_lens, k_lens, heads, kv_heads, head_dim, head_dim_v, dtype)
    opts = make_options(option, len(q_lens), heads)
    out, lse = ascend_attn.flash_attention_varlen(
        q, k, v, cu_q, cu_k, max(q_lens), max(k_lens), return_lse=True, **opts
    )
    ref, ref_lse = attention_varlen_ref(q, k, v, cu_q, cu_k, **opts)
    ref_lowp = None if dtype == torch.float32 else attention_varlen_ref(q, k, v, cu_q, cu_k, upcast=False, **opts)[0]
    assert out.shape == (q.shape[0], heads, head_dim_v) and lse.shape == (heads, q.shape[0])
    assert_out_close(out, ref, ref_lowp)
    assert_lse_close(lse, ref_lse)


def test_varlen_equals_dense_per_sequence():
    q_lens, k_lens = [13, 64, 1], [20, 64, 9]
    q, k, v, cu_q, cu_k = make_varlen(q_lens, k_lens, 4, 2, 48, 48, torch.float32)
    out, lse = ascend_attn.flash_attention_varlen(q, k, v, cu_q, cu_k, 64, 64, causal=True, return_lse=True)
    for b in range(3):
        qs, ks = slice(cu_q[b], cu_q[b + 1]), slice(cu_k[b], cu_k[b + 1])
        dense, dense_lse = ascend_attn.flash_attention(
            q[None, qs], k[None, ks], v[None, ks], causal=True, return_lse=True
        )
        torch.testing.assert_close(out[qs], dense[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(lse[:, qs], dense_lse[0], rtol=0, atol=1e-6)


# ---- instruction sets ----


def test_each_isa(isa):
    for dtype in DTYPES:
        check_dense((2, 97, 130, 8, 2, 80, 64), dtype, {"causal": True, "softcap": 4.0, "alibi": "head"})
        check_dense((1, 300, 300, 2, 1, 128, 128), dtype, {"window_size": (50, 10)})
    q, k, v, cu_q, cu_k = make_varlen([3, 0, 70], [40, 5, 70], 4, 4, 40, 40, torch.float32)
    out, _ = ascend_attn.flash_attention_varlen(q, k, v, cu_q, cu_k, 70, 70, causal=True)
    assert_out_close(out, attention_varlen_ref(q, k, v, cu_q, cu_k, causal=True)[0])


def test_unknown_isa_rejected(monkeypatch):
    monkeypatch.setenv("ASCEND_ATTN_CPU_ISA", "sse9")
    with pytest.raises(RuntimeError, match="ASCEND_ATTN_CPU_ISA must be one of avx512, avx2, portable"):
        ascend_attn.cpu_isa()


def test_cpu_scratch_bytes_counts_the_kept_scratch():
    # Scratch grows with head_dim and is kept between calls, never shrunk: the count must follow. A fresh process,
    # because earlier tests leave this one's threads holding scratch of every size they used.
    code = """
import torch, ascend_attn
def held(d):
    q = torch.randn(1, 64, 2, d)
    ascend_attn.flash_attention(q, q, q)
    return ascend_attn.ops.cpu_scratch_bytes()
before = ascend_attn.ops.cpu_scratch_bytes()
small, large, small_again = held(32), held(512), held(32)
assert before == 0 < small < large == small_again, (before, small, large, small_again)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- flash-attn compatible API ----


def test_flash_attn_func_return_conventions():
    q, k, v = make_qkv((2, 16, 16, 4, 2, 32, 32), torch.bfloat16)
    out = ascend_attn.flash_attn_func(q, k, v, causal=True, deterministic=True)
    assert isinstance(out, torch.Tensor) and out.shape == q.shape
    out2, lse, probs = ascend_attn.flash_attn_func(q, k, v, causal=True, return_attn_probs=True)
    assert probs is None and lse.shape == (2, 4, 16) and lse.dtype == torch.float32
    torch.testing.assert_close(out, out2, rtol=0, atol=0)


def test_flash_attn_varlen_func_return_conventions():
    q, k, v, cu_q, cu_k = make_varlen([5, 11], [5, 11], 4, 1, 32, 32, torch.float16)
    out = ascend_attn.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 11, 11, causal=True)
    assert out.shape == (16, 4, 32)
    out2, lse, probs = ascend_attn.flash_attn_varlen_func(
        q, k, v, cu_q, cu_k, 11, 11, causal=True, return_attn_probs=True
    )
    assert probs is None and lse.shape == (4, 16)
    torch.testing.assert_close(out, out2, rtol=0, atol=0)


def test_dropout_not_implemented():
    q, k, v = make_qkv((1, 4, 4, 2, 2, 8, 8), torch.float32)
    with pytest.raises(NotImplementedError, match="dropout_p=0.1"):
        ascend_attn.flash_attn_func(q, k, v, dropout_p=0.1)
    cu = torch.tensor([0, 4], dtype=torch.int32)
    with pytest.raises(NotImplementedError, match="dropout_p"):
        ascend_attn.flash_attn_varlen_func(q[0], k[0], v[0], cu, cu, 4, 4, dropout_p=0.5)


# ---- torch.library / torch.compile ----


def test_opcheck_flash_attention():
    q, k, v = make_qkv((2, 9, 12, 4, 2, 16, 8), torch.float32)
    for return_lse in (False, True):
        torch.library.opcheck(
            torch.ops.ascend_attn.flash_attention.default, (q, k, v, None, True, [-1, -1], 0.0, None, return_lse)
        )


def test_opcheck_flash_attention_varlen():
    q, k, v, cu_q, cu_k = make_varlen([3, 9], [5, 9], 4, 2, 16, 16, torch.bfloat16)
    for return_lse in (False, True):
        torch.library.opcheck(
            torch.ops.ascend_attn.flash_attention_varlen.default,
            (q, k, v, cu_q, cu_k, 9, 9, 0.25, True, [-1, -1], 0.0, None, return_lse),
        )


def test_torch_compile_fullgraph():
    q, k, v = make_qkv((2, 17, 17, 4, 2, 40, 40), torch.float32)
    vq, vk, vv, cu_q, cu_k = make_varlen([3, 14], [3, 14], 4, 2, 40, 40, torch.float32)

    @torch.compile(fullgraph=True)
    def step(q, k, v, vq, vk, vv):
        dense, lse, _ = ascend_attn.flash_attn_func(q, k, v, causal=True, return_attn_probs=True)
        packed = ascend_attn.flash_attn_varlen_func(vq, vk, vv, cu_q, cu_k, 14, 14, causal=True)
        return dense * 2, lse, packed + 1

    dense, lse, packed = step(q, k, v, vq, vk, vv)
    ref, ref_lse = attention_ref(q, k, v, causal=True)
    assert_out_close(dense / 2, ref)
    assert_lse_close(lse, ref_lse)
    assert_out_close(packed - 1, attention_varlen_ref(vq, vk, vv, cu_q, cu_k, causal=True)[0])


# ---- rejected inputs: each error names the argument ----


def _qkv(q_shape=(1, 8, 4, 16), k_shape=(1, 8, 2, 16), v_shape=(1, 8, 2, 16), dtype=torch.float32):
    return torch.randn(q_shape).to(dtype), torch.randn(k_shape).to(dtype), torch.randn(v_shape).to(dtype)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"q_shape": (8, 4, 16)}, "q must have 4 dimensions"),
        ({"k_shape": (8, 2, 16)}, "k must have 4 dimensions"),
        ({"v_shape": (1, 8, 2, 16, 1)}, "v must have 4 dimensions"),
        ({"k_shape": (1, 8, 3, 16), "v_shape": (1, 8, 3, 16)}, "Number of heads in key/value must divide"),
        ({"v_shape": (1, 8, 1, 16)}, "v must have as many heads as k"),
        ({"k_shape": (1, 8, 2, 32), "v_shape": (1, 8, 2, 32)}, "k head_dim must equal q head_dim"),
        (
            {"q_shape": (1, 8, 4, 513), "k_shape": (1, 8, 2, 513), "v_shape": (1, 8, 2, 16)},
            r"q head_dim must be in \[1, 512\]",
        ),
        ({"v_shape": (1, 8, 2, 600)}, r"v head_dim must be in \[1, 512\]"),
        ({"k_shape": (2, 8, 2, 16)}, r"k.size\(0\) must be 1"),
        ({"v_shape": (1, 9, 2, 16)}, r"v.size\(1\) must be 8"),
        ({"dtype": torch.float64}, "q must be float32, float16 or bfloat16"),
    ],
)
def test_rejects_bad_shapes_and_dtypes(kwargs, match):
    dtype = kwargs.pop("dtype", torch.float32)
    q, k, v = _qkv(**kwargs, dtype=dtype)
    with pytest.raises(RuntimeError, match=match):
        ascend_attn.flash_attention(q, k, v)


def test_rejects_dtype_mismatch():
    q, k, v = _qkv()
    with pytest.raises(RuntimeError, match="k must have the same dtype as q"):
        ascend_attn.flash_attention(q, k.half(), v)
    with pytest.raises(RuntimeError, match="v must have the same dtype as q"):
        ascend_attn.flash_attention(q, k, v.bfloat16())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"softcap": -1.0}, "softcap must be >= 0"),
        ({"window_size": (-2, 0)}, "window_size entries must be >= 0, or -1"),
        ({"window_size": (1, 2, 3)}, "window_size must be"),
        ({"softmax_scale": float("inf")}, "softmax_scale must be finite"),
        ({"alibi_slopes": torch.rand(3)}, r"alibi_slopes must have shape \[heads\]"),
        ({"alibi_slopes": torch.rand(2, 4)}, r"alibi_slopes must have shape \[heads\]"),
        ({"alibi_slopes": torch.rand(4, dtype=torch.float64)}, "alibi_slopes must be float32, got Double"),
    ],
)
def test_rejects_bad_options(kwargs, match):
    q, k, v = _qkv()
    with pytest.raises(RuntimeError, match=match):
        ascend_attn.flash_attention(q, k, v, **kwargs)


def _varlen_call(cu_q=(0, 3, 8), cu_k=(0, 3, 8), max_q=5, max_k=5, cu_dtype=torch.int32, total_q=8):
    q = torch.randn(total_q, 4, 16)
    k = torch.randn(8, 2, 16)
    v = torch.randn(8, 2, 16)
    cq, ck = torch.tensor(cu_q, dtype=cu_dtype), torch.tensor(cu_k, dtype=cu_dtype)
    return ascend_attn.flash_attention_varlen(q, k, v, cq, ck, max_q, max_k)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cu_dtype": torch.int64}, "cu_seqlens_q must have dtype Int"),
        ({"cu_q": (0, 5, 3, 8)}, "cu_seqlens_k must have as many entries as cu_seqlens_q"),
        ({"cu_q": (0, 5, 3), "cu_k": (0, 3, 8)}, "cu_seqlens_q must be non-decreasing"),
        ({"cu_q": (1, 3, 8)}, r"cu_seqlens_q\[0\] must be 0"),
        ({"cu_q": (0, 3, 7)}, r"cu_seqlens_q\[-1\] must equal the number of packed tokens \(8\)"),
        ({"cu_k": (0, 3, 9)}, r"cu_seqlens_k\[-1\] must equal the number of packed tokens \(8\)"),
        ({"max_q": 4}, "max_seqlen_q must be >= the longest sequence"),
        ({"max_k": 2}, "max_seqlen_k must be >= the longest sequence"),
        ({"cu_q": (0,), "cu_k": (0,), "total_q": 0}, "cu_seqlens_q must have batch \\+ 1 >= 2 entries"),
    ],
)
def test_rejects_bad_cu_seqlens(kwargs, match):
    with pytest.raises(RuntimeError, match=match):
        _varlen_call(**kwargs)


def test_rejects_varlen_rank():
    q = torch.randn(1, 8, 4, 16)
    cu = torch.tensor([0, 8], dtype=torch.int32)
    with pytest.raises(RuntimeError, match="q must have 3 dimensions"):
        ascend_attn.flash_attention_varlen(q, q[0], q[0], cu, cu, 8, 8)


def test_rejects_varlen_alibi_batch_shape():
    q = torch.randn(8, 4, 16)
    cu = torch.tensor([0, 3, 8], dtype=torch.int32)
    with pytest.raises(
        RuntimeError, match=r"alibi_slopes must have shape \[heads\] = \[4\] or \[batch, heads\] = \[2, 4\]"
    ):
        ascend_attn.flash_attention_varlen(q, q, q, cu, cu, 5, 5, alibi_slopes=torch.rand(3, 4))


# ---- sizes past int32 and positions past float precision: a named error or exact, never a wrap-around ----


def _wide(*shape):
    """A tensor of this shape with a contiguous last dim whose rows all alias one (no memory for 2^31 rows)."""
    return torch.zeros(shape[-1]).expand(*shape)


@pytest.mark.parametrize(
    "q, k, match",
    [
        (_wide(1, 1, 1, 8), _wide(1, 2**31, 1, 8), r"k's seqlen_k \(dim 1\) must be at most 2\^31 - 1"),
        (_wide(1, 1, 1, 8), _wide(1, 2**32 + 5, 1, 8), r"got 4294967301"),
        (_wide(1, 2**31, 1, 8), _wide(1, 4, 1, 8), r"q's seqlen_q \(dim 1\) must be at most 2\^31 - 1"),
        (_wide(2**31, 1, 1, 8), _wide(2**31, 4, 1, 8), r"q's batch size \(dim 0\) must be at most 2\^31 - 1"),
        (_wide(1, 1, 2**31, 8), _wide(1, 4, 1, 8), r"q's number of heads must be at most 2\^31 - 1"),
    ],
    ids=["seqlen_k", "seqlen_k-wraps-to-5", "seqlen_q", "batch", "heads"],
)
def test_sizes_past_int32_are_named_errors(q, k, match):
    with pytest.raises(RuntimeError, match=match):
        ascend_attn.flash_attention(q, k, k)


def test_varlen_token_count_past_int32_is_a_named_error():
    """cu_seqlens that wrapped when cast to int32: the cause is named, not a mismatch of the last entry."""
    q = _wide(2**31 + 4, 1, 8)
    cu = torch.tensor([0, 2**31 - 1, 2**31 + 4]).to(torch.int32)  # the cast wraps the last entry
    with pytest.raises(RuntimeError, match=r"q's number of packed tokens \(dim 0; cu_seqlens_q is int32\)"):
        ascend_attn.flash_attention_varlen(q, q, q, cu, cu, 2**31, 2**31)


def test_wrapped_cu_seqlens_entry_names_the_overflow():
    q = torch.randn(8, 2, 16)
    cu = torch.tensor([0, 5, -3], dtype=torch.int32)
    with pytest.raises(RuntimeError, match=r"cu_seqlens_q\[2\] = -3 is negative: .*overflow"):
        ascend_attn.flash_attention_varlen(q, q, q, cu, torch.tensor([0, 3, 8], dtype=torch.int32), 5, 5)


def test_window_wider_than_int32_is_unbounded():
    q, k, v = make_qkv((2, 9, 40, 4, 2, 16, 16), torch.float32)
    for causal in (False, True):
        unbounded = ascend_attn.flash_attention(q, k, v, causal=causal)[0]
        for window in [(2**31 + 3, 2**32 + 1), (2**31 - 1, -1), (2**40, 2**40)]:
            out = ascend_attn.flash_attention(q, k, v, causal=causal, window_size=window)[0]
            assert torch.equal(out, unbounded), (causal, window)
    vq, vk, vv, cu_q, cu_k = make_varlen([3, 9], [30, 9], 4, 2, 16, 16, torch.float32)
    unbounded = ascend_attn.flash_attention_varlen(vq, vk, vv, cu_q, cu_k, 9, 30)[0]
    wide = ascend_attn.flash_attention_varlen(vq, vk, vv, cu_q, cu_k, 9, 30, window_size=(2**31 + 1, 2**31))[0]
    assert torch.equal(wide, unbounded)


def test_key_positions_past_2_pow_24_are_exact():
    """Positions above 2^24 are not representable as floats: the visible keys of a window there must still be exact
    (a float position would round 2^24 + 1 down and 2^24 + 3 up, adding a key and reading past the last one)."""
    seqlen_k = 2**24 + 3
    k = torch.zeros(1, seqlen_k, 1, 1)  # equal scores: the output is the mean of the visible values
    v = torch.zeros(1, seqlen_k, 1, 1)
    v[0, -4:, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    out, lse = ascend_attn.flash_attention(
        torch.ones(1, 1, 1, 1), k, v, causal=True, window_size=(1, 0), return_lse=True
    )
    assert out.item() == 3.5 and lse.item() == pytest.approx(torch.tensor(2.0).log().item())


# ---- flash_attn_varlen_func over a paged cache (block_table) ----


def _paged_varlen(q_lens, k_lens, block_size, dtype=torch.float32):
    """Packed q, the same keys packed and in a shuffled paged cache, cu_seqlens and the block table."""
    from reference import make_paged

    kc, vc, table, _ = make_paged(k_lens, block_size, 2, 32, 32, dtype)
    q = torch.randn(sum(q_lens), 4, 32).to(dtype)
    cu_q = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    cu_k = torch.tensor([0, *torch.tensor(k_lens).cumsum(0).tolist()], dtype=torch.int32)
    k = torch.cat([torch.cat([kc[int(b)] for b in table[s]])[:n] for s, n in enumerate(k_lens)])
    v = torch.cat([torch.cat([vc[int(b)] for b in table[s]])[:n] for s, n in enumerate(k_lens)])
    return q, k, v, kc, vc, table, cu_q, cu_k


@pytest.mark.parametrize("options", [{"causal": True}, {}, {"window_size": (4, 1), "softcap": 3.0}], ids=str)
def test_varlen_with_block_table_equals_packed_keys(options):
    q_lens, k_lens = [3, 7, 1, 9], [20, 7, 33, 4]  # the last sequence has more queries than keys
    q, k, v, kc, vc, table, cu_q, cu_k = _paged_varlen(q_lens, k_lens, 8)
    paged = ascend_attn.flash_attn_varlen_func(
        q, kc, vc, cu_q, cu_k, 9, 33, return_attn_probs=True, block_table=table, **options
    )
    packed = ascend_attn.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 9, 33, return_attn_probs=True, **options)
    assert paged[2] is None
    torch.testing.assert_close(paged[0], packed[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(paged[1], packed[1], rtol=0, atol=1e-6)
    ref = attention_varlen_ref(q, k, v, cu_q, cu_k, **options)[0]
    assert_out_close(
        ascend_attn.flash_attn_varlen_func(q, kc, vc, cu_q, cu_k, 9, 33, block_table=table, **options), ref
    )


def test_varlen_block_table_positional_order():
    """block_table is flash-attn's 16th positional argument, after return_attn_probs."""
    q, k, v, kc, vc, table, cu_q, cu_k = _paged_varlen([2, 3], [5, 9], 4)
    out = ascend_attn.flash_attn_varlen_func(q, kc, vc, cu_q, cu_k, 3, 9, 0.0, None, True, (-1, -1), 0.0, None, False,
                                             False, table)  # fmt: skip
    assert_out_close(out, attention_varlen_ref(q, k, v, cu_q, cu_k, causal=True)[0])


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: a.update(block_table=a["block_table"].long()), "block_table must be an int32 tensor"),
        (lambda a: a.update(block_table=a["block_table"][:1]), r"block_table must have one row per sequence \(2\)"),
        (lambda a: a["block_table"].__setitem__((1, 0), 99), r"block_tables?\[1\]\[0\] = 99 is out of range"),
        (lambda a: a.update(cu_seqlens_k=a["cu_seqlens_k"].long()), "cu_seqlens_k must be an int32 tensor"),
        (lambda a: a.update(cu_seqlens_k=torch.tensor([0, 5, 4], dtype=torch.int32)), "cu_seqlens_k must be non-dec"),
        (lambda a: a.update(max_seqlen_k=8), r"max_seqlen_k must be >= the longest sequence \(9\)"),
        (
            lambda a: a.update(cu_seqlens_k=torch.tensor([0, 5, 30], dtype=torch.int32), max_seqlen_k=25),
            r"cu_seqlens_k: sequence 1 has 25 keys, more than its block_table row holds \(4 blocks of 4\)",
        ),
        (lambda a: a.update(k=a["k"][0]), "k must be a paged cache"),
    ],
    ids=["table-dtype", "table-rows", "table-range", "cu-dtype", "cu-order", "max-seqlen", "capacity", "k-rank"],
)
def test_varlen_with_block_table_rejects(change, match):
    q, _, _, kc, vc, table, cu_q, cu_k = _paged_varlen([2, 3], [5, 9], 4)
    args = dict(
        q=q, k=kc, v=vc, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, max_seqlen_q=3, max_seqlen_k=9, block_table=table
    )
    change(args)
    with pytest.raises(RuntimeError, match=match):
        ascend_attn.flash_attn_varlen_func(**args)
