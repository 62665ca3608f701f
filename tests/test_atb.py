"""ascend_attn.atb (torch_atb-style Operation API) against the references in tests/reference.py."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_out_close
from reference import attention_varlen_ref, make_varlen, paged_attention_ref, visible_mask

from ascend_attn import atb

SA = atb.SelfAttentionParam
PA = atb.PagedAttentionParam
RC = atb.ReshapeAndCacheParam
M = SA.MaskType

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
DTYPE_IDS = ["fp32", "fp16", "bf16"]


def atb_mask(n: int, window: int = 0, value: float = -10000.0, dtype=torch.float32) -> torch.Tensor:
    """ATB's full mask: ``value`` where masked (``j > i``, and with a window W also ``j <= i - W``), else 0."""
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    masked = j > i
    if window:
        masked |= j <= i - window
    return torch.zeros(n, n, dtype=dtype).masked_fill(masked, value)


def refs(ref_fn, tensors: list[torch.Tensor], dtype, *args, **options):
    """``(fp32 reference, same-dtype reference or None)``: ref_fn gets ``tensors`` widened, then as they are."""
    ref, _ = ref_fn(*[t.float() for t in tensors], *args, **options)
    lowp = None if dtype == torch.float32 else ref_fn(*tensors, *args, upcast=False, **options)[0]
    return ref, lowp


def test_enums_and_defaults_match_atb():
    assert SA.CalcType.PA_ENCODER == 3 and SA.CalcType.PREFIX_ENCODER == 4
    assert (M.MASK_TYPE_NORM, M.MASK_TYPE_NORM_COMPRESS, M.MASK_TYPE_SLIDING_WINDOW_NORM) == (1, 3, 7)
    assert (M.MASK_TYPE_SLIDING_WINDOW_COMPRESS, M.MASK_TYPE_CAUSAL_MASK) == (8, 9)
    assert SA.QuantType.TYPE_QUANT_QKV_ONLINE == 3 and SA.KvCacheCfg.K_BYPASS_V_BYPASS == 1
    assert SA.KernelType.KERNELTYPE_HIGH_PRECISION == 1 and SA.CacheType.CACHE_TYPE_SWA == 1
    assert PA.MaskType.MASK_TYPE_SPEC == 3 and PA.CalcType.CALC_TYPE_SPEC == 1
    assert RC.KvCacheCfg.K_CACHE_V_BYPASS == 1 and atb.InputLayout.TYPE_BNSD == 1
    p = SA()
    assert (p.qk_scale, p.q_scale, p.calc_type, p.mask_type, p.kvcache_cfg, p.window_size) == (
        1.0, 1.0, SA.CalcType.UNDEFINED, M.MASK_TYPE_UNDEFINED, SA.KvCacheCfg.K_CACHE_V_CACHE, 0
    )  # fmt: skip
    assert PA().q_scale == 0.0 and RC().kv_cache_cfg == RC.KvCacheCfg.K_CACHE_V_CACHE


def test_window_size_counts_the_current_token():
    """ATB's window of W keys (its mask definition) is window_size=(W - 1, 0) in ascend_attn's terms."""
    for w in (1, 4, 9):
        assert torch.equal(atb_mask(12, window=w) == 0, visible_mask(12, 12, causal=True, window_size=(w - 1, 0)))


# (name, mask_type, is_triu_mask, window_size, mask tensor as (size, window, masking value) or None, reference options);
# size None = the longest sequence (full masks), a number = a compressed tile whose values the ops do not read.
PA_ENCODER_MASKS = [
    ("none", M.MASK_TYPE_UNDEFINED, 0, 0, None, {}),
    ("norm", M.MASK_TYPE_NORM, 0, 0, (None, 0, -10000.0), {"causal": True}),
    ("norm_inf", M.MASK_TYPE_NORM, 0, 0, (None, 0, -math.inf), {"causal": True}),
    ("norm_triu", M.MASK_TYPE_NORM, 1, 0, (None, 0, 1.0), {"causal": True}),
    ("norm_compress", M.MASK_TYPE_NORM_COMPRESS, 1, 0, (128, 0, -10000.0), {"causal": True}),
    ("causal_mask", M.MASK_TYPE_CAUSAL_MASK, 0, 0, None, {"causal": True}),
    ("swa_norm", M.MASK_TYPE_SLIDING_WINDOW_NORM, 0, 5, (None, 5, -10000.0), {"window_size": (4, 0)}),
    ("swa_compress", M.MASK_TYPE_SLIDING_WINDOW_COMPRESS, 0, 1, (512, 0, -10000.0), {"window_size": (0, 0)}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", PA_ENCODER_MASKS, ids=[c[0] for c in PA_ENCODER_MASKS])
def test_pa_encoder(case, dtype):
    _, mask_type, triu, window, mask_spec, options = case
    lens, heads, kv_heads, d = [1, 17, 40], 4, 2, 40
    q, k, v, cu, _ = make_varlen(lens, lens, heads, kv_heads, d, d, dtype)
    param = SA(head_num=heads, kv_head_num=kv_heads, qk_scale=0.3, q_scale=0.5, calc_type=SA.CalcType.PA_ENCODER,
               mask_type=mask_type, is_triu_mask=triu, window_size=window)  # fmt: skip
    seq_len = torch.tensor(lens, dtype=torch.int32)
    if mask_spec:
        size, mask_window, value = mask_spec
        mask = [atb_mask(size or max(lens), mask_window, value, dtype)]
    else:
        mask = []
    (out,) = atb.Operation(param).forward([q, k, v, *mask, seq_len])
    ref, lowp = refs(attention_varlen_ref, [q, k, v], dtype, cu, cu, softmax_scale=0.15, **options)
    assert_out_close(out, ref, lowp)


def test_pa_encoder_hidden_layout_and_separate_kv_lengths():
    """2-D ``[nTokens, hidden]`` inputs and a ``[2, batch]`` seqLen (no mask: each query sees its sequence's keys)."""
    q_lens, k_lens, heads, d = [3, 0, 5], [7, 4, 5], 6, 24
    q, k, v, cu_q, cu_k = make_varlen(q_lens, k_lens, heads, heads, d, d, torch.float32)
    param = SA(head_num=heads, qk_scale=d**-0.5, calc_type=SA.CalcType.PA_ENCODER)
    seq_len = torch.tensor([q_lens, k_lens], dtype=torch.int32)
    (out,) = atb.Operation(param).forward([q.flatten(1), k.flatten(1), v.flatten(1), seq_len])
    ref, _ = attention_varlen_ref(q, k, v, cu_q, cu_k, softmax_scale=d**-0.5)
    assert out.shape == (sum(q_lens), heads * d)
    assert_out_close(out.view(-1, heads, d), ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("mask_type, window", [(M.MASK_TYPE_CAUSAL_MASK, 0), (M.MASK_TYPE_SLIDING_WINDOW_COMPRESS, 16)])
def test_pa_encoder_simulator(dtype, mask_type, window):
    lens, heads, kv_heads, d = [37, 70], 4, 2, 64
    q, k, v, cu, _ = make_varlen(lens, lens, heads, kv_heads, d, d, dtype)
    param = SA(head_num=heads, kv_head_num=kv_heads, qk_scale=d**-0.5, calc_type=SA.CalcType.PA_ENCODER,
               mask_type=mask_type, window_size=window)  # fmt: skip
    mask = [atb_mask(512, dtype=dtype)] if window else []
    (out,) = atb.Operation(param, simulator=True).forward([q, k, v, *mask, torch.tensor(lens, dtype=torch.int32)])
    options = {"causal": True, "window_size": (window - 1, 0) if window else (-1, -1)}
    ref, lowp = refs(attention_varlen_ref, [q, k, v], dtype, cu, cu, softmax_scale=d**-0.5, **options)
    assert_out_close(out, ref, lowp)


def paged_kv(kv_lens, block_size, kv_heads, d, dtype):
    """Paged caches holding random K/V for each sequence in shuffled blocks; unused slots are NaN, table padding -1."""
    per_seq = [math.ceil(n / block_size) for n in kv_lens]
    num_blocks = sum(per_seq) + 2
    blocks = torch.randperm(num_blocks)
    key_cache = torch.full((num_blocks, block_size, kv_heads, d), math.nan, dtype=dtype)
    value_cache = torch.full_like(key_cache, math.nan)
    block_tables = torch.full((len(kv_lens), max(per_seq)), -1, dtype=torch.int32)
    start = 0
    for s, (n, nb) in enumerate(zip(kv_lens, per_seq, strict=True)):
        block_tables[s, :nb] = blocks[start : start + nb]
        start += nb
        t = torch.arange(n)
        slots = block_tables[s, t // block_size].long() * block_size + t % block_size
        key_cache.view(-1, kv_heads, d)[slots] = torch.randn(n, kv_heads, d, dtype=dtype)
        value_cache.view(-1, kv_heads, d)[slots] = torch.randn(n, kv_heads, d, dtype=dtype)
    return key_cache, value_cache, block_tables


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mask_type", [M.MASK_TYPE_NORM_COMPRESS, M.MASK_TYPE_CAUSAL_MASK], ids=["compress", "causal"])
def test_prefix_encoder(dtype, mask_type):
    q_lens, kv_lens, heads, kv_heads, d = [4, 9, 1], [20, 9, 33], 4, 2, 40
    key_cache, value_cache, block_tables = paged_kv(kv_lens, 8, kv_heads, d, dtype)
    q = torch.randn(sum(q_lens), heads, d, dtype=dtype)
    param = SA(head_num=heads, kv_head_num=kv_heads, qk_scale=d**-0.5, calc_type=SA.CalcType.PREFIX_ENCODER,
               mask_type=mask_type, is_triu_mask=1, kernel_type=SA.KernelType.KERNELTYPE_HIGH_PRECISION)  # fmt: skip
    mask = [atb_mask(128, value=1.0, dtype=dtype)] if mask_type == M.MASK_TYPE_NORM_COMPRESS else []
    seq_len, kv_seq_len = torch.tensor(q_lens, dtype=torch.int32), torch.tensor(kv_lens, dtype=torch.int32)
    (out,) = atb.Operation(param).forward([q, key_cache, value_cache, block_tables, *mask, seq_len, kv_seq_len])
    cu_q = torch.tensor([0, 4, 13, 14], dtype=torch.int32)
    ref, lowp = refs(paged_attention_ref, [q, key_cache, value_cache], dtype, block_tables, kv_seq_len,
                     cu_seqlens_q=cu_q, softmax_scale=d**-0.5)  # fmt: skip
    assert_out_close(out, ref, lowp)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("q_scale", [0.0, 0.5], ids=["q_scale_off", "q_scale_half"])
def test_paged_attention_decode(dtype, q_scale):
    context_lens, heads, kv_heads, d = [1, 13, 40], 8, 2, 40
    key_cache, value_cache, block_tables = paged_kv(context_lens, 16, kv_heads, d, dtype)
    q = torch.randn(len(context_lens), heads, d, dtype=dtype)
    param = PA(head_num=heads, kv_head_num=kv_heads, qk_scale=d**-0.5, q_scale=q_scale)
    ctx = torch.tensor(context_lens, dtype=torch.int32)
    (out,) = atb.Operation(param).forward([q, key_cache, value_cache, block_tables, ctx])
    scale = d**-0.5 * (q_scale or 1.0)
    ref, lowp = refs(paged_attention_ref, [q, key_cache, value_cache], dtype, block_tables, ctx, softmax_scale=scale)
    assert_out_close(out, ref, lowp)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_reshape_and_cache_in_place(dtype):
    key, value = torch.randn(6, 2, 16, dtype=dtype), torch.randn(6, 2, 8, dtype=dtype)
    key_cache = torch.full((4, 4, 2, 16), -7.0, dtype=dtype)
    value_cache = torch.full((4, 4, 2, 8), -7.0, dtype=dtype)
    slots = torch.tensor([5, -1, 0, 15, -1, 9], dtype=torch.int32)
    expect_k, expect_v = key_cache.clone(), value_cache.clone()
    for t, slot in enumerate(slots.tolist()):
        if slot >= 0:
            expect_k[slot // 4, slot % 4] = key[t]
            expect_v[slot // 4, slot % 4] = value[t]
    op = atb.Operation(RC())
    out = op.forward([key, value, key_cache, value_cache, slots])
    assert out[0] is key_cache and out[1] is value_cache
    assert torch.equal(key_cache, expect_k) and torch.equal(value_cache, expect_v)
    assert (op.name, op.input_num, op.output_num) == ("ReshapeAndCacheOperation", 5, 2)


def sa(**fields):
    return SA(**{"head_num": 4, "kv_head_num": 2, "calc_type": SA.CalcType.PA_ENCODER, **fields})


UNSUPPORTED = [
    (sa(quant_type=SA.QuantType.TYPE_QUANT_QKV_OFFLINE), "quant_type=TYPE_QUANT_QKV_OFFLINE"),
    (sa(out_data_type=atb.AclDataType.ACL_BF16), "out_data_type=ACL_BF16"),
    (sa(clamp_type=SA.ClampType.CLAMP_TYPE_MIN_MAX, clamp_max=5.0), "clamp_type=CLAMP_TYPE_MIN_MAX"),
    (sa(scale_type=SA.ScaleType.SCALE_TYPE_LOGN), "scale_type=SCALE_TYPE_LOGN"),
    (sa(input_layout=atb.InputLayout.TYPE_BNSD), "input_layout=TYPE_BNSD"),
    (sa(cache_type=SA.CacheType.CACHE_TYPE_SWA), "cache_type=CACHE_TYPE_SWA"),
    (sa(batch_run_status_enable=True), "batch_run_status_enable=True"),
    (sa(mla_v_head_size=128), "mla_v_head_size=128"),
    (sa(calc_type=SA.CalcType.UNDEFINED), "calc_type=UNDEFINED"),
    (sa(calc_type=SA.CalcType.ENCODER), "calc_type=ENCODER"),
    (sa(calc_type=SA.CalcType.DECODER), "calc_type=DECODER"),
    (sa(mask_type=M.MASK_TYPE_ALIBI), "mask_type=MASK_TYPE_ALIBI .*ALiBi"),
    (sa(mask_type=M.MASK_TYPE_ALIBI_COMPRESS), "mask_type=MASK_TYPE_ALIBI_COMPRESS "),
    (sa(mask_type=M.MASK_TYPE_ALIBI_COMPRESS_SQRT), "mask_type=MASK_TYPE_ALIBI_COMPRESS_SQRT"),
    (sa(mask_type=M.MASK_TYPE_ALIBI_COMPRESS_LEFT_ALIGN), "mask_type=MASK_TYPE_ALIBI_COMPRESS_LEFT_ALIGN"),
    (sa(calc_type=SA.CalcType.PREFIX_ENCODER, mask_type=M.MASK_TYPE_NORM), "mask_type=MASK_TYPE_NORM "),
    (sa(calc_type=SA.CalcType.PREFIX_ENCODER), "mask_type=MASK_TYPE_UNDEFINED"),
    (PA(head_num=4, calc_type=PA.CalcType.CALC_TYPE_SPEC), "calc_type=CALC_TYPE_SPEC"),
    (PA(head_num=4, mask_type=PA.MaskType.MASK_TYPE_NORM), "mask_type=MASK_TYPE_NORM"),
    (PA(head_num=4, mask_type=PA.MaskType.MASK_TYPE_ALIBI), "mask_type=MASK_TYPE_ALIBI"),
    (PA(head_num=4, mask_type=PA.MaskType.MASK_TYPE_SPEC), "mask_type=MASK_TYPE_SPEC"),
    (PA(head_num=4, quant_type=PA.QuantType.TYPE_DEQUANT_FUSION), "quant_type=TYPE_DEQUANT_FUSION"),
    (PA(head_num=4, out_data_type=atb.AclDataType.ACL_FLOAT16), "out_data_type=ACL_FLOAT16"),
    (PA(head_num=4, has_quant_offset=True), "has_quant_offset=True"),
    (PA(head_num=4, compress_type=PA.CompressType.COMPRESS_TYPE_KVHEAD), "compress_type=COMPRESS_TYPE_KVHEAD"),
    (PA(head_num=4, scale_type=PA.ScaleType.SCALE_TYPE_LOGN), "scale_type=SCALE_TYPE_LOGN"),
    (PA(head_num=4, input_layout=atb.InputLayout.TYPE_BNSD), "input_layout=TYPE_BNSD"),
    (PA(head_num=4, batch_run_status_enable=True), "batch_run_status_enable=True"),
    (PA(head_num=1, mla_v_head_size=512), "mla_v_head_size=512"),
    (RC(compress_type=RC.CompressType.COMPRESS_TYPE_KVHEAD), "compress_type=COMPRESS_TYPE_KVHEAD"),
    (RC(kv_cache_cfg=RC.KvCacheCfg.K_CACHE_V_BYPASS), "kv_cache_cfg=K_CACHE_V_BYPASS"),
    (RC(kv_cache_cfg=RC.KvCacheCfg.K_CACHE_V_CACHE_NZ), "kv_cache_cfg=K_CACHE_V_CACHE_NZ"),
]


@pytest.mark.parametrize("param, match", UNSUPPORTED, ids=[m.split()[0].split("=")[0] for _, m in UNSUPPORTED])
def test_unsupported_configurations_name_the_field(param, match):
    with pytest.raises(NotImplementedError, match=match):
        atb.Operation(param)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_paged_operations_on_the_simulator(dtype):
    """PagedAttention decode, SelfAttention PREFIX_ENCODER and ReshapeAndCache run their Ascend C kernels with
    simulator=True and give what the CPU kernels give (within the tolerance policy)."""
    heads, kv_heads, d, block = 4, 2, 32, 16
    context_lens, q_lens = [5, 40], [2, 7]
    key_cache, value_cache, block_tables = paged_kv(context_lens, block, kv_heads, d, dtype)
    # ReshapeAndCache: one new token per sequence, written at its next position.
    key, value = torch.randn(2, kv_heads, d, dtype=dtype), torch.randn(2, kv_heads, d, dtype=dtype)
    slots = torch.tensor([int(block_tables[s, n // block]) * block + n % block for s, n in enumerate([4, 39])])
    expect_k, expect_v = key_cache.clone(), value_cache.clone()
    atb.Operation(RC()).forward([key, value, expect_k, expect_v, slots])
    atb.Operation(RC(), simulator=True).forward([key, value, key_cache, value_cache, slots])
    assert torch.equal(key_cache.nan_to_num(7.0), expect_k.nan_to_num(7.0))
    assert torch.equal(value_cache.nan_to_num(7.0), expect_v.nan_to_num(7.0))

    ctx = torch.tensor(context_lens, dtype=torch.int32)
    decode = PA(head_num=heads, kv_head_num=kv_heads, qk_scale=d**-0.5)
    q = torch.randn(2, heads, d, dtype=dtype)
    (out,) = atb.Operation(decode, simulator=True).forward([q, key_cache, value_cache, block_tables, ctx])
    ref, lowp = refs(paged_attention_ref, [q, key_cache, value_cache], dtype, block_tables, ctx, softmax_scale=d**-0.5)
    assert_out_close(out, ref, lowp)

    prefix = sa(qk_scale=d**-0.5, calc_type=SA.CalcType.PREFIX_ENCODER, mask_type=M.MASK_TYPE_CAUSAL_MASK)
    q = torch.randn(sum(q_lens), heads, d, dtype=dtype)
    seq_len = torch.tensor(q_lens, dtype=torch.int32)
    (out,) = atb.Operation(prefix, simulator=True).forward([q, key_cache, value_cache, block_tables, seq_len, ctx])
    cu_q = torch.tensor([0, 2, 9], dtype=torch.int32)
    ref, lowp = refs(paged_attention_ref, [q, key_cache, value_cache], dtype, block_tables, ctx, cu_seqlens_q=cu_q,
                     softmax_scale=d**-0.5)  # fmt: skip
    assert_out_close(out, ref, lowp)


def test_context_lengths_past_int32_raise_instead_of_wrapping():
    decode = atb.Operation(PA(head_num=4, kv_head_num=2))
    key_cache, value_cache, block_tables = paged_kv([5, 9], 4, 2, 16, torch.float32)
    lens = torch.tensor([5, 2**32 + 9])  # int64: converting it to int32 would give 9
    with pytest.raises(ValueError, match=r"contextLens has a length of 4294967305, more than ATB's host int32"):
        decode.forward([torch.randn(2, 4, 16), key_cache, value_cache, block_tables, lens])


def pa_encoder_inputs(q_lens, k_lens=None, mask=None):
    q, k, v, _, _ = make_varlen(q_lens, k_lens or q_lens, 4, 2, 16, 16, torch.float32)
    lens = torch.tensor([q_lens, k_lens] if k_lens else q_lens, dtype=torch.int32)
    return [q, k, v, *([mask] if mask is not None else []), lens]


def test_masks_that_are_not_the_standard_pattern_raise():
    norm = atb.Operation(sa(mask_type=M.MASK_TYPE_NORM))
    padding = atb_mask(8).masked_fill(torch.arange(8)[None, :] >= 6, -10000.0)  # causal plus padded keys
    with pytest.raises(NotImplementedError, match="mask: with mask_type=MASK_TYPE_NORM .*causal mask"):
        norm.forward(pa_encoder_inputs([8, 3], mask=padding))
    with pytest.raises(NotImplementedError, match="mask: .*MASK_TYPE_NORM"):
        norm.forward(pa_encoder_inputs([8, 3], mask=torch.zeros(8, 8)))  # an all-visible "mask"
    swa = atb.Operation(sa(mask_type=M.MASK_TYPE_SLIDING_WINDOW_NORM, window_size=3))
    with pytest.raises(NotImplementedError, match="sliding-window mask of 3 keys"):
        swa.forward(pa_encoder_inputs([8], mask=atb_mask(8)))  # causal without the window
    with pytest.raises(ValueError, match=r"mask of shape \[4, 4\] does not cover the longest sequence \(8 tokens\)"):
        norm.forward(pa_encoder_inputs([8, 3], mask=atb_mask(4)))


def test_causal_with_different_query_and_key_lengths_raises():
    op = atb.Operation(sa(mask_type=M.MASK_TYPE_CAUSAL_MASK))
    with pytest.raises(NotImplementedError, match=r"seqLen: query lengths \[2, 3\] differ from key lengths \[5, 3\]"):
        op.forward(pa_encoder_inputs([2, 3], [5, 3]))


@pytest.mark.parametrize(
    "param, match",
    [
        (sa(head_num=0), "head_num must be > 0, got 0"),
        (sa(kv_head_num=3), "kv_head_num=3 must be 0 or a positive divisor of head_num=4"),
        (sa(mask_type=M.MASK_TYPE_NORM, window_size=8), "window_size=8 with mask_type=MASK_TYPE_NORM"),
        (sa(mask_type=M.MASK_TYPE_SLIDING_WINDOW_NORM), "window_size=0 with mask_type=MASK_TYPE_SLIDING_WINDOW_NORM"),
        (sa(mask_type=42), "mask_type=42 is not a SelfAttentionParam.MaskType"),
        (PA(head_num=4, kv_head_num=8), "kv_head_num=8 must be 0 or a positive divisor"),
    ],
)
def test_inconsistent_params_raise_value_error(param, match):
    with pytest.raises(ValueError, match=match):
        atb.Operation(param)


def test_enum_fields_accept_atb_integers():
    op = atb.Operation(sa(mask_type=9))  # MASK_TYPE_CAUSAL_MASK, which some torch_atb releases do not bind
    assert (op.name, op.input_num, op.output_num) == ("SelfAttentionOperation", 4, 1)
    assert repr(op) == "op name: SelfAttentionOperation, input_num: 4, output_num: 1"


def test_bad_inputs_raise_clear_errors():
    op = atb.Operation(sa(mask_type=M.MASK_TYPE_NORM_COMPRESS))
    inputs = pa_encoder_inputs([8, 3], mask=atb_mask(128))
    with pytest.raises(ValueError, match=r"takes 5 input tensors \(query, key, value, mask, seqLen\), got 4"):
        op.forward(inputs[:3] + inputs[4:])
    with pytest.raises(TypeError, match="input seqLen must be a torch.Tensor, got list"):
        op.forward(inputs[:4] + [[8, 3]])
    with pytest.raises(ValueError, match="seqLen sums to 10 but query has 11 tokens"):
        op.forward(inputs[:4] + [torch.tensor([7, 3], dtype=torch.int32)])
    with pytest.raises(ValueError, match="seqLen must be an integer tensor"):
        op.forward(inputs[:4] + [torch.tensor([8.0, 3.0])])
    with pytest.raises(ValueError, match=r"query has 2 heads \(shape \[11, 2, 16\]\), the param says 4"):
        op.forward([inputs[0][:, :2], *inputs[1:]])
    decode = atb.Operation(PA(head_num=4, kv_head_num=2))
    key_cache, value_cache, block_tables = paged_kv([5, 9], 4, 2, 16, torch.float32)
    with pytest.raises(ValueError, match="contextLens must be \\[batch\\] with one entry per query token"):
        decode.forward([torch.randn(3, 4, 16), key_cache, value_cache, block_tables, torch.tensor([5, 9])])
    with pytest.raises(TypeError, match="param must be a SelfAttentionParam, PagedAttentionParam or Reshape"):
        atb.Operation({"head_num": 4})
