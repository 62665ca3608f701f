"""Smoke tests of the benchmark entry points: they run, print a table of measured rows, and reject bad options."""

from __future__ import annotations

import re
import sys

import pytest

from ascend_attn.bench.__main__ import main
from ascend_attn.bench.common import BenchResult
from ascend_attn.bench.summary import write_report

ROW = re.compile(r"^\| (fp32|bf16) \|.*\| [0-9.]+ \|$", re.MULTILINE)


@pytest.mark.parametrize("name", ["flash", "paged"])
def test_quick_run_prints_measured_rows(name, capsys, tmp_path):
    main([name, "--quick", "--dtype", "fp32", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert len(ROW.findall(printed)) >= (2 if name == "flash" else 1)
    assert (tmp_path / f"{name}.md").read_text().strip() == printed.strip()


def test_all_writes_report_and_chart(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    main(["all", "--quick", "--dtype", "fp32", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    text = (tmp_path / "report.md").read_text()
    assert text.strip() == captured.out.strip()
    flash, paged = text.split("## paged")
    assert "## flash" in flash and len(ROW.findall(flash)) >= 2 and len(ROW.findall(paged)) >= 1
    png = (tmp_path / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert f"wrote {tmp_path / 'report.png'}" in captured.err


def test_report_without_matplotlib_writes_markdown_only(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = BenchResult("flash", ["a note"], ["case", "ratio"], [["dense", "1.50"]], [("dense", 1.5)])
    text, messages = write_report([result], tmp_path)
    assert (tmp_path / "report.md").read_text() == text and "| dense | 1.50 |" in text
    assert not (tmp_path / "report.png").exists()
    assert messages[-1].endswith("the chart needs matplotlib (pip install 'ascend_attn[bench]')")


@pytest.mark.parametrize(
    "argv", [["flash", "--repeats", "0"], ["paged", "--dtype", "fp64"], ["all", "--quick"], ["nothing"]]
)
def test_rejects_bad_options(argv):
    with pytest.raises(SystemExit):
        main(argv)


def test_fp16_is_a_dtype_like_the_demo(capsys):
    main(["paged", "--quick", "--dtype", "fp16", "--repeats", "1", "--warmup", "0"])
    rows = re.findall(r"^\| fp16 \|.*\|$", capsys.readouterr().out, re.MULTILINE)
    assert len(rows) == 1


def test_model_backward_rows_have_the_forward_columns():
    """bench model's backward table: one row per (seqlen, causal) in the forward table's columns, from dry runs of
    op_kernel/flash_attention_grad."""
    from ascend_attn.bench import model

    rows = model.flash_backward_rows([512], heads=2, d=64, cores=2)
    assert [r[:2] for r in rows] == [[512, "no"], [512, "yes"]]
    assert all(len(r) == len(model.FLASH_HEADER) for r in rows)
    full, causal = (float(r[2]) for r in rows)  # modelled us
    assert 0 < causal < full and all(float(r[5]) > 0 for r in rows)  # causal skips tiles; TFLOPS counted
