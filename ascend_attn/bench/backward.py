"""CPU FlashAttention training step benchmark: forward + backward of ascend_attn vs torch SDPA's math and flash
CPU backends, and the peak memory each allocates.

Dense BSND shapes (fp32 / bf16, causal or not, plus GQA 32/8) and the varlen batch of ``bench flash`` (SDPA as a
per-sequence loop over the packed tensors). One step = forward, then backward of a fixed dout into q, k and v, all
in one process; ratio = baseline time / our time (> 1: we are faster). GFLOP/s count 14 d FLOPs per visible
(query, key) pair and head (the forward's two products and the backward's five, d = head_dim = head_dim_v; causal
halves the pairs, as in ``bench flash``); "ratio bound at GEMM peak" is the baseline's time over the time of those
FLOPs at the fp32 GEMM peak measured in the same run: the ratio a kernel doing only them at that peak would reach.
Peak memory: the largest total of tensor allocations alive during one step, from the torch profiler's allocation
events; extra memory: that peak less the step's own results (out and the gradients of q, k, v), plus, for
ascend_attn, the kernel scratch its threads keep outside torch's allocator.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

import ascend_attn
from ascend_attn.bench import model
from ascend_attn.bench.common import (
    DTYPES,
    BenchResult,
    gemm_peaks,
    markdown_table,
    peak_names,
    peaks_note,
    progress,
    report,
    selected_dtypes,
    time_fn,
)
from ascend_attn.bench.flash import VARLEN_LENGTHS

DENSE = (1, 32, 2048, 128)  # batch, heads, seqlen, head_dim
GQA = (1, 32, 8, 2048, 128)  # batch, q heads, kv heads, seqlen, head_dim
MEMORY = (1, 8, 4096, 128)  # fp32 causal; 8 heads keep SDPA math's S x S tensors (0.5 GiB each) affordable
QUICK_DENSE = (1, 4, 512, 64)
QUICK_MEMORY = (1, 2, 1024, 64)
BACKENDS = {"SDPA math": SDPBackend.MATH, "SDPA flash": SDPBackend.FLASH_ATTENTION}

HEADER = ["ISA", "dtype", "case", "causal", "ours ms", "GFLOP/s", "of fp32 GEMM peak", "baseline", "baseline ms",
          "baseline GFLOP/s", "ratio", "ratio vs fastest SDPA", "ratio bound at GEMM peak"]  # fmt: skip
# The MODELLED 910B2 rows of the Ascend C backward (bench model's table, same timeline model): fp16, 32 heads, d 128.
MODEL_HEADS, MODEL_HEAD_DIM, MODEL_CORES = 32, 128, 24
MEMORY_HEADER = ["case", "implementation", "peak MiB", "extra MiB", "SDPA's extra / ours"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a small dense shape and a small varlen batch only")
    parser.add_argument(
        "--model-seqlens",
        type=int,
        nargs="*",
        default=[1024],
        help="sequence lengths of the MODELLED 910B2 rows of the Ascend C backward (simulator dry runs; S = 8192 "
        "takes about half an hour here; none: no modelled rows)",
    )


class _Step:
    """One training step of an attention function over leaves that require grad: forward, backward of ``dout``."""

    def __init__(self, forward, inputs, dout):
        self.forward = forward
        self.leaves = [x.detach().requires_grad_() for x in inputs]
        self.dout = dout

    def clear(self) -> None:
        for x in self.leaves:
            x.grad = None

    def result_bytes(self) -> int:
        """Bytes of what a step must produce: out (dout's size) and one gradient per leaf."""
        tensors = [self.dout, *self.leaves]
        return sum(x.numel() * x.element_size() for x in tensors)

    def __call__(self) -> None:
        self.forward(*self.leaves).backward(self.dout)


def _sdpa_backend(backend, fn):
    def run(*args):
        with sdpa_kernel(backend):
            return fn(*args)

    return run


def _dense_steps(dtype, batch, heads, kv_heads, seqlen, head_dim, causal):
    """(ours, {baseline name: step}) on the same data: ours in BSND, SDPA on contiguous BHSD copies."""
    q = torch.randn(batch, seqlen, heads, head_dim, dtype=dtype)
    k, v = (torch.randn(batch, seqlen, kv_heads, head_dim, dtype=dtype) for _ in range(2))
    dout = torch.randn_like(q)
    gqa = heads != kv_heads
    ours = _Step(lambda q, k, v: ascend_attn.flash_attn_func(q, k, v, causal=causal), (q, k, v), dout)
    bhsd = [x.transpose(1, 2).contiguous() for x in (q, k, v, dout)]

    def sdpa(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

    return ours, {name: _Step(_sdpa_backend(b, sdpa), bhsd[:3], bhsd[3]) for name, b in BACKENDS.items()}


def _varlen_steps(dtype, lengths, heads, head_dim, causal):
    """(ours, {baseline name: step}): flash_attn_varlen_func vs SDPA per sequence over slices of the packed tensors
    (the gradients flow back into the same packed leaves)."""
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    total, longest = int(cu[-1]), max(lengths)
    q, k, v, dout = (torch.randn(total, heads, head_dim, dtype=dtype) for _ in range(4))

    def ours(q, k, v):
        return ascend_attn.flash_attn_varlen_func(q, k, v, cu, cu, longest, longest, causal=causal)

    def loop(q, k, v):
        outs = []
        for b in range(len(lengths)):
            s = slice(int(cu[b]), int(cu[b + 1]))
            qs, ks, vs = (x[None, s].transpose(1, 2) for x in (q, k, v))  # [1, heads, length, head_dim]
            outs.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=causal)[0].transpose(0, 1))
        return torch.cat(outs)

    baselines = {name: _Step(_sdpa_backend(b, loop), (q, k, v), dout) for name, b in BACKENDS.items()}
    return _Step(ours, (q, k, v), dout), baselines


def _time(step: _Step, args: argparse.Namespace):
    """Median step time, or None when this SDPA backend rejects the case."""
    try:
        return time_fn(step, args.repeats, args.warmup, before=step.clear)
    except RuntimeError as error:
        progress(f"    skipped: {str(error).splitlines()[0]}")
        return None


def peak_bytes(step: _Step) -> int:
    """The largest total of tensor bytes allocated and alive at once during one step (inputs excluded: they exist
    before it), from the profiler's allocation and free events in time order."""
    step.clear()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=_start)
    alive = peak = 0
    for event in events:
        alive += event.nbytes()  # negative for a free
        peak = max(peak, alive)
    step.clear()
    return peak


def _start(event) -> int:
    return event.start_ns()


def _memory_table(shape) -> list[list[object]]:
    batch, heads, seqlen, head_dim = shape
    ours, baselines = _dense_steps(torch.float32, batch, heads, heads, seqlen, head_dim, True)
    name = f"fp32 causal {shape}"
    progress(f"peak memory {name} ...")
    mine = peak_bytes(ours)
    mine_extra = mine - ours.result_bytes() + ascend_attn.ops.cpu_scratch_bytes()
    rows = [[name, "ascend_attn", f"{mine / 2**20:.1f}", f"{mine_extra / 2**20:.1f}", ""]]
    for bname, step in baselines.items():
        with contextlib.suppress(RuntimeError):  # a backend that rejects the case has no row
            theirs = peak_bytes(step)
            extra = theirs - step.result_bytes()
            rows.append([name, bname, f"{theirs / 2**20:.1f}", f"{extra / 2**20:.1f}", f"{extra / mine_extra:.1f}"])
    return rows


def run(args: argparse.Namespace) -> str:
    """Measures and returns the Markdown report (also written to ``args.out`` if set)."""
    return report(args, measure(args))


def measure(args: argparse.Namespace) -> BenchResult:
    """Times every case of the grid ``args`` selects; progress goes to stderr."""
    torch.manual_seed(0)
    progress(f"ascend_attn CPU kernels: {ascend_attn.cpu_isa()}, torch threads: {torch.get_num_threads()}")
    batch, heads, seqlen, head_dim = QUICK_DENSE if args.quick else DENSE
    lengths = VARLEN_LENGTHS[5:] if args.quick else VARLEN_LENGTHS
    cases = []  # (dtype name, case name, causal, steps function, its arguments, FLOPs of one step)
    for dname in selected_dtypes(args):
        dtype = DTYPES[dname]
        for causal in (False, True):
            pairs = 0.5 if causal else 1.0  # visible (query, key) pairs per S^2
            shape = (batch, heads, seqlen, head_dim)
            dense_args = (dtype, batch, heads, heads, seqlen, head_dim, causal)
            flops = 14 * head_dim * batch * heads * seqlen**2 * pairs
            cases.append((dname, f"dense {shape}", causal, _dense_steps, dense_args, flops))
            if not args.quick:
                b, h, hk, s, d = GQA
                flops = 14 * d * b * h * s**2 * pairs
                cases.append(
                    (dname, f"GQA {h}/{hk} {(b, s, d)}", causal, _dense_steps, (dtype, b, h, hk, s, d, causal), flops)
                )
            name = f"varlen {len(lengths)} seqs H32 D128"
            flops = sum(14 * 128 * 32 * n**2 * pairs for n in lengths)
            cases.append((dname, name, causal, _varlen_steps, (dtype, lengths, 32, 128, causal), flops))

    # Memory first: the kernel scratch the threads hold is the largest any call so far needed.
    memory_rows = _memory_table(QUICK_MEMORY if args.quick else MEMORY)
    progress("measuring this machine's GEMM peaks ...")
    peaks = gemm_peaks(args.repeats)
    peak = peaks[peak_names(peaks)[0]]
    rows, speedups, isa = [], [], ascend_attn.cpu_isa()
    for i, (dname, name, causal, steps, steps_args, flops) in enumerate(cases, 1):
        progress(f"[{i}/{len(cases)}] {dname} {name} causal={causal}")
        ours_step, baselines = steps(*steps_args)
        ours = time_fn(ours_step, args.repeats, args.warmup, before=ours_step.clear)
        times = {bname: _time(step, args) for bname, step in baselines.items()}
        measured = [t.median for t in times.values() if t is not None]
        fastest = f"{min(measured) / ours.median:.2f}" if measured else "no SDPA backend ran"
        gflops = flops / ours.median / 1e6
        ours_cols = [str(ours), f"{gflops:.1f}", f"{gflops / peak:.2f}"]
        at_peak_ms = flops / peak / 1e6
        for bname, base in times.items():
            if base is None:
                rows.append([isa, dname, name, causal, *ours_cols, bname, "rejected the case", "", "", fastest, ""])
                continue
            ratio = base.median / ours.median
            rows.append([isa, dname, name, causal, *ours_cols, bname, str(base), f"{flops / base.median / 1e6:.1f}",
                         f"{ratio:.2f}", fastest, f"{base.median / at_peak_ms:.2f}"])  # fmt: skip
            speedups.append((f"{dname} {name}{' causal' if causal else ''} vs {bname}", ratio))

    notes = [
        peaks_note(peaks, bf16=False),
        f"CPU kernels: {ascend_attn.cpu_isa()}, torch threads: {torch.get_num_threads()}; one step = forward + "
        f"backward into q, k, v; times in ms as median (min-max) of {args.repeats} runs",
    ]
    after = [
        "Memory of one step: peak = tensor allocations alive at once (torch profiler), out, lse and the gradients "
        "included; extra = peak less out and the gradients, plus ascend_attn's per-thread kernel scratch (kept "
        "between calls outside torch's allocator, ascend_attn.ops.cpu_scratch_bytes()):",
        "",
        markdown_table(MEMORY_HEADER, memory_rows),
    ]
    model_seqlens = getattr(args, "model_seqlens", [1024])
    if model_seqlens:
        heads, d, cores = (2, 64, 2) if args.quick else (MODEL_HEADS, MODEL_HEAD_DIM, MODEL_CORES)
        model_seqlens = [256] if args.quick else model_seqlens
        progress("modelled Ascend C backward (simulator, dry run)")
        modelled = model.flash_backward_rows(model_seqlens, heads, d, cores)
        after += ["", *model.notes(cores),
                  f"flash_attention_backward fp16 (dq by atomic adds, the default), batch 1, {heads} heads, d {d}; "
                  "TFLOPS count its five products:", "", markdown_table(model.FLASH_HEADER, modelled)]  # fmt: skip
    return BenchResult("backward", notes, HEADER, rows, speedups, after=after)
