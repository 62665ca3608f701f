"""scripts/build.sh and scripts/bench_npu.py fail with one clear line, never a shell or Python traceback;
scripts/compile_times.py tabulates ninja's logs.

build.sh is run on copies in a temporary tree with stand-in pythons, so no test ever starts a build.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def stand_in(path: Path, body: str) -> Path:
    """An executable shell script at `path` running `body`, in place of a program build.sh calls."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def fake_python(path: Path) -> Path:
    """An executable that, like a python without torch, fails `-c "import torch"`."""
    return stand_in(path, "exit 1\n")


def build_sh(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs a copy of scripts/build.sh whose project root is tmp_path."""
    script = tmp_path / "scripts" / "build.sh"
    script.parent.mkdir(exist_ok=True)
    shutil.copy(ROOT / "scripts" / "build.sh", script)
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    "args, option",
    [(["--soc"], "--soc"), (["--python"], "--python"), (["--python", "--cpu"], "--python"), (["--soc", ""], "--soc")],
    ids=["soc", "python", "python-then-option", "soc-empty"],
)
def test_option_without_value(tmp_path, args, option):
    r = build_sh(tmp_path, *args)
    assert r.returncode == 2
    assert r.stderr == f"build.sh: {option} needs a value (see the header of scripts/build.sh)\n"


def test_unknown_option(tmp_path):
    r = build_sh(tmp_path, "--gpu")
    assert r.returncode == 2 and r.stderr.startswith("build.sh: unknown option --gpu")


def test_cpu_uses_the_project_venv_and_names_it(tmp_path):
    venv_python = fake_python(tmp_path / ".venv" / "bin" / "python")
    r = build_sh(tmp_path, "--cpu")
    assert r.returncode == 1
    assert f"torch cannot be imported by {venv_python}" in r.stderr and "torch_npu" not in r.stderr
    assert r.stderr.count("\n") == 1


def test_without_a_venv_names_python3(tmp_path):
    fake_python(tmp_path / "bin" / "python3")
    r = build_sh(tmp_path, "--cpu", env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert r.returncode == 1 and "torch cannot be imported by python3: create the project's environment" in r.stderr


def test_explicit_python_is_named(tmp_path):
    other = fake_python(tmp_path / "envs" / "py")
    r = build_sh(tmp_path, "--python", str(other))
    assert r.returncode == 1 and f"torch cannot be imported by {other}: pip install torch==2.13.0" in r.stderr


@pytest.mark.parametrize("with_header", [True, False], ids=["version-header", "no-header"])
def test_cann9_kernel_build_force_includes_the_devkit_version(tmp_path, with_header):
    """With CANN >= 9 build.sh compiles the kernels with bisheng, which (unlike CANN's cmake flow) does not include
    asc_devkit_version.h by itself: build.sh passes it when the toolkit has one, so row_ops.h sees
    ASC_DEVKIT_VERSION_NUM. A stand-in bisheng records its arguments and fails, ending the run there."""
    cann = tmp_path / "cann"
    (cann / "x86_64-linux").mkdir(parents=True)
    (cann / "x86_64-linux" / "ascend_toolkit_install.info").write_text("version=9.1.0\n")
    header = cann / "x86_64-linux" / "include" / "version" / "asc_devkit_version.h"
    if with_header:
        header.parent.mkdir(parents=True)
        header.write_text("#define ASC_DEVKIT_VERSION_NUM 90100000\n")
    python = stand_in(tmp_path / "bin" / "python", 'case "$2" in *torch_npu*) echo 2.13.0 2.13.0;; esac\n')
    args = tmp_path / "bisheng_args"
    stand_in(tmp_path / "bin" / "bisheng", f'printf "%s\\n" "$@" > {args}\nexit 1\n')
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "ASCEND_HOME_PATH": str(cann)}
    r = build_sh(tmp_path, "--python", str(python), "--soc", "Ascend910B2", env=env)
    assert r.returncode != 0 and args.exists(), r.stderr
    argv = args.read_text().splitlines()
    if with_header:
        assert argv[argv.index("-include") + 1] == str(header), argv
    else:
        assert "-include" not in argv, argv


@pytest.mark.skipif(importlib.util.find_spec("torch_npu") is not None, reason="torch_npu is installed here")
def test_bench_npu_without_torch_npu_is_one_line():
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_npu.py")], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 1
    assert r.stderr.startswith("bench_npu.py: torch_npu cannot be imported") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compile_times_reads_the_latest_run_per_unit(tmp_path, capsys):
    """Per-extension ninja logs (setup.py's layout): the last line of an output wins, slowest first, shares of the
    total."""
    for ext, lines in {
        "_C": [
            f"0\t3000\t1\t{tmp_path}/_C/csrc/cpu/a.o\th",
            f"0\t9000\t1\t{tmp_path}/_C/csrc/cpu/a.o\th",
            f"0\t1000\t1\t{tmp_path}/_C/csrc/ops.o\th",
        ],
        "_sim": [f"500\t10500\t1\t{tmp_path}/_sim/csrc/sim/sim_module.o\th"],
    }.items():
        (tmp_path / ext).mkdir()
        (tmp_path / ext / ".ninja_log").write_text("# ninja log v5\n" + "\n".join(lines) + "\n")
    assert load_script("compile_times").main([str(tmp_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2:] == [
        "| csrc/sim/sim_module.cpp | _sim | 10.0 | 50% |",
        "| csrc/cpu/a.cpp | _C | 9.0 | 45% |",
        "| csrc/ops.cpp | _C | 1.0 | 5% |",
        "| total (3 units) | | 20.0 | |",
    ]


def test_compile_times_rejects_what_is_not_a_ninja_log(tmp_path):
    (tmp_path / "_C").mkdir()
    (tmp_path / "_C" / ".ninja_log").write_text("hello\n")
    with pytest.raises(ValueError, match="is not a ninja log"):
        load_script("compile_times").main([str(tmp_path)])
