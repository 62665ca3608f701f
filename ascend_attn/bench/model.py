"""Modelled Atlas 910B2 figures of the Ascend C kernels: simulator timeline beside its roofline (estimates only).

Runs op_kernel/flash_attention, its backward op_kernel/flash_attention_grad and op_kernel/paged_attention in the
simulator in dry-run mode (the instruction
stream and its timing are exact, the arithmetic is skipped) and prints, per shape, the timeline's time (every
instruction on its pipe, ordered by flags, queues and waits; ``csrc/sim/sim_config.h`` holds the cited costs)
beside the roofline's (the busiest unit of each core, a lower bound), the fraction of the cube peak or of the GM
bandwidth the timeline gives, and the unit that kept the last core busiest. All times are MODELLED estimates, never
NPU measurements.
"""

from __future__ import annotations

import argparse

import torch

from ascend_attn import _sim, sim
from ascend_attn.bench.common import BenchResult, markdown_table, progress, report

FLASH_HEADER = ["seqlen", "causal", "timeline us", "roofline us", "timeline / roofline", "TFLOPS", "% cube peak",
                "cube utilisation", "critical unit"]  # fmt: skip
PAGED_HEADER = ["seqs", "context", "timeline us", "roofline us", "timeline / roofline", "K/V GB/s",
                "fraction of GM BW", "same, launch aside", "KV splits", "kv heads per item",
                "critical unit"]  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seqlens", type=int, nargs="+", default=[1024, 8192], help="flash_attention lengths")
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8, help="paged_attention kv heads")
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--block-size", type=int, default=128, help="paged_attention page size")
    parser.add_argument("--seqs", type=int, nargs="+", default=[1, 8, 64], help="paged_attention sequences")
    parser.add_argument("--contexts", type=int, nargs="+", default=[1024, 8192], help="paged_attention contexts")
    parser.add_argument("--cores", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="one shape of each kernel")


def cube_peak_tflops(cores: int) -> float:
    return _sim.model_cube_tflops_per_core * cores


def flash_rows(seqlens: list[int], heads: int, d: int, cores: int) -> list[list[object]]:
    """One row per (seqlen, causal) of fp16 self-attention, batch 1."""
    rows, peak = [], cube_peak_tflops(cores)
    for s in seqlens:
        # Distinct tensors (never read in a dry run, so never touched): one tensor as q, k and v would let the L2
        # model find K's and V's lines already brought in by the other's reads.
        q, k, v = (torch.empty(s, heads, d, dtype=torch.float16) for _ in range(3))
        cu = torch.tensor([0, s], dtype=torch.int32)
        for causal in (False, True):
            progress(f"  flash_attention seqlen {s} causal {causal} ...")
            st = sim.flash_attn_varlen_func(q, k, v, cu, cu, s, s, causal=causal, num_cores=cores,
                                            dry_run=True).stats  # fmt: skip
            rows.append([s, "yes" if causal else "no", f"{st.modelled_us:.0f}", f"{st.roofline_us:.0f}",
                         f"{st.modelled_us / st.roofline_us:.2f}", f"{st.modelled_tflops:.1f}",
                         f"{100 * st.modelled_tflops / peak:.1f}%", f"{100 * st.cube_utilisation:.0f}%",
                         st.critical])  # fmt: skip
    return rows


def flash_backward_rows(seqlens: list[int], heads: int, d: int, cores: int, deterministic: bool = False):
    """One row per (seqlen, causal) of the fp16 self-attention backward, batch 1, in the forward table's columns;
    TFLOPS count the backward's five products (2 * 5 * d per visible pair and head at d = dv)."""
    rows, peak = [], cube_peak_tflops(cores)
    for s in seqlens:
        # Distinct tensors (never read in a dry run, so never touched), so the L2 model sees distinct addresses.
        dout, q, k, v, out = (torch.empty(s, heads, d, dtype=torch.float16) for _ in range(5))
        lse = torch.empty(heads, s)
        cu = torch.tensor([0, s], dtype=torch.int32)
        for causal in (False, True):
            progress(f"  flash_attention_backward seqlen {s} causal {causal} ...")
            st = sim.flash_attn_varlen_backward(dout, q, k, v, out, lse, cu, cu, s, s, causal=causal,
                                                deterministic=deterministic, num_cores=cores,
                                                dry_run=True).stats  # fmt: skip
            rows.append([s, "yes" if causal else "no", f"{st.modelled_us:.0f}", f"{st.roofline_us:.0f}",
                         f"{st.modelled_us / st.roofline_us:.2f}", f"{st.modelled_tflops:.1f}",
                         f"{100 * st.modelled_tflops / peak:.1f}%", f"{100 * st.cube_utilisation:.0f}%",
                         st.critical])  # fmt: skip
    return rows


def paged_rows(seqs: list[int], contexts: list[int], heads: int, kv_heads: int, d: int, block: int, cores: int):
    """One row per (sequences, context) of fp16 decode: one query token per sequence."""
    rows, bw = [], _sim.model_gm_bytes_per_second
    for n in seqs:
        for ctx in contexts:
            progress(f"  paged_attention {n} x {ctx} ...")
            per_seq = -(-ctx // block)
            # Two caches (never read in a dry run): one tensor as both would make every V page an L2 hit on the
            # lines its K page just brought in.
            key_cache, value_cache = (torch.empty(n * per_seq, block, kv_heads, d, dtype=torch.float16) for _ in "kv")
            tables = torch.arange(n * per_seq, dtype=torch.int32).view(n, per_seq)
            lens = torch.full((n,), ctx, dtype=torch.int32)
            q = torch.zeros(n, heads, d, dtype=torch.float16)
            st = sim.paged_attention(q, key_cache, value_cache, tables, lens, num_cores=cores, dry_run=True).stats
            kv = 2 * n * ctx * kv_heads * d * 2  # K and V of every key, once
            rate, kernel_rate = kv / (st.modelled_us * 1e-6), kv / ((st.modelled_us - st.launch_overhead_us) * 1e-6)
            rows.append([n, ctx, f"{st.modelled_us:.1f}", f"{st.roofline_us:.1f}",
                         f"{st.modelled_us / st.roofline_us:.2f}", f"{rate / 1e9:.0f}", f"{rate / bw:.2f}",
                         f"{kernel_rate / bw:.2f}", st.kv_splits, st.heads_per_item, st.critical])  # fmt: skip
    return rows


def notes(cores: int) -> list[str]:
    m = _sim.model
    return [
        f"MODELLED Atlas 910B2, {cores} cores: cube peak {cube_peak_tflops(cores):.0f} TFLOPS fp16, GM "
        f"{m['gm_bytes_per_second'] / 1e12:.1f} TB/s, L2 {m['l2_bytes_per_second'] / 1e12:.1f} TB/s, launch overhead "
        f"{_sim.model_launch_overhead_us:.0f} us (costs and their sources: csrc/sim/sim_config.h); estimates, not "
        "measurements",
        "timeline: every instruction on its pipe, ordered by the kernel's flags, queues and waits; roofline: the "
        "busiest cube, vector or GM/L2 port of any core (a lower bound); cube utilisation: multiply time at peak over "
        "the kernel time of the cores used; '% cube peak' counts the useful FLOPs over all cores' peak",
    ]


def measure(args: argparse.Namespace) -> BenchResult:
    """Simulates the grid ``args`` selects (``bench all`` passes only the common options: the rest default)."""
    defaults = argparse.ArgumentParser()
    add_arguments(defaults)
    args = argparse.Namespace(**{**vars(defaults.parse_args([])), **vars(args)})
    seqlens = [1024] if args.quick else args.seqlens
    seqs, contexts = ([8], [8192]) if args.quick else (args.seqs, args.contexts)
    progress("modelled figures (simulator, dry run)")
    flash = flash_rows(seqlens, args.heads, args.head_dim, args.cores)
    backward = flash_backward_rows(seqlens, args.heads, args.head_dim, args.cores)
    paged = paged_rows(seqs, contexts, args.heads, args.kv_heads, args.head_dim, args.block_size, args.cores)
    tail = [f"flash_attention_backward fp16 (dq by atomic adds, the default), batch 1, {args.heads} heads, d "
            f"{args.head_dim}; TFLOPS count its five products:", "", markdown_table(FLASH_HEADER, backward), "",
            f"paged_attention decode, {args.heads} q / {args.kv_heads} kv heads, d {args.head_dim}, block "
            f"{args.block_size}:", "", markdown_table(PAGED_HEADER, paged)]  # fmt: skip
    head = notes(args.cores) + [f"flash_attention fp16, batch 1, {args.heads} heads, d {args.head_dim}:"]
    return BenchResult("model", head, FLASH_HEADER, flash, [], after=tail)


def run(args: argparse.Namespace) -> str:
    """Simulates and returns the Markdown report (also written to ``args.out/model.md`` if set)."""
    return report(args, measure(args))
