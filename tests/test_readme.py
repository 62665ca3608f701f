"""README.md works as pasted: every Python block runs, tables are whole, and commands use the project's environment.

Each ```python block runs in a fresh namespace. A block that cannot run on a CPU-only machine without network says so
on its first line, ``# readme-test: needs npu|network (why)``, and is then skipped with that reason (never silently);
no block of the README needs that today. A block written for several processes says ``readme-test: torchrun N`` on
its first line and runs under ``torch.distributed.run`` with N processes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
NEEDS = re.compile(r"\A# readme-test: needs (npu|network)\b(.*)")
TORCHRUN = re.compile(r"readme-test: torchrun (\d+)")
BLOCKS = [(TEXT.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(TEXT)]


def _npu_available() -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key("ascend_attn::paged_attention", "PrivateUse1")


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_python_block_runs(line, code, tmp_path):
    need = NEEDS.match(code)
    if need and (need.group(1) == "network" or not _npu_available()):
        pytest.skip(f"README.md:{line} needs {need.group(1)}{need.group(2)}")
    procs = TORCHRUN.search(code.partition("\n")[0])
    if procs:
        script = tmp_path / f"readme_{line}.py"
        script.write_text(code)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", procs.group(1)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([*cmd, str(script)], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"README.md:{line} under torchrun:\n{done.stdout}\n{done.stderr}"
        return
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": f"readme_{line}"})


def test_every_python_fence_is_a_block():
    """A malformed fence would drop a block from the test above without a word."""
    assert len(BLOCKS) == TEXT.count("```python") >= 5


def test_tables_are_not_split():
    """A blank line inside a table starts a second table without a header: every run of table rows has one."""
    lines = TEXT.splitlines()
    for i, line in enumerate(lines):
        starts_table = line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|"))
        if starts_table:
            assert i + 1 < len(lines) and re.match(r"^\|(\s*:?-+:?\s*\|)+$", lines[i + 1]), (
                f"README.md:{i + 1}: table rows without a header (a blank line split a table?)"
            )


def test_commands_use_the_project_environment():
    """Only .venv has torch: commands after the setup run .venv/bin/python, never a bare python."""
    bare = [m.group(0) for m in re.finditer(r"(?:^|[`\s])python (?:-m|scripts/)\S*", TEXT, re.MULTILINE)]
    assert not bare, bare
