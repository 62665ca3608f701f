"""The Ascend C kernels of ``op_kernel/`` run in the CPU simulator of the Ascend C API (``csrc/sim``).

These functions run the NPU kernels' real sources on CPU tensors, through the same host flow (validation, tiling,
workspace, launch) as the NPU path, with the simulator enforcing the hardware's rules (UB/L1 capacity, 32-byte
alignment, copy lengths, repeat limits, the synchronisation of asynchronous pipes and cores, the scalar data cache,
GM bounds). They return the kernel's result and its counters, with a *modelled* Atlas 910B2 time (a timeline of every
instruction on its pipe): an estimate for comparing kernel designs, never a measured NPU time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ascend_attn import _sim


@dataclass
class SimStats:
    """Counters of one simulated launch and the times the 910B2 model derives from them (estimates, never measured).

    The model of record is a timeline: every instruction starts when its pipe is free and its synchronisation allows,
    and lasts what the cost table (``csrc/sim/sim_config.h``, each figure cited or ASSUMED) says; ``modelled_us`` is
    when the last core finishes, plus the launch overhead. ``roofline_us`` (the busiest of each core's cube, vector and
    GM/L2 port, plus the launch) is its lower bound.
    """

    block_dim: int
    # per AIC core: gm_read_bytes, gm_write_bytes, cube_macs, vector_elems, vector_cycles (one per AIV),
    # gm_workspace_bytes (the part of the GM traffic to and from the workspace), l2_hit_bytes / l2_miss_bytes,
    # modelled_us / roofline_us of the core, busy_us (per pipe of each thread, the cube and the GM/L2 port)
    per_core: list[dict]
    modelled_us: float
    roofline_us: float
    cube_utilisation: float  # the cube's busy share of the kernel's time (launch overhead aside)
    critical: str  # the busiest unit of the core that finished last, e.g. "AIV 3 V" or "cube"
    useful_flops: int  # 2 * (head_dim + head_dim_v) * visible (query, key) pairs
    kv_splits: int = 1  # paged_attention: KV splits of the longest sequence (> 1: flash-decoding with a combine)
    heads_per_item: int = 1  # paged_attention: kv heads whose query rows share a work item (and each page's requests)
    modelled_tflops: float = field(init=False)
    launch_overhead_us: float = _sim.model_launch_overhead_us

    def __post_init__(self):
        self.modelled_tflops = self.useful_flops / (self.modelled_us * 1e6) if self.modelled_us > 0 else 0.0


@dataclass
class SimResult:
    out: torch.Tensor
    lse: torch.Tensor | None
    stats: SimStats


@dataclass
class SimGradResult:
    dq: torch.Tensor
    dk: torch.Tensor
    dv: torch.Tensor
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


def _paged_visible_pairs(cu_q: list[int], context_lens: list[int], window_left: int, window_right: int) -> int:
    """Visible (query, key) pairs of paged queries: sequence s's queries are the last positions of its context."""
    pairs = 0
    for s, ctx in enumerate(context_lens):
        q_len = cu_q[s + 1] - cu_q[s]
        pairs += _visible_pairs([0, q_len], [0, ctx], window_left, window_right)
    return pairs


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
    schedule_seed: int | None = None,
    trace: str | None = None,
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
            large to compute on CPU. Every rule is still checked.
        schedule_seed: switch between the simulated cores in an order drawn from this seed (reproducible adversarial
            interleavings). None: the core earliest in modelled time runs next, which makes the timeline
            deterministic. Races are detected either way: the detector follows the kernel's synchronisation, not the
            interleaving.
        trace: a path: write a Chrome / Perfetto trace of the launch there (a track per core x thread x pipe, a
            slice per instruction with its source line, bytes and MACs; open it in ui.perfetto.dev or
            chrome://tracing).

    Returns:
        :class:`SimResult` with ``out [total_q, heads, head_dim_v]``, ``lse`` (None unless asked) and ``stats``.
    """
    window = list(window_size)
    out, lse, raw = _sim.flash_attention_varlen(
        q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal, window, softcap,
        return_lse, num_cores, dry_run, schedule_seed, trace,
    )  # fmt: skip
    left, right = window
    if causal:
        right = 0
    pairs = _visible_pairs(cu_seqlens_q.tolist(), cu_seqlens_k.tolist(), left, right)
    stats = SimStats(useful_flops=2 * (q.shape[-1] + v.shape[-1]) * q.shape[1] * pairs, **raw)
    return SimResult(out, lse if return_lse else None, stats)


def flash_attn_varlen_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    *,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: torch.Tensor | None = None,
    deterministic: bool = False,
    num_cores: int = 24,
    dry_run: bool = False,
    schedule_seed: int | None = None,
    trace: str | None = None,
) -> SimGradResult:
    """Runs ``op_kernel/flash_attention_grad`` (the backward of :func:`flash_attn_varlen_func`) in the simulator.

    FlashAttention-2's backward with P recomputed from ``lse``: D = rowsum(dout * out), then per key tile of each kv
    head, over the query rows that see it, S = q k^T and dP = dout v^T on the cube, P and dS = P * (dP - D) on the
    vector, and dV += P^T dout, dK += dS^T q, dQ += dS k on the cube (fp32 accumulation). GQA/MQA sum dk/dv over the
    q heads of each kv head (K/V are never repeated).

    Args:
        dout: the gradient of ``out``, ``[total_q, heads, head_dim_v]``, q's dtype.
        q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal, window_size, softcap:
            the forward's arguments (:func:`flash_attn_varlen_func`; fp16/bf16, head dims multiples of 16).
        out: the forward's output ``[total_q, heads, head_dim_v]``.
        lse: the forward's lse, fp32 ``[heads, total_q]`` (``return_lse=True``).
        alibi_slopes: accepted for the op's signature, and rejected with a ValueError: the kernel (like its forward)
            has no alibi bias.
        deterministic: False (default) adds every key tile's share of dq into one fp32 accumulator with the cube's
            atomic add, in whatever order the cores reach it: the last bits of dq may differ run to run (on the NPU;
            here with ``schedule_seed``). True computes dq in query-major tasks that each own their rows (more cube
            work: S and dP are computed twice), so dq, dk and dv are bit-identical run to run. dk and dv are
            bit-identical either way.
        num_cores, dry_run, schedule_seed, trace: as :func:`flash_attn_varlen_func`.

    Returns:
        :class:`SimGradResult` with ``dq [total_q, heads, head_dim]``, ``dk [total_k, kv_heads, head_dim]``,
        ``dv [total_k, kv_heads, head_dim_v]`` in q's dtype and ``stats``; ``stats.useful_flops`` counts the five
        products of the backward, 2 * (3 * head_dim + 2 * head_dim_v) per visible (query, key) pair and q head.
    """
    window = list(window_size)
    dq, dk, dv, raw = _sim.flash_attention_varlen_backward(
        dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal,
        window, softcap, alibi_slopes, deterministic, num_cores, dry_run, schedule_seed, trace,
    )  # fmt: skip
    left, right = window
    if causal:
        right = 0
    pairs = _visible_pairs(cu_seqlens_q.tolist(), cu_seqlens_k.tolist(), left, right)
    stats = SimStats(useful_flops=2 * (3 * q.shape[-1] + 2 * v.shape[-1]) * q.shape[1] * pairs, **raw)
    return SimGradResult(dq, dk, dv, stats)


def paged_attention(
    q: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    cu_seqlens_q: torch.Tensor | None = None,
    softmax_scale: float | None = None,
    causal: bool = True,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    return_lse: bool = False,
    num_cores: int = 24,
    dry_run: bool = False,
    schedule_seed: int | None = None,
    trace: str | None = None,
) -> SimResult:
    """Runs ``op_kernel/paged_attention`` in the simulator; arguments as :func:`ascend_attn.paged_attention`.

    Args:
        q: ``[num_tokens, heads, head_dim]`` fp16/bf16 (head_dim a multiple of 16, at most 512).
        key_cache, value_cache: ``[num_blocks, block_size, kv_heads, head_dim(_v)]``, contiguous; block_size a
            multiple of 16 up to 512; at most 64 q heads per kv head.
        block_tables: int32 ``[num_seqs, max_blocks_per_seq]``; context_lens: int32 ``[num_seqs]``.
        cu_seqlens_q: int32 ``[num_seqs + 1]`` for multi-token queries (the last positions of each context);
            None: one query per sequence.
        num_cores, dry_run, schedule_seed, trace: as :func:`flash_attn_varlen_func`.

    Returns:
        :class:`SimResult` with ``out [num_tokens, heads, head_dim_v]``, ``lse`` fp32 ``[heads, num_tokens]`` (None
        unless asked) and ``stats``; ``stats.kv_splits`` > 1 when the KV length was split across cores,
        ``stats.heads_per_item`` > 1 when the q heads of that many kv heads shared each work item (GQA decode).
    """
    window = list(window_size)
    out, lse, raw = _sim.paged_attention(
        q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q, softmax_scale, causal, window, softcap,
        return_lse, num_cores, dry_run, schedule_seed, trace,
    )  # fmt: skip
    left, right = window
    if causal:
        right = 0
    cu = cu_seqlens_q.tolist() if cu_seqlens_q is not None else list(range(context_lens.numel() + 1))
    pairs = _paged_visible_pairs(cu, context_lens.tolist(), left, right)
    stats = SimStats(useful_flops=2 * (q.shape[-1] + value_cache.shape[-1]) * q.shape[1] * pairs, **raw)
    return SimResult(out, lse if return_lse else None, stats)


def reshape_and_cache(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    num_cores: int = 24,
    schedule_seed: int | None = None,
    trace: str | None = None,
) -> SimResult:
    """Runs ``op_kernel/reshape_and_cache`` in the simulator: writes key/value ``[num_tokens, kv_heads, head_dim(_v)]``
    into the contiguous fp16/bf16 caches ``[num_blocks, block_size, kv_heads, head_dim(_v)]`` in place at
    ``slot_mapping`` (int32/int64 ``[num_tokens]``; negative = padding, skipped; a repeated slot raises), like
    :func:`ascend_attn.reshape_and_cache`; ``schedule_seed`` and ``trace`` as :func:`flash_attn_varlen_func`.
    Returns a :class:`SimResult` with ``out = key_cache``, ``lse = None``."""
    raw = _sim.reshape_and_cache(key, value, key_cache, value_cache, slot_mapping, num_cores, schedule_seed, trace)
    return SimResult(key_cache, None, SimStats(useful_flops=0, **raw))
