"""Timing, machine probes and table output shared by the benchmarks.

Every number a benchmark prints is measured in the same process; ratios compare runs made back to back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

# --dtype choices, the demo's; without --dtype a benchmark runs DEFAULT_DTYPES (fp16 only on request, so the default
# run does not grow by half).
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_DTYPES = ("fp32", "bf16")


# ASCEND_ATTN_CPU_ISA's values, widest first.
ISAS = ("avx512", "avx2", "portable")


def add_isa_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--isa",
        default="native",
        choices=["native", "all", *ISAS],
        help="CPU kernels: native (what the run-time dispatch picks), one ISA forced through ASCEND_ATTN_CPU_ISA, "
        "or all the ISAs this CPU has, one after the other",
    )


@contextmanager
def forced_isa(isa: str | None) -> Iterator[str]:
    """Runs the block with ASCEND_ATTN_CPU_ISA=isa (None: unchanged) and yields the ISA the kernels then use; an
    ISA this CPU lacks raises the kernels' own error, which names it."""
    import ascend_attn

    old = os.environ.get("ASCEND_ATTN_CPU_ISA")
    if isa is not None:
        os.environ["ASCEND_ATTN_CPU_ISA"] = isa
    try:
        yield ascend_attn.cpu_isa()
    finally:
        if old is None:
            os.environ.pop("ASCEND_ATTN_CPU_ISA", None)
        else:
            os.environ["ASCEND_ATTN_CPU_ISA"] = old


def available_isas() -> list[str]:
    """The ISAs of ISAS this CPU can run, widest first."""
    found = []
    for isa in ISAS:
        try:
            with forced_isa(isa):
                found.append(isa)
        except RuntimeError:  # the CPU lacks it
            pass
    return found


def selected_isas(args: argparse.Namespace) -> list[str | None]:
    """The ISAs a run measures (None: the native dispatch); ``bench all`` has no --isa and runs the native one."""
    choice = getattr(args, "isa", "native")
    return [None] if choice == "native" else available_isas() if choice == "all" else [choice]


def selected_dtypes(args: argparse.Namespace) -> list[str]:
    """The dtype names a run measures: ``--dtype`` if given, else DEFAULT_DTYPES."""
    return [args.dtype] if args.dtype else list(DEFAULT_DTYPES)


@dataclass
class Timing:
    """Milliseconds over the timed runs."""

    median: float
    min: float
    max: float

    def __str__(self) -> str:
        return f"{self.median:.2f} ({self.min:.2f}-{self.max:.2f})"


def time_fn(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, before: Callable[[], None] | None = None):
    """Runs ``fn`` ``warmup`` times, then ``repeats`` timed times; ``before`` runs untimed before each call."""
    for _ in range(warmup):
        if before:
            before()
        fn()
    samples = []
    for _ in range(repeats):
        if before:
            before()
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return Timing(statistics.median(samples), min(samples), max(samples))


def progress(message: str) -> None:
    """One progress line on stderr, so stdout stays a clean report."""
    print(message, file=sys.stderr, flush=True)


def gemm_peaks(repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of square GEMMs on this machine: torch.mm fp32 and oneDNN fp32 at 2048^3, torch.mm bf16 at 512^3 with
    B as stored (NN) and transposed (NT).

    bf16 is probed small because CPUs without native bf16 arithmetic can run torch.mm bf16 at well under 1 GFLOP/s, and
    in both layouts because torch's CPU kernel for one can be ten times slower than for the other (an AVX2 EPYC: NN
    1.4, NT 15 GFLOP/s), so one layout alone would understate the bf16 peak tenfold.
    """
    peaks = {}
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    peaks["torch.mm fp32"] = 2 * n**3 / time_fn(lambda: a @ b, repeats).median / 1e6
    if torch.backends.mkldnn.is_available():
        bias = torch.zeros(n)
        try:
            linear = time_fn(
                lambda: torch._C._nn.mkldnn_linear(a.to_mkldnn(), b.to_mkldnn(), bias.to_mkldnn()), repeats
            )
            peaks["oneDNN fp32"] = 2 * n**3 / linear.median / 1e6
        except RuntimeError:  # a torch build without the oneDNN fp32 linear: keep the other probes
            pass
    n = 512
    ab, bb = torch.randn(n, n, dtype=torch.bfloat16), torch.randn(n, n, dtype=torch.bfloat16)
    peaks["torch.mm bf16 NN (512^3)"] = 2 * n**3 / time_fn(lambda: ab @ bb, 1).median / 1e6
    peaks["torch.mm bf16 NT (512^3)"] = 2 * n**3 / time_fn(lambda: ab @ bb.t(), 1).median / 1e6
    return peaks


def peak_names(peaks: dict[str, float]) -> tuple[str, str]:
    """The probes of ``gemm_peaks`` a table divides by: the fastest fp32 one and the fastest bf16 one."""
    return (
        max((n for n in peaks if "fp32" in n), key=peaks.get),
        max((n for n in peaks if "bf16" in n), key=peaks.get),
    )


def peaks_note(peaks: dict[str, float], bf16: bool = True) -> str:
    """The report line naming every probe of ``gemm_peaks`` and the peaks used (the bf16 one only if ``bf16``)."""
    fp32_name, bf16_name = peak_names(peaks)
    lines = ", ".join(f"{n} {v:.1f}" for n, v in peaks.items())
    used = f"fp32 peak used: {fp32_name}" + (f", bf16 peak used: {bf16_name}" if bf16 else "")
    return f"GEMM peaks measured in this run (GFLOP/s): {lines}; {used}"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class BenchResult:
    """One benchmark's measurements: notes and a table for the report, and the speedup of every row for charts."""

    name: str
    notes: list[str]
    header: list[str]
    rows: list[list[object]]
    speedups: list[tuple[str, float]]  # (case label, baseline ms / our ms), one per row; none for modelled figures
    after: list[str] = field(default_factory=list)  # lines after the table (e.g. a second table)

    def markdown(self) -> str:
        """The notes, then the table, then ``after``."""
        tail = ["", *self.after] if self.after else []
        return "\n".join([*self.notes, "", markdown_table(self.header, self.rows), *tail])


def report(args: argparse.Namespace, result: BenchResult) -> str:
    """The benchmark's Markdown report; also written to ``args.out/<name>.md`` if asked."""
    text = result.markdown()
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(args.out, f"{result.name}.md").write_text(text + "\n")
    return text
