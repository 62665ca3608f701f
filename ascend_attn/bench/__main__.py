"""Command line: ``python -m ascend_attn.bench {flash,paged} [--repeats N] [--warmup N] [--dtype fp32|bf16]``
``[--out DIR]``."""

from __future__ import annotations

import argparse

from ascend_attn.bench import flash, paged

BENCHMARKS = {"flash": flash, "paged": paged}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ascend_attn.bench", description=__doc__)
    sub = parser.add_subparsers(dest="name", required=True)
    for name, module in BENCHMARKS.items():
        p = sub.add_parser(name, help=module.__doc__.splitlines()[0])
        p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median is reported)")
        p.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
        p.add_argument("--dtype", choices=["fp32", "bf16"], help="only this dtype")
        p.add_argument("--out", help="also write the Markdown report into this directory")
        module.add_arguments(p)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    print(BENCHMARKS[args.name].run(args))


if __name__ == "__main__":
    main()
