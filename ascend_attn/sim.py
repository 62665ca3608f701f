"""The Ascend C kernels of ``op_kernel/`` run in the CPU simulator of the Ascend C API (``csrc/sim``).

These functions run the NPU kernels' real sources on CPU tensors, through the same host flow (validation, tiling,
workspace, launch) as the NPU path, with the simulator enforcing the hardware's rules (UB/L1 capacity, 32-byte
alignment, copy lengths, repeat limits, flag and queue pairing, GM bounds). They return the kernel's result and its
counters, with a *modelled* Atlas 910B2 time: an estimate for comparing kernel designs, never a measured NPU time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ascend_attn import _sim


@dataclass
class SimStats:
    """Counters of one simulated launch and the time the 910B2 model derives from them (an estimate)."""

    block_dim: int
    # per AIC core: gm_read_bytes, gm_write_bytes, cube_macs, vector_elems, and gm_workspace_bytes (the part of the
    # GM traffic that goes to and from the workspace)
    per_core: list[dict]
    modelled_us: float  # max over cores of the per-core roofline, plus the launch overhead below
    modelled_core_us: list[float]
    modelled_bound: list[str]  # per core: "cube", "vector" or "gm"
    useful_flops: int  # 2 * (head_dim + head_dim_v) * visible (query, key) pairs
    modelled_tflops: float = field(init=False)
    launch_overhead_us: float = _sim.model_launch_overhead_us

    def __post_init__(self):
        self.modelled_tflops = self.useful_flops / (self.modelled_us * 1e6) if self.modelled_us > 0 else 0.0


@dataclass
class SimResult:
    out: torch.Tensor
    lse: torch.Tensor | None
    stats: SimStats


def _visible_pairs(cu_q: list[int], cu_k: list[int], window_left: int, window_right: int) -> int:
    """Number of (query, key) pairs the attention semantics make visible (bottom-right aligned)."""
    total = 0
    for b in range(len(cu_q) - 1):
        sq, sk = cu_q[b + 1] - cu_q[b], cu_k[b + 1] - cu_k[b]
        pos = torch.arange(sq, dtype=torch.int64) + sk - sq
        lo = (pos - window_left).clamp(min=0) if window_left >= 0 else torch.zeros_like(pos)
        hi = (pos + window_right + 1).clamp(max=sk) if window_right >= 0 else torch.full_like(pos, sk)
        total += int((hi - lo).clamp(min=0).sum())
    return total


def flash_attn_varlen_func(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    return_lse: bool = False,
    num_cores: int = 24,
    dry_run: bool = False,
) -> SimResult:
    """Runs ``op_kernel/flash_attention`` in the simulator on ``num_cores`` simulated AI cores.

    Args:
        q: ``[total_q, heads, head_dim]`` fp16/bf16 (head_dim a multiple of 16, at most 512).
        k: ``[total_k, kv_heads, head_dim]``; kv_heads divides heads (GQA/MQA).
        v: ``[total_k, kv_heads, head_dim_v]``.
        cu_seqlens_q, cu_seqlens_k: int32 ``[batch + 1]`` cumulative sequence lengths.
        max_seqlen_q, max_seqlen_k: the longest sequences.
        softmax_scale, causal, window_size, softcap: as :func:`ascend_attn.flash_attn_varlen_func`.
        return_lse: also return lse fp32 ``[heads, total_q]``.
        num_cores: AI cores to simulate (a 910B2 has 24).
        dry_run: count traffic and work without doing the arithmetic (outputs are garbage); for modelling shapes too
            large to compute on CPU.

    Returns:
        :class:`SimResult` with ``out [total_q, heads, head_dim_v]``, ``lse`` (None unless asked) and ``stats``.
    """
    window = list(window_size)
    out, lse, raw = _sim.flash_attention_varlen(
        q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal, window, softcap,
        return_lse, num_cores, dry_run,
    )  # fmt: skip
    left, right = window
    if causal:
        right = 0
    pairs = _visible_pairs(cu_seqlens_q.tolist(), cu_seqlens_k.tolist(), left, right)
    stats = SimStats(useful_flops=2 * (q.shape[-1] + v.shape[-1]) * q.shape[1] * pairs, **raw)
    return SimResult(out, lse if return_lse else None, stats)
