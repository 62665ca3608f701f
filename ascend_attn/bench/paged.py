"""Paged decode benchmark: ascend_attn.paged_attention vs torch gather + SDPA / grouped matmul (cpu_baseline.md §4).

32 q heads / 8 kv heads, head_dim 128, one query per sequence, all sequences at the same context length, blocks
in a random order. The 32 MiB L3 is evicted before every timed call, so K/V come from DRAM. Effective bandwidth =
bytes of K and V the step needs / time, compared with this machine's read bandwidth probed next to each row.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import ascend_attn
from ascend_attn.bench.common import (
    DTYPES,
    BenchResult,
    add_isa_argument,
    forced_isa,
    gemm_peaks,
    peak_names,
    peaks_note,
    progress,
    report,
    selected_dtypes,
    selected_isas,
    time_fn,
)

HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128
BLOCK_SIZES = [16, 128]
NUM_SEQS = [1, 8, 32]
CONTEXTS = [512, 2048, 8192]
HEADER = ["ISA", "dtype", "block", "seqs", "ctx", "KV MiB", "ours ms", "GB/s", "of read BW", "BW now", "GFLOP/s",
          "of fp32 GEMM peak", "of bf16 GEMM peak", "best baseline", "baseline ms", "speedup"]  # fmt: skip

_EVICT = torch.empty(32 * 1024 * 1024)  # 128 MiB: writing it flushes a 32 MiB L3
_PROBE = torch.ones(128 * 1024 * 1024)  # 512 MiB for the read-bandwidth probe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="context 2048, 8 sequences, block 128 only")
    add_isa_argument(parser)


def evict_caches() -> None:
    _EVICT.fill_(1.0)


def read_bandwidth() -> float:
    """GB/s of a sum() over 512 MiB (all threads), median of 3."""
    return _PROBE.numel() * 4 / time_fn(lambda: _PROBE.sum(), 3, 1).median / 1e6


def _case(dtype, block_size, num_seqs, ctx, args):
    blocks_per_seq = ctx // block_size
    num_blocks = num_seqs * blocks_per_seq
    kc = torch.randn(num_blocks, block_size, KV_HEADS, HEAD_DIM, dtype=dtype)
    vc = torch.randn(num_blocks, block_size, KV_HEADS, HEAD_DIM, dtype=dtype)
    tables = torch.randperm(num_blocks).to(torch.int32).reshape(num_seqs, blocks_per_seq)
    lens = torch.full((num_seqs,), ctx, dtype=torch.int32)
    q = torch.randn(num_seqs, HEADS, HEAD_DIM, dtype=dtype)
    flat = tables.reshape(-1).long()
    k_buf = torch.empty(num_seqs * blocks_per_seq, block_size, KV_HEADS, HEAD_DIM, dtype=dtype)
    v_buf = torch.empty_like(k_buf)
    k_heads = torch.empty(num_seqs, KV_HEADS, ctx, HEAD_DIM, dtype=dtype)
    v_heads = torch.empty_like(k_heads)

    def ours():
        return ascend_attn.paged_attention(q, kc, vc, tables, lens)

    def gather_sdpa():  # allocating gather, then SDPA on [seqs, heads, ctx, dim]
        k = kc.index_select(0, flat).reshape(num_seqs, ctx, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = vc.index_select(0, flat).reshape(num_seqs, ctx, KV_HEADS, HEAD_DIM).transpose(1, 2)
        return F.scaled_dot_product_attention(q[:, :, None], k, v, enable_gqa=True)[:, :, 0]

    def gather_matmul():  # reused buffers, head-major copy, grouped-query matmul with fp32 softmax
        torch.index_select(kc, 0, flat, out=k_buf)
        torch.index_select(vc, 0, flat, out=v_buf)
        k_heads.copy_(k_buf.view(num_seqs, ctx, KV_HEADS, HEAD_DIM).transpose(1, 2))
        v_heads.copy_(v_buf.view(num_seqs, ctx, KV_HEADS, HEAD_DIM).transpose(1, 2))
        qg = q.view(num_seqs, KV_HEADS, HEADS // KV_HEADS, HEAD_DIM)
        scores = (qg @ k_heads.transpose(-1, -2)).float() * HEAD_DIM**-0.5
        return (scores.softmax(-1).to(dtype) @ v_heads).reshape(num_seqs, HEADS, HEAD_DIM)

    ref = gather_sdpa().float()
    for name, fn in (("ours", ours), ("gather+matmul", gather_matmul)):
        progress(f"    max |{name} - gather+SDPA| = {(fn().float() - ref).abs().max().item():.2e}")
    bw_now = read_bandwidth()
    variants = (("ours", ours), ("gather+SDPA", gather_sdpa), ("gather+matmul", gather_matmul))
    timings = {name: time_fn(fn, args.repeats, args.warmup, before=evict_caches) for name, fn in variants}
    kv_bytes = 2 * num_seqs * ctx * KV_HEADS * HEAD_DIM * kc.element_size()
    return timings, kv_bytes, bw_now


def run(args: argparse.Namespace) -> str:
    """Measures and returns the Markdown report (also written to ``args.out`` if set)."""
    return report(args, measure(args))


def measure(args: argparse.Namespace) -> BenchResult:
    """Times every case of the grid ``args`` selects; progress goes to stderr."""
    torch.manual_seed(0)
    isas = selected_isas(args)
    with forced_isa(isas[0]) as isa:  # an ISA this CPU lacks fails here, before any measurement
        progress(f"ascend_attn CPU kernels: {isa}, torch threads: {torch.get_num_threads()}")
    progress("measuring this machine's GEMM peaks and read bandwidth ...")
    peaks = gemm_peaks(args.repeats)
    fp32_name, bf16_name = peak_names(peaks)
    peak_bw = max(read_bandwidth() for _ in range(3))
    grid = [(bs, n, c) for bs in BLOCK_SIZES for n in NUM_SEQS for c in CONTEXTS]
    if args.quick:
        grid = [(128, 8, 2048)]
    cases = [(isa, d, *g) for isa in isas for d in selected_dtypes(args) for g in grid]
    rows, speedups, used = [], [], []
    for i, (forced, dname, bs, n, ctx) in enumerate(cases, 1):
        with forced_isa(forced) as isa:
            progress(f"[{i}/{len(cases)}] {isa} {dname} block {bs} seqs {n} ctx {ctx}")
            timings, kv_bytes, bw_now = _case(DTYPES[dname], bs, n, ctx, args)
        used += [isa] if isa not in used else []
        ours = timings.pop("ours")
        best_name, best = min(timings.items(), key=lambda item: item[1].median)
        gbs = kv_bytes / ours.median / 1e6
        gflops = 4 * n * HEADS * ctx * HEAD_DIM / ours.median / 1e6  # q·k and p·v of every head over the context
        rows.append([isa, dname, bs, n, ctx, f"{kv_bytes / 2**20:.0f}", str(ours), f"{gbs:.1f}", f"{gbs / peak_bw:.2f}",
                     f"{bw_now:.1f}", f"{gflops:.1f}", f"{gflops / peaks[fp32_name]:.3f}",
                     f"{gflops / peaks[bf16_name]:.3f}", best_name, str(best),
                     f"{best.median / ours.median:.1f}"])  # fmt: skip
        label = f"{dname} block {bs} seqs {n} ctx {ctx} vs {best_name}"
        speedups.append((f"{isa} {label}" if len(isas) > 1 else label, best.median / ours.median))
    notes = [
        f"read bandwidth (sum over 512 MiB, best of 3 probes at start): {peak_bw:.1f} GB/s; 'BW now' = probe "
        "before the row",
        f"{peaks_note(peaks)} (decode is bound by memory, not by these)",
        f"CPU kernels: {', '.join(used)}; times in ms as median (min-max) of {args.repeats} runs, L3 evicted",
    ]
    return BenchResult("paged", notes, HEADER, rows, speedups)
