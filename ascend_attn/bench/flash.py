"""CPU FlashAttention benchmark: ascend_attn vs torch SDPA on the shapes of reference/cpu_baseline.md §3.

Dense BSND shapes (fp32 / bf16, causal or not, plus GQA 32/8) against ``F.scaled_dot_product_attention``; the
varlen batch against a per-sequence SDPA loop and against pad + mask + SDPA. All in one process; ratio =
baseline time / our time (> 1: we are faster).
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

DENSE = [(1, 32, 1024, 128), (4, 32, 512, 128), (1, 8, 4096, 64), (1, 32, 2048, 128)]
GQA = (1, 32, 8, 2048, 128)  # batch, q heads, kv heads, seqlen, head_dim
VARLEN_LENGTHS = [1752, 1328, 1078, 599, 675, 145, 213, 96]

HEADER = ["ISA", "dtype", "case", "causal", "ours ms", "GFLOP/s", "baseline", "baseline ms", "ratio",
          "of fp32 GEMM peak", "of bf16 GEMM peak"]  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="first dense shape and a small varlen batch only")
    add_isa_argument(parser)


def _dense_case(dtype, batch, heads, kv_heads, seqlen, head_dim, causal, args):
    q = torch.randn(batch, seqlen, heads, head_dim, dtype=dtype)
    k = torch.randn(batch, seqlen, kv_heads, head_dim, dtype=dtype)
    v = torch.randn(batch, seqlen, kv_heads, head_dim, dtype=dtype)
    qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, k, v))
    gqa = heads != kv_heads
    ours = time_fn(lambda: ascend_attn.flash_attn_func(q, k, v, causal=causal), args.repeats, args.warmup)
    base = time_fn(
        lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal, enable_gqa=gqa), args.repeats, args.warmup
    )
    flops = 4 * batch * heads * seqlen * seqlen * head_dim * (0.5 if causal else 1.0)
    return ours, [("SDPA" + (" gqa" if gqa else ""), base)], flops


def _varlen_case(dtype, lengths, heads, head_dim, causal, args):
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    total, longest = int(cu[-1]), max(lengths)
    q, k, v = (torch.randn(total, heads, head_dim, dtype=dtype) for _ in range(3))

    def ours_fn():
        return ascend_attn.flash_attn_varlen_func(q, k, v, cu, cu, longest, longest, causal=causal)

    def loop_fn():
        out = torch.empty_like(q)
        for b in range(len(lengths)):
            s = slice(int(cu[b]), int(cu[b + 1]))
            qs, ks, vs = (x[s].transpose(0, 1) for x in (q, k, v))
            out[s] = F.scaled_dot_product_attention(qs, ks, vs, is_causal=causal).transpose(0, 1)
        return out

    valid = torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]  # [batch, longest]
    mask = valid[:, None, None, :]
    if causal:
        mask = mask & torch.ones(longest, longest, dtype=torch.bool).tril()[None, None]

    def pad_fn():
        padded = [torch.zeros(len(lengths), heads, longest, head_dim, dtype=dtype) for _ in range(3)]
        for b, n in enumerate(lengths):
            for dst, src in zip(padded, (q, k, v), strict=True):
                dst[b, :, :n] = src[int(cu[b]) : int(cu[b]) + n].transpose(0, 1)
        out = F.scaled_dot_product_attention(*padded, attn_mask=mask)
        return torch.cat([out[b, :, :n].transpose(0, 1) for b, n in enumerate(lengths)])

    ref = loop_fn().float()
    for name, fn in (("ours", ours_fn), ("pad+mask", pad_fn)):
        diff = (fn().float() - ref).abs().max().item()
        progress(f"    max |{name} - per-seq SDPA loop| = {diff:.2e}")
    ours = time_fn(ours_fn, args.repeats, args.warmup)
    loop = time_fn(loop_fn, args.repeats, args.warmup)
    pad = time_fn(pad_fn, max(2, args.repeats // 2), args.warmup)
    flops = sum(4 * heads * n * n * head_dim * (0.5 if causal else 1.0) for n in lengths)
    return ours, [("per-seq SDPA loop", loop), ("pad+mask SDPA", pad)], flops


def run(args: argparse.Namespace) -> str:
    """Measures and returns the Markdown report (also written to ``args.out`` if set)."""
    return report(args, measure(args))


def measure(args: argparse.Namespace) -> BenchResult:
    """Times every case of the grid ``args`` selects; progress goes to stderr."""
    torch.manual_seed(0)
    isas = selected_isas(args)
    with forced_isa(isas[0]) as isa:  # an ISA this CPU lacks fails here, before any measurement
        progress(f"ascend_attn CPU kernels: {isa}, torch threads: {torch.get_num_threads()}")
    progress("measuring this machine's GEMM peaks ...")
    peaks = gemm_peaks(args.repeats)
    fp32_name, bf16_name = peak_names(peaks)

    dense = DENSE[:1] if args.quick else DENSE
    lengths = VARLEN_LENGTHS[3:] if args.quick else VARLEN_LENGTHS
    cases = []  # (dtype name, case name, causal, function, its arguments)
    for dname in selected_dtypes(args):
        dtype = DTYPES[dname]
        for causal in (False, True):
            for b, h, s, d in dense:
                cases.append(
                    (dname, f"dense {(b, h, s, d)}", causal, _dense_case, (dtype, b, h, h, s, d, causal, args))
                )
            if not args.quick:
                b, h, hk, s, d = GQA
                cases.append(
                    (dname, f"GQA {h}/{hk} {(b, s, d)}", causal, _dense_case, (dtype, b, h, hk, s, d, causal, args))
                )
            name = f"varlen {len(lengths)} seqs H32 D128"
            cases.append((dname, name, causal, _varlen_case, (dtype, lengths, 32, 128, causal, args)))

    rows, speedups, used = [], [], []
    runs = [(isa, case) for isa in isas for case in cases]
    for i, (forced, (dname, name, causal, fn, fn_args)) in enumerate(runs, 1):
        with forced_isa(forced) as isa:
            progress(f"[{i}/{len(runs)}] {isa} {dname} {name} causal={causal}")
            ours, baselines, flops = fn(*fn_args)
        used += [isa] if isa not in used else []
        gflops = flops / ours.median / 1e6
        fractions = [f"{gflops / peaks[fp32_name]:.2f}", f"{gflops / peaks[bf16_name]:.2f}"]
        for bname, base in baselines:
            ratio = base.median / ours.median
            rows.append([isa, dname, name, causal, str(ours), f"{gflops:.1f}", bname, str(base), f"{ratio:.2f}",
                         *fractions])  # fmt: skip
            label = f"{dname} {name}{' causal' if causal else ''} vs {bname}"
            speedups.append((f"{isa} {label}" if len(isas) > 1 else label, ratio))

    notes = [
        peaks_note(peaks),
        f"CPU kernels: {', '.join(used)}; times in ms as median (min-max) of {args.repeats} runs",
    ]
    return BenchResult("flash", notes, HEADER, rows, speedups)
