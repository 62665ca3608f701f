"""ATB-style API: torch_atb's ``Operation(param).forward([tensors]) -> [tensors]`` on top of the ascend_attn ops.

Code written for ``torch_atb`` (the Python binding of Ascend Transformer Boost) moves by changing the import::

    from ascend_attn import atb

    param = atb.SelfAttentionParam(head_num=32, kv_head_num=8, qk_scale=128**-0.5,
                                   calc_type=atb.SelfAttentionParam.CalcType.PA_ENCODER,
                                   mask_type=atb.SelfAttentionParam.MaskType.MASK_TYPE_CAUSAL_MASK)
    (out,) = atb.Operation(param).forward([query, key, value, seq_len])

Parameter classes, field names (snake_case, as torch_atb exposes them), defaults, enum member names and integer values
follow ATB's ``infer_op_params.h``. Supported configurations:

===========================================  ==========================================================================
ATB operation                                ascend_attn op
===========================================  ==========================================================================
SelfAttention ``PA_ENCODER``                 :func:`ascend_attn.ops.flash_attention_varlen` (cu_seqlens from seqLen)
SelfAttention ``PREFIX_ENCODER``             :func:`ascend_attn.ops.paged_attention` with ``cu_seqlens_q``
PagedAttention ``CALC_TYPE_UNDEFINED``       :func:`ascend_attn.ops.paged_attention` (one query token per sequence)
ReshapeAndCache ``K_CACHE_V_CACHE``          :func:`ascend_attn.ops.reshape_and_cache` (in place)
===========================================  ==========================================================================

Masks. ATB passes mask tensors; this module runs only masks whose meaning is fixed by the mask type, and computes them
from positions instead of reading an S×S tensor:

- ``MASK_TYPE_UNDEFINED``: no mask, every key visible.
- ``MASK_TYPE_NORM`` (full lower-triangular mask): causal. With ``is_triu_mask=1`` ATB's contract is that the mask is
  the triangular causal mask, so its values are not read. With ``is_triu_mask=0`` the mask could be anything, so it
  is checked: it must be nonzero exactly above the diagonal (any masking value: -inf, -10000, or 1 as ATB's
  high-precision kernel takes); any other mask raises NotImplementedError.
- ``MASK_TYPE_NORM_COMPRESS`` (128×128 compressed causal tile) and ``MASK_TYPE_CAUSAL_MASK`` (no mask tensor, generated
  in the kernel): causal; a compressed tile's values are not read.
- ``MASK_TYPE_SLIDING_WINDOW_NORM`` / ``_COMPRESS`` with ``window_size`` W > 0: ATB's window holds W keys including the
  current token (masked iff ``j > i`` or ``j <= i - W``), i.e. ``causal=True, window_size=(W - 1, 0)`` here. The full
  NORM form is checked like ``MASK_TYPE_NORM`` (unless ``is_triu_mask=1``); the compressed tile is not read.
- ALiBi masks (``MASK_TYPE_ALIBI*``) are full or compressed bias tensors and raise NotImplementedError.

Causal alignment: queries are the last positions of their sequence (bottom-right), as in ATB's PREFIX_ENCODER. For
PA_ENCODER a causal or window mask needs equal query and key lengths per sequence, because ATB does not document how
its mask aligns when a ``[2, batch]`` seqLen makes them differ; that case raises NotImplementedError.

Precision: every kernel type computes the softmax and accumulates in fp32 (``kernel_type`` is accepted and does not
change the result). ``qk_scale`` is the softmax scale (ATB's default 1 is kept, not 1/sqrt(head_dim)); ``q_scale`` is
folded into it. fp32 inputs are accepted too (ATB takes fp16/bf16 only). Any other configuration ATB offers that is
not implemented here (quantization, clamp, logN scaling, BNSD layout, MLA merged KV, dynamic batch, SWA cycle caches,
speculative PagedAttention, NZ caches, compressed KV heads) raises NotImplementedError naming the field and its value
when the Operation is created.

Executors: tensors on CPU run the native CPU kernels and NPU tensors the same ops (the dispatcher routes them once the
NPU registration exists). ``Operation(param, simulator=True)`` runs the Ascend C kernels in the CPU simulator instead
(fp16/bf16, with the kernels' limits: head sizes and block sizes multiples of 16): SelfAttention PA_ENCODER through
:func:`ascend_attn.sim.flash_attn_varlen_func`, PREFIX_ENCODER and PagedAttention through
:func:`ascend_attn.sim.paged_attention`, ReshapeAndCache through :func:`ascend_attn.sim.reshape_and_cache`.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from enum import IntEnum

import torch
from torch import Tensor

from ascend_attn import ops, sim

__all__ = [
    "AclDataType",
    "InputLayout",
    "Operation",
    "PagedAttentionParam",
    "ReshapeAndCacheParam",
    "SelfAttentionParam",
]


class InputLayout(IntEnum):
    """``torch_atb.InputLayout``: how q/k/v are laid out."""

    TYPE_BSND = 0
    TYPE_BNSD = 1


class AclDataType(IntEnum):
    """The subset of ``torch_atb.AclDataType`` (ACL's ``aclDataType``) that ``out_data_type`` may name."""

    ACL_DT_UNDEFINED = -1
    ACL_FLOAT = 0
    ACL_FLOAT16 = 1
    ACL_INT8 = 2
    ACL_INT32 = 3
    ACL_BF16 = 27


@dataclass
class SelfAttentionParam:
    """``atb::infer::SelfAttentionParam`` with torch_atb's snake_case field names, order and defaults."""

    class CalcType(IntEnum):
        UNDEFINED = 0
        ENCODER = 1
        DECODER = 2
        PA_ENCODER = 3
        PREFIX_ENCODER = 4

    class KernelType(IntEnum):
        KERNELTYPE_DEFAULT = 0
        KERNELTYPE_HIGH_PRECISION = 1
        KERNELTYPE_EXP_M8V2 = 2

    class ClampType(IntEnum):
        CLAMP_TYPE_UNDEFINED = 0
        CLAMP_TYPE_MIN_MAX = 1

    class MaskType(IntEnum):
        MASK_TYPE_UNDEFINED = 0
        MASK_TYPE_NORM = 1
        MASK_TYPE_ALIBI = 2
        MASK_TYPE_NORM_COMPRESS = 3
        MASK_TYPE_ALIBI_COMPRESS = 4
        MASK_TYPE_ALIBI_COMPRESS_SQRT = 5
        MASK_TYPE_ALIBI_COMPRESS_LEFT_ALIGN = 6
        MASK_TYPE_SLIDING_WINDOW_NORM = 7
        MASK_TYPE_SLIDING_WINDOW_COMPRESS = 8
        MASK_TYPE_CAUSAL_MASK = 9

    class KvCacheCfg(IntEnum):
        K_CACHE_V_CACHE = 0
        K_BYPASS_V_BYPASS = 1

    class ScaleType(IntEnum):
        SCALE_TYPE_TOR = 0
        SCALE_TYPE_LOGN = 1
        SCALE_TYPE_MAX = 2

    class QuantType(IntEnum):
        TYPE_QUANT_UNQUANT = 0
        TYPE_DEQUANT_FUSION = 1
        TYPE_QUANT_QKV_OFFLINE = 2
        TYPE_QUANT_QKV_ONLINE = 3

    class CacheType(IntEnum):
        CACHE_TYPE_NORM = 0
        CACHE_TYPE_SWA = 1

    quant_type: SelfAttentionParam.QuantType = QuantType.TYPE_QUANT_UNQUANT
    out_data_type: AclDataType = AclDataType.ACL_DT_UNDEFINED
    head_num: int = 0
    kv_head_num: int = 0  # 0: same as head_num
    q_scale: float = 1.0  # multiplies q before q·k
    qk_scale: float = 1.0  # multiplies q·k ("tor"); ATB's default is 1, not 1/sqrt(head_dim)
    batch_run_status_enable: bool = False
    is_triu_mask: int = 0
    calc_type: SelfAttentionParam.CalcType = CalcType.UNDEFINED
    kernel_type: SelfAttentionParam.KernelType = KernelType.KERNELTYPE_DEFAULT
    clamp_type: SelfAttentionParam.ClampType = ClampType.CLAMP_TYPE_UNDEFINED
    clamp_min: float = 0.0
    clamp_max: float = 0.0
    mask_type: SelfAttentionParam.MaskType = MaskType.MASK_TYPE_UNDEFINED
    kvcache_cfg: SelfAttentionParam.KvCacheCfg = KvCacheCfg.K_CACHE_V_CACHE
    scale_type: SelfAttentionParam.ScaleType = ScaleType.SCALE_TYPE_TOR
    input_layout: InputLayout = InputLayout.TYPE_BSND
    mla_v_head_size: int = 0
    cache_type: SelfAttentionParam.CacheType = CacheType.CACHE_TYPE_NORM
    window_size: int = 0  # > 0: sliding window of this many keys, the current one included


@dataclass
class PagedAttentionParam:
    """``atb::infer::PagedAttentionParam`` with torch_atb's snake_case field names, order and defaults.

    ``mla_v_head_size`` and ``q_scale`` are in ATB's C++ struct (not every torch_atb release binds them); ``q_scale``
    0 or 1 means off, as in ATB.
    """

    class MaskType(IntEnum):
        UNDEFINED = 0
        MASK_TYPE_NORM = 1
        MASK_TYPE_ALIBI = 2
        MASK_TYPE_SPEC = 3
        MASK_TYPE_MASK_FREE = 4

    class QuantType(IntEnum):
        TYPE_QUANT_UNQUANT = 0
        TYPE_DEQUANT_FUSION = 1
        TYPE_QUANT_QKV_OFFLINE = 2
        TYPE_QUANT_QKV_ONLINE = 3

    class CompressType(IntEnum):
        COMPRESS_TYPE_UNDEFINED = 0
        COMPRESS_TYPE_KVHEAD = 1
        COMPRESS_TYPE_KVHEAD_ROPE = 2
        COMPRESS_TYPE_MAX = 3

    class CalcType(IntEnum):
        CALC_TYPE_UNDEFINED = 0
        CALC_TYPE_SPEC = 1

    class ScaleType(IntEnum):
        SCALE_TYPE_TOR = 0
        SCALE_TYPE_LOGN = 1
        SCALE_TYPE_MAX = 2

    head_num: int = 0
    qk_scale: float = 1.0
    kv_head_num: int = 0  # 0: same as head_num
    mask_type: PagedAttentionParam.MaskType = MaskType.UNDEFINED
    batch_run_status_enable: bool = False
    quant_type: PagedAttentionParam.QuantType = QuantType.TYPE_QUANT_UNQUANT
    out_data_type: AclDataType = AclDataType.ACL_DT_UNDEFINED
    has_quant_offset: bool = False
    compress_type: PagedAttentionParam.CompressType = CompressType.COMPRESS_TYPE_UNDEFINED
    calc_type: PagedAttentionParam.CalcType = CalcType.CALC_TYPE_UNDEFINED
    scale_type: PagedAttentionParam.ScaleType = ScaleType.SCALE_TYPE_TOR
    input_layout: InputLayout = InputLayout.TYPE_BSND
    mla_v_head_size: int = 0
    q_scale: float = 0.0


@dataclass
class ReshapeAndCacheParam:
    """``atb::infer::ReshapeAndCacheParam`` with torch_atb's snake_case field names and defaults."""

    class CompressType(IntEnum):
        COMPRESS_TYPE_UNDEFINED = 0
        COMPRESS_TYPE_KVHEAD = 1
        COMPRESS_TYPE_KVHEAD_ROPE = 2

    class KvCacheCfg(IntEnum):
        K_CACHE_V_CACHE = 0
        K_CACHE_V_BYPASS = 1
        K_CACHE_V_CACHE_NZ = 2

    compress_type: ReshapeAndCacheParam.CompressType = CompressType.COMPRESS_TYPE_UNDEFINED
    kv_cache_cfg: ReshapeAndCacheParam.KvCacheCfg = KvCacheCfg.K_CACHE_V_CACHE


# ---------------------------------------------------------------------------------------------------------------------
# Validation helpers: every message names the field (or input tensor) and its value.


def _show(value) -> str:
    return f"{value.name} ({int(value)})" if isinstance(value, IntEnum) else repr(value)


def _field(param, name: str, enum_cls: type[IntEnum]) -> IntEnum:
    """Reads an enum field (an enum member or its integer value, as torch_atb accepts) and returns the member."""
    value = getattr(param, name)
    try:
        return enum_cls(value)
    except ValueError:
        members = ", ".join(f"{m.name}={int(m)}" for m in enum_cls)
        raise ValueError(f"{name}={value!r} is not a {enum_cls.__qualname__} (one of {members})") from None


def _reject_if(condition: bool, name: str, value, why: str) -> None:
    if condition:
        raise NotImplementedError(f"{name}={_show(value)} is not supported: {why}")


def _head_counts(param) -> tuple[int, int]:
    if param.head_num <= 0:
        raise ValueError(f"head_num must be > 0, got {param.head_num}")
    kv_heads = param.kv_head_num or param.head_num
    if kv_heads < 0 or param.head_num % kv_heads != 0:
        raise ValueError(
            f"kv_head_num={param.kv_head_num} must be 0 or a positive divisor of head_num={param.head_num}"
        )
    return param.head_num, kv_heads


def _split_heads(t: Tensor, heads: int, name: str) -> Tensor:
    """``[tokens, heads, dim]`` from ``[tokens, heads, dim]`` or ``[tokens, heads * dim]`` (ATB takes both)."""
    if t.dim() == 3:
        if t.shape[1] != heads:
            raise ValueError(f"{name} has {t.shape[1]} heads (shape {list(t.shape)}), the param says {heads}")
        return t
    if t.dim() == 2 and t.shape[1] % heads == 0:
        return t.view(t.shape[0], heads, t.shape[1] // heads)
    raise ValueError(
        f"{name} must be [nTokens, {heads}, headSize] or [nTokens, {heads} * headSize], got shape {list(t.shape)}"
    )


_INT32_MAX = 2**31 - 1


def _host_lengths(t: Tensor, name: str) -> list:
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor (ATB: host int32), got {t.dtype}")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} has a negative length: {t.tolist()}")
    if t.numel() and int(t.max()) > _INT32_MAX:  # an int64 tensor would wrap when converted to the ops' int32
        raise ValueError(f"{name} has a length of {int(t.max())}, more than ATB's host int32 holds (2^31 - 1)")
    return t.tolist()


def _cu_seqlens(lengths: list[int], total: int, name: str, tensor_name: str, device) -> Tensor:
    if sum(lengths) != total:
        raise ValueError(f"{name} sums to {sum(lengths)} but {tensor_name} has {total} tokens")
    if total > _INT32_MAX:
        raise ValueError(f"{name} sums to {total} tokens, more than int32 cu_seqlens can index (2^31 - 1)")
    return torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32, device=device)


def _check_mask_pattern(mask: Tensor, length: int, window: int, mask_type) -> None:
    """A full mask the ops replace by positions must be nonzero exactly where ATB's mask type masks (see module doc)."""
    if mask.dim() < 2 or mask.shape[-2] < length or mask.shape[-1] < length:
        raise ValueError(f"mask of shape {list(mask.shape)} does not cover the longest sequence ({length} tokens)")
    i = torch.arange(length, device=mask.device)[:, None]
    j = torch.arange(length, device=mask.device)[None, :]
    expected = j > i
    if window > 0:
        expected |= j <= i - window
    if not torch.equal((mask[..., :length, :length] != 0), expected.expand(mask[..., :length, :length].shape)):
        what = f"sliding-window mask of {window} keys" if window > 0 else "causal mask (nonzero above the diagonal)"
        raise NotImplementedError(
            f"mask: with mask_type={_show(mask_type)} and is_triu_mask=0 only the standard {what} is supported, and "
            "this mask differs from it; arbitrary additive masks are not supported"
        )


# ---------------------------------------------------------------------------------------------------------------------
# Operations


class _SelfAttention:
    name = "SelfAttentionOperation"
    output_num = 1

    _CAUSAL = frozenset(
        {
            SelfAttentionParam.MaskType.MASK_TYPE_NORM,
            SelfAttentionParam.MaskType.MASK_TYPE_NORM_COMPRESS,
            SelfAttentionParam.MaskType.MASK_TYPE_CAUSAL_MASK,
            SelfAttentionParam.MaskType.MASK_TYPE_SLIDING_WINDOW_NORM,
            SelfAttentionParam.MaskType.MASK_TYPE_SLIDING_WINDOW_COMPRESS,
        }
    )
    _WINDOW = frozenset(
        {
            SelfAttentionParam.MaskType.MASK_TYPE_SLIDING_WINDOW_NORM,
            SelfAttentionParam.MaskType.MASK_TYPE_SLIDING_WINDOW_COMPRESS,
        }
    )
    # Masks whose tensor is a full [.., maxSeqLen, maxSeqLen] pattern (checked unless is_triu_mask=1).
    _FULL = frozenset(
        {SelfAttentionParam.MaskType.MASK_TYPE_NORM, SelfAttentionParam.MaskType.MASK_TYPE_SLIDING_WINDOW_NORM}
    )

    def __init__(self, param: SelfAttentionParam, simulator: bool):
        P = SelfAttentionParam
        p = self.param = dataclasses.replace(param)
        self.simulator = simulator
        self.heads, self.kv_heads = _head_counts(p)
        calc = p.calc_type = _field(p, "calc_type", P.CalcType)
        mask = p.mask_type = _field(p, "mask_type", P.MaskType)
        for name, enum_cls, ok, why in [
            ("quant_type", P.QuantType, P.QuantType.TYPE_QUANT_UNQUANT, "int8 Q/K/V is not implemented"),
            ("out_data_type", AclDataType, AclDataType.ACL_DT_UNDEFINED, "the output has the query's dtype"),
            ("clamp_type", P.ClampType, P.ClampType.CLAMP_TYPE_UNDEFINED, "clamping scores is not implemented"),
            ("scale_type", P.ScaleType, P.ScaleType.SCALE_TYPE_TOR, "logN scaling is not implemented"),
            ("input_layout", InputLayout, InputLayout.TYPE_BSND, "q/k/v must be [nTokens, heads, headSize]"),
            ("cache_type", P.CacheType, P.CacheType.CACHE_TYPE_NORM, "SWA cycle caches are not implemented"),
        ]:
            value = _field(p, name, enum_cls)
            _reject_if(value != ok, name, value, f"{why}; use {ok.name}")
        _field(p, "kernel_type", P.KernelType)  # every kernel type computes in fp32 here
        _field(p, "kvcache_cfg", P.KvCacheCfg)  # ATB: not used by PA_ENCODER; PREFIX_ENCODER reads the caches given
        _reject_if(p.batch_run_status_enable, "batch_run_status_enable", True, "dynamic batch is not implemented")
        _reject_if(p.mla_v_head_size > 0, "mla_v_head_size", p.mla_v_head_size, "merged-KV MLA is not implemented")
        _reject_if(
            calc not in (P.CalcType.PA_ENCODER, P.CalcType.PREFIX_ENCODER),
            "calc_type",
            calc,
            "per-layer contiguous KV caches are not implemented; use PA_ENCODER (prefill) or PREFIX_ENCODER "
            "(prefill over a paged prefix) with ReshapeAndCache and PagedAttention",
        )
        if (p.window_size > 0) != (mask in self._WINDOW):
            raise ValueError(
                f"window_size={p.window_size} with mask_type={_show(mask)}: ATB's sliding window needs window_size > 0 "
                "together with MASK_TYPE_SLIDING_WINDOW_NORM or MASK_TYPE_SLIDING_WINDOW_COMPRESS"
            )
        if calc == P.CalcType.PA_ENCODER:
            supported = {P.MaskType.MASK_TYPE_UNDEFINED} | self._CAUSAL
        else:
            supported = {P.MaskType.MASK_TYPE_NORM_COMPRESS, P.MaskType.MASK_TYPE_CAUSAL_MASK}
        _reject_if(
            mask not in supported,
            "mask_type",
            mask,
            f"{calc.name} supports {', '.join(m.name for m in sorted(supported))}"
            + ("; ALiBi bias tensors are not implemented" if "ALIBI" in mask.name else ""),
        )
        self.causal = mask in self._CAUSAL
        self.window = (p.window_size - 1, 0) if p.window_size > 0 else (-1, -1)
        self.softmax_scale = p.qk_scale * p.q_scale
        has_mask = mask not in (P.MaskType.MASK_TYPE_UNDEFINED, P.MaskType.MASK_TYPE_CAUSAL_MASK)
        if calc == P.CalcType.PA_ENCODER:
            self.input_names = ("query", "key", "value", *(("mask",) if has_mask else ()), "seqLen")
        else:
            names = ("query", "keyCache", "valueCache", "blockTables", *(("mask",) if has_mask else ()))
            self.input_names = (*names, "seqLen", "kvSeqLen")
        self.describe = f"{calc.name}, mask_type={mask.name}"

    def run(self, t: dict[str, Tensor]) -> list[Tensor]:
        if self.param.calc_type == SelfAttentionParam.CalcType.PA_ENCODER:
            return [self._pa_encoder(t)]
        return [self._prefix_encoder(t)]

    def _pa_encoder(self, t: dict[str, Tensor]) -> Tensor:
        query = t["query"]
        q = _split_heads(query, self.heads, "query")
        k = _split_heads(t["key"], self.kv_heads, "key")
        v = _split_heads(t["value"], self.kv_heads, "value")
        lengths = _host_lengths(t["seqLen"], "seqLen")
        if t["seqLen"].dim() == 2 and t["seqLen"].shape[0] == 2:
            q_lens, k_lens = lengths
        elif t["seqLen"].dim() == 1:
            q_lens = k_lens = lengths
        else:
            raise ValueError(f"seqLen must be [batch] or [2, batch], got shape {list(t['seqLen'].shape)}")
        if self.causal and q_lens != k_lens:
            raise NotImplementedError(
                f"seqLen: query lengths {q_lens} differ from key lengths {k_lens} with mask_type="
                f"{self.param.mask_type.name}; ATB does not define how its causal mask aligns then. Use PREFIX_ENCODER "
                "(queries are the last positions) or ascend_attn.flash_attn_varlen_func (bottom-right aligned)"
            )
        cu_q = _cu_seqlens(q_lens, q.shape[0], "seqLen", "query", q.device)
        cu_k = _cu_seqlens(k_lens, k.shape[0], "seqLen", "key", q.device)
        max_q, max_k = max(q_lens, default=0), max(k_lens, default=0)
        if self.param.mask_type in self._FULL and not self.param.is_triu_mask:
            _check_mask_pattern(t["mask"], max_q, self.param.window_size, self.param.mask_type)
        options = dict(softmax_scale=self.softmax_scale, causal=self.causal, window_size=self.window)
        if self.simulator:
            out = sim.flash_attn_varlen_func(q, k, v, cu_q, cu_k, max_q, max_k, **options).out
        else:
            out, _ = ops.flash_attention_varlen(q, k, v, cu_q, cu_k, max_q, max_k, **options)
        return out.reshape(out.shape[0], -1) if query.dim() == 2 else out

    def _prefix_encoder(self, t: dict[str, Tensor]) -> Tensor:
        query = t["query"]
        q = _split_heads(query, self.heads, "query")
        q_lens = _host_lengths(t["seqLen"], "seqLen")
        kv_lens = _host_lengths(t["kvSeqLen"], "kvSeqLen")
        if t["seqLen"].dim() != 1 or t["kvSeqLen"].shape != t["seqLen"].shape:
            raise ValueError(
                f"seqLen and kvSeqLen must both be [batch], got {list(t['seqLen'].shape)} and "
                f"{list(t['kvSeqLen'].shape)}"
            )
        if any(ql > kl for ql, kl in zip(q_lens, kv_lens, strict=True)):
            raise ValueError(f"seqLen {q_lens} exceeds kvSeqLen {kv_lens} (kvSeqLen counts the prefix and the queries)")
        cu_q = _cu_seqlens(q_lens, q.shape[0], "seqLen", "query", q.device)
        context_lens = torch.tensor(kv_lens, dtype=torch.int32, device=q.device)
        args = (q, t["keyCache"], t["valueCache"], t["blockTables"], context_lens)
        if self.simulator:
            out = sim.paged_attention(*args, cu_seqlens_q=cu_q, softmax_scale=self.softmax_scale, causal=True).out
        else:
            out = ops.paged_attention(*args, cu_seqlens_q=cu_q, softmax_scale=self.softmax_scale, causal=True)
        return out.reshape(out.shape[0], -1) if query.dim() == 2 else out


class _PagedAttention:
    name = "PagedAttentionOperation"
    output_num = 1
    input_names = ("query", "keyCache", "valueCache", "blockTables", "contextLens")

    def __init__(self, param: PagedAttentionParam, simulator: bool):
        P = PagedAttentionParam
        p = self.param = dataclasses.replace(param)
        self.heads, self.kv_heads = _head_counts(p)
        for name, enum_cls, ok, why in [
            (
                "calc_type",
                P.CalcType,
                P.CalcType.CALC_TYPE_UNDEFINED,
                "speculative (multi-token) decoding is not "
                "implemented here; use SelfAttention PREFIX_ENCODER or ascend_attn.paged_attention(cu_seqlens_q=...)",
            ),
            (
                "mask_type",
                P.MaskType,
                P.MaskType.UNDEFINED,
                "decode masks are not implemented (with one query per sequence every key is visible)",
            ),
            ("quant_type", P.QuantType, P.QuantType.TYPE_QUANT_UNQUANT, "int8 caches are not implemented"),
            ("out_data_type", AclDataType, AclDataType.ACL_DT_UNDEFINED, "the output has the query's dtype"),
            (
                "compress_type",
                P.CompressType,
                P.CompressType.COMPRESS_TYPE_UNDEFINED,
                "compressed KV heads are not implemented",
            ),
            ("scale_type", P.ScaleType, P.ScaleType.SCALE_TYPE_TOR, "logN scaling is not implemented"),
            ("input_layout", InputLayout, InputLayout.TYPE_BSND, "query must be [numTokens, heads, headSize]"),
        ]:
            value = _field(p, name, enum_cls)
            _reject_if(value != ok, name, value, f"{why}; use {ok.name}")
        _reject_if(p.batch_run_status_enable, "batch_run_status_enable", True, "dynamic batch is not implemented")
        _reject_if(p.has_quant_offset, "has_quant_offset", True, "quantization is not implemented")
        _reject_if(p.mla_v_head_size > 0, "mla_v_head_size", p.mla_v_head_size, "merged-KV MLA is not implemented")
        self.simulator = simulator
        self.softmax_scale = p.qk_scale * (p.q_scale or 1.0)  # ATB: q_scale 0 or 1 = off
        self.describe = "decode"

    def run(self, t: dict[str, Tensor]) -> list[Tensor]:
        query = t["query"]
        q = _split_heads(query, self.heads, "query")
        context_lens = t["contextLens"]
        _host_lengths(context_lens, "contextLens")
        if context_lens.dim() != 1 or context_lens.shape[0] != q.shape[0]:
            raise ValueError(
                f"contextLens must be [batch] with one entry per query token (CALC_TYPE_UNDEFINED decodes one token "
                f"per sequence); got shape {list(context_lens.shape)} for {q.shape[0]} query tokens"
            )
        args = (
            q,
            t["keyCache"],
            t["valueCache"],
            t["blockTables"],
            context_lens.to(device=q.device, dtype=torch.int32),
        )
        if self.simulator:
            out = sim.paged_attention(*args, softmax_scale=self.softmax_scale).out
        else:
            out = ops.paged_attention(*args, softmax_scale=self.softmax_scale)
        return [out.reshape(out.shape[0], -1) if query.dim() == 2 else out]


class _ReshapeAndCache:
    name = "ReshapeAndCacheOperation"
    output_num = 2
    input_names = ("key", "value", "keyCache", "valueCache", "slotMapping")

    def __init__(self, param: ReshapeAndCacheParam, simulator: bool):
        P = ReshapeAndCacheParam
        p = self.param = dataclasses.replace(param)
        compress = _field(p, "compress_type", P.CompressType)
        _reject_if(
            compress != P.CompressType.COMPRESS_TYPE_UNDEFINED,
            "compress_type",
            compress,
            "compressed KV heads are not implemented; use COMPRESS_TYPE_UNDEFINED",
        )
        cfg = _field(p, "kv_cache_cfg", P.KvCacheCfg)
        _reject_if(
            cfg != P.KvCacheCfg.K_CACHE_V_CACHE,
            "kv_cache_cfg",
            cfg,
            "only ND key and value caches are implemented; use K_CACHE_V_CACHE",
        )
        self.simulator = simulator
        self.describe = "K_CACHE_V_CACHE"

    def run(self, t: dict[str, Tensor]) -> list[Tensor]:
        write = sim.reshape_and_cache if self.simulator else ops.reshape_and_cache
        write(t["key"], t["value"], t["keyCache"], t["valueCache"], t["slotMapping"])
        return [t["keyCache"], t["valueCache"]]


class Operation:
    """``torch_atb.Operation``: built from a param, run with :meth:`forward` on a list of tensors.

    The param is copied and validated here (as ATB's CreateOperation does): a configuration this library does not
    implement raises NotImplementedError naming the field and value; an inconsistent one raises ValueError.

    Args:
        param: :class:`SelfAttentionParam` (calc_type PA_ENCODER or PREFIX_ENCODER), :class:`PagedAttentionParam`
            (decode) or :class:`ReshapeAndCacheParam`.
        simulator: run the operation through its Ascend C kernel in the CPU simulator (fp16/bf16; head sizes and
            block sizes multiples of 16) instead of the CPU kernels.
    """

    def __init__(self, param, *, simulator: bool = False):
        kinds = {
            SelfAttentionParam: _SelfAttention,
            PagedAttentionParam: _PagedAttention,
            ReshapeAndCacheParam: _ReshapeAndCache,
        }
        if type(param) not in kinds:
            raise TypeError(
                "param must be a SelfAttentionParam, PagedAttentionParam or ReshapeAndCacheParam from ascend_attn.atb, "
                f"got {type(param).__name__}"
            )
        self._op = kinds[type(param)](param, simulator)

    @property
    def name(self) -> str:
        return self._op.name

    @property
    def input_num(self) -> int:
        return len(self._op.input_names)

    @property
    def output_num(self) -> int:
        return self._op.output_num

    def __repr__(self) -> str:
        return f"op name: {self.name}, input_num: {self.input_num}, output_num: {self.output_num}"

    def forward(self, tensors: list[Tensor]) -> list[Tensor]:
        """Runs the operation; the inputs are positional, in ATB's order for the configured param.

        SelfAttention ``PA_ENCODER`` (prefill over packed sequences):
            - ``query`` ``[nTokens, head_num, head_size]`` (or ``[nTokens, head_num * head_size]``), fp16/bf16/fp32;
            - ``key`` ``[nKvTokens, kv_head_num, head_size]``, ``value`` ``[nKvTokens, kv_head_num, head_size_v]``
              (or 2-D);
            - ``mask`` — only for mask types NORM, NORM_COMPRESS, SLIDING_WINDOW_NORM, SLIDING_WINDOW_COMPRESS: a full
              ``[maxSeqLen, maxSeqLen]`` (or with leading batch/head dims) pattern, or the compressed tile;
            - ``seqLen`` host int ``[batch]`` (query length = key length) or ``[2, batch]`` (row 0 query lengths,
              row 1 key lengths).
            Returns ``[attnOut]``: ``[nTokens, head_num, head_size_v]`` (2-D if the query was 2-D).

        SelfAttention ``PREFIX_ENCODER`` (prefill whose keys, prefix included, are already in the paged cache):
            - ``query`` ``[nTokens, head_num, head_size]``;
            - ``keyCache`` ``[numBlocks, blockSize, kv_head_num, head_size]``,
              ``valueCache`` ``[numBlocks, blockSize, kv_head_num, head_size_v]``;
            - ``blockTables`` int32 ``[batch, maxBlocksPerSeq]``;
            - ``mask`` — only for MASK_TYPE_NORM_COMPRESS (the compressed causal tile; not read);
            - ``seqLen`` host int ``[batch]`` query lengths; ``kvSeqLen`` host int ``[batch]`` key lengths including the
              queries, which are the last ``seqLen[b]`` positions of sequence b.
            Returns ``[attnOut]`` ``[nTokens, head_num, head_size_v]``.

        PagedAttention (decode, one query token per sequence):
            - ``query`` ``[batch, head_num, head_size]``; ``keyCache``, ``valueCache``, ``blockTables`` as above;
            - ``contextLens`` host int ``[batch]``, keys per sequence including this step's token.
            Returns ``[attnOut]`` ``[batch, head_num, head_size_v]``.

        ReshapeAndCache:
            - ``key`` ``[numTokens, kv_heads, head_size]``, ``value`` ``[numTokens, kv_heads, head_size_v]``;
            - ``keyCache``, ``valueCache`` ``[numBlocks, blockSize, kv_heads, head_size(_v)]``, written in place;
            - ``slotMapping`` int32/int64 ``[numTokens]``, ``slot = block * blockSize + offset``; negative = skip.
            Returns ``[keyCache, valueCache]`` (the same tensor objects, updated).
        """
        names = self._op.input_names
        if len(tensors) != len(names):
            raise ValueError(
                f"{self.name} ({self._op.describe}) takes {len(names)} input tensors ({', '.join(names)}), "
                f"got {len(tensors)}"
            )
        for name, t in zip(names, tensors, strict=True):
            if not isinstance(t, Tensor):
                raise TypeError(f"input {name} must be a torch.Tensor, got {type(t).__name__}")
        return self._op.run(dict(zip(names, tensors, strict=True)))
