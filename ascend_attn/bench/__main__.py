"""Command line: ``python -m ascend_attn.bench {flash,paged,backward} [--repeats N] [--warmup N]``
``[--dtype fp32|bf16|fp16] [--out DIR]``; ``python -m ascend_attn.bench model`` prints the Ascend C kernels' modelled
910B2 figures (simulator, no timing); ``python -m ascend_attn.bench all --out DIR [--quick] ...`` runs every
benchmark and writes DIR/report.md and DIR/report.png; ``python -m ascend_attn.bench ring --world-size 2|4``
(multi-process, not in all)."""

from __future__ import annotations

import argparse

from ascend_attn.bench import backward, flash, model, paged, ring
from ascend_attn.bench.common import DEFAULT_DTYPES, DTYPES, progress
from ascend_attn.bench.summary import write_report

BENCHMARKS = {"flash": flash, "paged": paged, "backward": backward, "model": model}
SEPARATE = {"ring": ring}  # spawns processes: run on its own, not by all


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median is reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    p.add_argument("--dtype", choices=list(DTYPES), help=f"only this dtype (default: {', '.join(DEFAULT_DTYPES)})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ascend_attn.bench", description=__doc__)
    sub = parser.add_subparsers(dest="name", required=True)
    for name, module in {**BENCHMARKS, **SEPARATE}.items():
        p = sub.add_parser(name, help=module.__doc__.splitlines()[0])
        _add_common(p)
        p.add_argument("--out", help="also write the Markdown report into this directory")
        module.add_arguments(p)
    p = sub.add_parser("all", help=f"every benchmark ({', '.join(BENCHMARKS)}) into DIR/report.md and report.png")
    _add_common(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for report.md and report.png")
    p.add_argument("--quick", action="store_true", help="each benchmark's --quick grid")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.name != "all":
        print({**BENCHMARKS, **SEPARATE}[args.name].run(args))
        return
    results = []
    for name, module in BENCHMARKS.items():
        progress(f"== {name}")
        results.append(module.measure(args))
    text, messages = write_report(results, args.out)
    print(text)
    for message in messages:
        progress(message)


if __name__ == "__main__":
    main()
