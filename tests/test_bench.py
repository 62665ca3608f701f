"""Smoke tests of the benchmark entry points: they run, print a table of measured rows, and reject bad options."""

from __future__ import annotations

import re

import pytest

from ascend_attn.bench.__main__ import main

ROW = re.compile(r"^\| (fp32|bf16) \|.*\| [0-9.]+ \|$", re.MULTILINE)


@pytest.mark.parametrize("name", ["flash", "paged"])
def test_quick_run_prints_measured_rows(name, capsys, tmp_path):
    main([name, "--quick", "--dtype", "fp32", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert len(ROW.findall(printed)) >= (2 if name == "flash" else 1)
    assert (tmp_path / f"{name}.md").read_text().strip() == printed.strip()


@pytest.mark.parametrize("argv", [["flash", "--repeats", "0"], ["paged", "--dtype", "fp16"], ["nothing"]])
def test_rejects_bad_options(argv):
    with pytest.raises(SystemExit):
        main(argv)
