"""Hugging Face transformers integration: ``attn_implementation="ascend_attn"``.

::

    from ascend_attn.integrations.transformers import register
    from transformers import AutoModelForCausalLM

    register()
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="ascend_attn")

``register()`` adds :func:`attention_forward` to transformers' ``AttentionInterface`` and gives the name the same
mask function as ``"flash_attention_2"``, so models hand the attention either no mask (plain causal or full
attention) or the 2-D padding mask ``[batch, kv_len]``, never an S×S mask. What each call runs:

- no mask: :func:`ascend_attn.flash_attn_func`, causal when the layer is (bottom-right aligned, so decode steps over
  a ``DynamicCache`` see every cached key);
- a 2-D padding mask: the padded tokens are removed and :func:`ascend_attn.flash_attn_varlen_func` runs on the packed
  sequences; the query rows at padded positions output 0;
- packed sequences without a mask (padding-free batches): from ``cu_seq_lens_q/k`` + ``max_length_q/k`` keyword
  arguments, or from ``position_ids`` restarting inside a batch of one, also through the varlen op;
- a 4-D mask (only when the caller passes a prepared ``[batch, 1 or heads, q_len, kv_len]`` mask itself): a dense
  PyTorch fallback (fp32 scores, the mask added or applied as given, sliding_window ignored as in ``"eager"``).

``scaling``, ``softcap`` and ``sliding_window`` are passed through (a window of ``w`` tokens is flash-attn's
``window_size=(w - 1, w - 1)``, as transformers' flash path uses; with padding the window counts unpadded tokens,
which is the same for left padding). Training works: every path above is differentiable (the flash and varlen ops
through :mod:`ascend_attn.autograd`, the 4-D fallback as plain PyTorch), with gradients that match ``"eager"``. Not
supported, each raising ``NotImplementedError``: ``dropout > 0`` (training with attention dropout), attention sinks
(``s_aux``) and transformers' continuous-batching ``PagedAttentionCache``. Decode steps run the same flash / varlen
ops over the contiguous K/V of the model's ``DynamicCache``; the paged ops (:func:`ascend_attn.paged_attention`,
:class:`ascend_attn.PagedKVCache`) are not wired into transformers' caches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

import ascend_attn

__all__ = ["NAME", "attention_forward", "register"]

NAME = "ascend_attn"


def register() -> str:
    """Registers ``attn_implementation="ascend_attn"`` in transformers; returns the name. Safe to call repeatedly.

    Raises:
        ImportError: transformers is not installed (``pip install ascend_attn[transformers]``).
    """
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask
    except ImportError as e:
        raise ImportError(
            "ascend_attn.integrations.transformers.register() needs Hugging Face transformers: "
            "pip install 'ascend_attn[transformers]'"
        ) from e
    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, flash_attention_mask)
    return NAME


def attention_forward(
    module: torch.nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    softcap: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[Tensor, None]:
    """transformers' attention-function contract, computed with the ascend_attn ops.

    Args:
        module: the attention layer; its ``is_causal`` (default True) is used when ``is_causal`` is None.
        query: ``[batch, heads, q_len, head_dim]``.
        key: ``[batch, kv_heads, kv_len, head_dim]``; kv_heads divides heads.
        value: ``[batch, kv_heads, kv_len, head_dim_v]``.
        attention_mask: None; bool/int ``[batch, kv_len]`` with 0 at padding (keys past its length, e.g. unused
            static-cache slots, are ignored); or a prepared 4-D bool or additive mask ``[batch or 1, heads or 1,
            q_len, kv_len]``. The queries are the last ``q_len`` positions of the keys.
        dropout: must be 0.0.
        scaling: softmax scale, default ``1 / sqrt(head_dim)``.
        sliding_window: each query sees itself and the ``sliding_window - 1`` tokens before it; None = unbounded.
        softcap: > 0 replaces each scaled score s by ``softcap * tanh(s / softcap)``.
        is_causal: overrides ``module.is_causal``.
        kwargs: ``position_ids`` ``[batch, q_len]``; ``cu_seq_lens_q``/``cu_seq_lens_k`` int ``[n + 1]`` with
            ``max_length_q``/``max_length_k`` for padding-free packed batches; others are ignored.

    Returns:
        ``(attn_output [batch, q_len, heads, head_dim_v], None)`` in query's dtype.
    """
    if dropout > 0.0:
        raise NotImplementedError(
            f"dropout={dropout}: ascend_attn implements attention without dropout; use model.eval() or set "
            "attention_dropout=0.0 in the config"
        )
    if kwargs.get("s_aux") is not None:
        raise NotImplementedError("s_aux (attention sinks) is not supported by attn_implementation='ascend_attn'")
    if kwargs.get("cache") is not None:
        raise NotImplementedError(
            "transformers' PagedAttentionCache (continuous batching) is not supported by "
            "attn_implementation='ascend_attn'; use generate() with the default DynamicCache"
        )
    if attention_mask is not None and not isinstance(attention_mask, Tensor):
        raise TypeError(f"attention_mask must be a Tensor or None, got {type(attention_mask).__name__}")
    causal = bool(is_causal if is_causal is not None else getattr(module, "is_causal", True))
    window = (-1, -1) if sliding_window is None else (sliding_window - 1, sliding_window - 1)
    options = {"softmax_scale": scaling, "causal": causal, "window_size": window, "softcap": softcap or 0.0}

    if attention_mask is not None and attention_mask.dim() == 4:
        return _dense_masked(query, key, value, attention_mask, scaling, softcap), None
    if attention_mask is not None and attention_mask.dim() != 2:
        shape = tuple(attention_mask.shape)
        raise ValueError(f"attention_mask must be [batch, kv_len] or [batch, heads, q_len, kv_len], got {shape}")
    # BSND views of transformers' BNSD tensors: the ops take any strides with a contiguous last dim.
    q, k, v = (x.transpose(1, 2) for x in (query, key, value))
    if attention_mask is not None:
        out = _padded(q, k, v, attention_mask, options)
    elif (packed := _packed_lengths(q, k, kwargs)) is not None:
        batch, q_len = q.shape[:2]
        out = ascend_attn.flash_attn_varlen_func(
            q.reshape(-1, *q.shape[2:]), k.reshape(-1, *k.shape[2:]), v.reshape(-1, *v.shape[2:]), *packed, **options
        )
        out = out.reshape(batch, q_len, *out.shape[1:])
    else:
        out = ascend_attn.flash_attn_func(q, k, v, **options)
    return out, None


def _padded(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, options: dict) -> Tensor:
    """Removes padding, runs the varlen op, scatters back. q ``[b, q_len, h, d]``, k/v ``[b, kv_len, hk, d]``."""
    batch, q_len = q.shape[:2]
    mask = mask.bool()
    kv_len = mask.shape[1]
    if k.shape[1] < kv_len or q_len > kv_len:
        raise ValueError(
            f"attention_mask covers {kv_len} positions, but the keys have {k.shape[1]} and the queries {q_len} "
            "(need q_len <= mask length <= kv_len)"
        )
    k, v = k[:, :kv_len], v[:, :kv_len]
    q_mask = mask[:, kv_len - q_len :]
    k_index = mask.reshape(-1).nonzero().squeeze(1)
    q_index = q_mask.reshape(-1).nonzero().squeeze(1)
    k_lens, q_lens = mask.sum(1, dtype=torch.int32), q_mask.sum(1, dtype=torch.int32)
    cu_k = F.pad(k_lens.cumsum(0, dtype=torch.int32), (1, 0))
    cu_q = F.pad(q_lens.cumsum(0, dtype=torch.int32), (1, 0))
    out = ascend_attn.flash_attn_varlen_func(
        q.reshape(-1, *q.shape[2:])[q_index],
        k.reshape(-1, *k.shape[2:])[k_index],
        v.reshape(-1, *v.shape[2:])[k_index],
        cu_q,
        cu_k,
        int(q_lens.max()),
        int(k_lens.max()),
        **options,
    )
    full = out.new_zeros(batch * q_len, *out.shape[1:])
    full[q_index] = out
    return full.reshape(batch, q_len, *out.shape[1:])


def _packed_lengths(q: Tensor, k: Tensor, kwargs: dict) -> tuple[Tensor, Tensor, int, int] | None:
    """``(cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)`` when the batch holds packed sequences, else None.

    Packed means either explicit ``cu_seq_lens_q/k`` with ``max_length_q/k`` (transformers' FlashAttentionKwargs),
    or a batch of one with no cached keys whose ``position_ids`` restart (e.g. ``[0, 1, 2, 0, 1]``).
    """
    names = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")
    given = [kwargs.get(n) for n in names]
    if all(x is not None for x in given):
        cu_q, cu_k, max_q, max_k = given
        return cu_q.to(torch.int32), cu_k.to(torch.int32), int(max_q), int(max_k)
    position_ids = kwargs.get("position_ids")
    q_len = q.shape[1]
    if position_ids is None or q.shape[0] != 1 or q_len < 2 or k.shape[1] != q_len:
        return None
    positions = position_ids.reshape(-1)
    starts = ((positions[1:] - positions[:-1]) != 1).nonzero().squeeze(1) + 1
    if starts.numel() == 0:
        return None
    bounds = [0, *starts.tolist(), q_len]
    cu = torch.tensor(bounds, dtype=torch.int32, device=q.device)
    longest = int(cu.diff().max())
    return cu, cu, longest, longest


def _dense_masked(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor, scaling: float | None, softcap: float | None
) -> Tensor:
    """Fallback for a caller-prepared 4-D mask: fp32 scores ``[b, h, q_len, kv_len]`` in memory.

    query ``[b, h, q_len, d]``, key/value ``[b, hk, kv_len, d(_v)]``; mask bool (True = visible) or additive, sliced
    to kv_len. Rows a bool mask leaves empty output 0. Returns ``[b, q_len, h, d_v]``.
    """
    batch, heads, q_len, head_dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    scale = head_dim**-0.5 if scaling is None else scaling
    # q heads of one kv head are stacked as rows, so K/V are never repeated: [b, hk, group * q_len, d].
    q = query.float().reshape(batch, kv_heads, heads // kv_heads * q_len, head_dim)
    scores = (q @ key.float().transpose(-1, -2) * scale).reshape(batch, heads, q_len, kv_len)
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    mask = mask[..., :kv_len]
    if mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    else:
        scores = scores + mask.float()
    probs = scores.softmax(-1).nan_to_num(0.0).reshape(batch, kv_heads, -1, kv_len)
    out = (probs @ value.float()).reshape(batch, heads, q_len, value.shape[-1])
    return out.to(query.dtype).transpose(1, 2).contiguous()
