"""scripts/check_device_code.py: the real kernels are clean device code; planted bugs are reported.

Each fixture in tests/device_check/ marks what the checker must report with a ``// expect: <text>`` line just above
the offending line; the checker must report exactly those and nothing else.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "device_check"
SCRIPT = REPO / "scripts" / "check_device_code.py"

_spec = importlib.util.spec_from_file_location("check_device_code", SCRIPT)
assert _spec is not None and _spec.loader is not None
cdc = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cdc  # dataclasses look their module up there
_spec.loader.exec_module(cdc)


def expectations(path: Path) -> list[tuple[int, str]]:
    """(line, text) for every ``// expect: text`` marker: the problem is reported on the line below it."""
    lines = path.read_text().splitlines()
    return [(i + 2, m.group(1)) for i, line in enumerate(lines) if (m := re.search(r"// expect: (.*)$", line))]


@pytest.fixture(scope="module")
def fixture_report() -> tuple[list[str], list[str]]:
    """Problem lines and checked kernels for all fixtures, parsed in one run (the API headers are parsed once)."""
    checker = cdc.check(FIXTURES, sorted(FIXTURES.glob("*.cpp")))
    return checker.lines(), checker.kernels


def test_real_kernels_are_device_code() -> None:
    op_kernel = REPO / "op_kernel"
    checker = cdc.check(op_kernel, cdc.kernel_entries(op_kernel))
    assert set(checker.kernels) >= {"flash_attention", "paged_attention", "reshape_and_cache"}, checker.kernels
    problems = "\n".join(checker.lines())
    assert not problems, f"scripts/check_device_code.py reports problems in op_kernel/:\n{problems}"


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.cpp")))
def test_fixture_reports_exactly_its_planted_bugs(fixture: str, fixture_report: tuple[list[str], list[str]]) -> None:
    lines, kernels = fixture_report
    assert fixture in kernels, f"no __global__ kernel '{fixture}' found in {fixture}.cpp"
    path = FIXTURES / f"{fixture}.cpp"
    prefix = f"{path.relative_to(REPO)}:"
    got = [line for line in lines if line.startswith(prefix)]
    want = expectations(path)
    for line_no, text in want:
        assert any(g.startswith(f"{prefix}{line_no}: ") and text in g for g in got), (
            f"expected '{text}' at {prefix}{line_no}; the checker reported:\n" + "\n".join(got)
        )
    unexpected = [g for g in got if not any(g.startswith(f"{prefix}{n}: ") for n, _ in want)]
    assert not unexpected, "unexpected reports:\n" + "\n".join(unexpected)
    assert fixture != "clean" or not want, "the clean fixture plants no bug"


def test_fixture_problems_stay_in_their_files(fixture_report: tuple[list[str], list[str]]) -> None:
    # A parse error or a problem in a shared header would belong to no fixture and pass the per-fixture test.
    lines, _ = fixture_report
    outside = [line for line in lines if not line.startswith(f"{FIXTURES.relative_to(REPO)}/")]
    assert not outside, "\n".join(outside)


def test_exit_status_and_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert cdc.main(["--root", str(FIXTURES), str(FIXTURES / "clean.cpp")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("check_device_code: 1 kernels checked (clean)")
    assert cdc.main(["--root", str(FIXTURES), str(FIXTURES / "lambda_arg.cpp")]) == 1
    assert "lambda in function 'lambda_arg'" in capsys.readouterr().out


def test_missing_libclang_is_a_clear_error() -> None:
    hide = "import sys, runpy; sys.modules['clang'] = None; runpy.run_path(sys.argv[1], run_name='__main__')"
    r = subprocess.run([sys.executable, "-c", hide, str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "libclang Python package is missing" in r.stderr, r.stderr


CANN_91 = "-DASC_DEVKIT_VERSION_NUM=90100000"  # what CANN 9.1's force-included asc_devkit_version.h defines


def compile_against_sim(source: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = ["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wno-unknown-pragmas", f"-I{REPO / 'csrc'}"]
    cmd += [f"-I{REPO / 'csrc' / 'sim'}", *flags, str(source)]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.parametrize("kernel", ["flash_attention", "flash_attention_grad", "paged_attention", "reshape_and_cache"])
def test_kernels_compile_against_the_cann_91_api(kernel: str) -> None:
    """CANN 9.1 renamed BlockReduceMax / BlockReduceSum (which the kernels' row reductions use) to ReduceDataBlock,
    and WholeReduce* to ReduceRepeat, removing the old names; the simulator's headers built as 9.1 offer only the new
    spellings (the default build, as 8.x, only the old ones), so every kernel compiles against both."""
    done = compile_against_sim(REPO / "csrc" / "sim" / f"launch_sim_{kernel}.cpp", CANN_91)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize(
    ("flags", "call"),
    [
        ((), "ReduceDataBlock<AscendC::ReduceType::SUM>(d, s, 64, 1, 1, 1, 8)"),
        ((), "ReduceRepeat<AscendC::ReduceType::SUM>(d, s, 64, 1, 1, 1, 8)"),
        ((CANN_91,), "BlockReduceSum(d, s, 1, 64, 1, 1, 8)"),
        ((CANN_91,), "WholeReduceSum(d, s, 64, 1, 1, 1, 8)"),
    ],
)
def test_each_cann_version_has_only_its_reduction_spelling(tmp_path: Path, flags: tuple[str, ...], call: str) -> None:
    source = tmp_path / "spelling.cpp"
    source.write_text(
        '#include "kernel_operator.h"\n'
        "void f(const AscendC::LocalTensor<float>& d, const AscendC::LocalTensor<float>& s) {\n"
        f"  AscendC::{call};\n"
        "}\n"
    )
    done = compile_against_sim(source, *flags)
    assert done.returncode != 0 and call.split("<")[0].split("(")[0] in done.stderr, done.stderr[-2000:]
