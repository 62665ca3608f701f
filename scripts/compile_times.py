"""Compile time of every translation unit of the last build, from ninja's logs (setup.py keeps one object directory
per extension under build/temp.*, each with its .ninja_log), slowest first, as a Markdown table.

    python scripts/compile_times.py [BUILD_TEMP]

Times are wall-clock seconds of each compiler run as ninja recorded them: with two jobs on two cores they are close
to CPU time on an idle machine, and inflated on a busy one.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_log(path: str) -> dict[str, float]:
    """{object path: seconds} of the latest run of each output in a ninja log (format v5 or later: tab-separated
    start ms, end ms, mtime, output, command hash)."""
    times: dict[str, float] = {}
    with open(path) as f:
        header = f.readline()
        if not header.startswith("# ninja log v"):
            raise ValueError(f"{path} is not a ninja log (first line {header.strip()!r})")
        for line in f:
            start, end, _mtime, output, _hash = line.rstrip("\n").split("\t")
            times[output] = (int(end) - int(start)) / 1000  # later lines are later runs
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_temp", nargs="?", help="setup.py's build directory (default: build/temp.* here)")
    args = parser.parse_args(argv)
    temps = [args.build_temp] if args.build_temp else sorted(glob.glob(os.path.join(ROOT, "build", "temp.*")))
    logs = [log for temp in temps for log in sorted(glob.glob(os.path.join(temp, "*", ".ninja_log")))]
    if not logs:
        print("no ninja logs under build/temp.*/<extension>/: build first (pip install -e . or setup.py build_ext)")
        return 1
    rows = []
    for log in logs:
        extension = os.path.basename(os.path.dirname(log))
        for output, seconds in read_log(log).items():
            rows.append((seconds, extension, os.path.relpath(output, os.path.dirname(log))))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print("| translation unit | extension | seconds | share |")
    print("|---|---|---:|---:|")
    for seconds, extension, unit in rows:
        print(f"| {unit.removesuffix('.o')}.cpp | {extension} | {seconds:.1f} | {seconds / total:.0%} |")
    print(f"| total ({len(rows)} units) | | {total:.1f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
