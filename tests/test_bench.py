"""Smoke tests of the benchmark entry points: they run, print a table of measured rows, and reject bad options."""

from __future__ import annotations

import re
import sys

import pytest

from ascend_attn.bench.__main__ import main
from ascend_attn.bench.common import ISAS, BenchResult, available_isas, peak_names, peaks_note
from ascend_attn.bench.summary import write_report

ROW = re.compile(r"^\| (avx512|avx2|portable) \| (fp32|bf16) \|.*\| [0-9.]+ \|$", re.MULTILINE)


@pytest.mark.parametrize("name", ["flash", "paged", "backward"])
def test_quick_run_prints_measured_rows(name, capsys, tmp_path):
    main([name, "--quick", "--dtype", "fp32", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert len(ROW.findall(printed)) >= {"flash": 2, "paged": 1, "backward": 4}[name]
    if name == "backward":  # the Ascend C backward's modelled rows (dry runs of the simulator), causal and not
        assert "MODELLED Atlas 910B2" in printed
        assert re.findall(r"^\| 256 \| (no|yes) \| [0-9]+ \| [0-9]+ \|", printed, re.MULTILINE) == ["no", "yes"]
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
    rows = re.findall(r"^\| \w+ \| fp16 \|.*\|$", capsys.readouterr().out, re.MULTILINE)
    assert len(rows) == 1


@pytest.mark.parametrize("name", ["flash", "paged"])
def test_isa_all_runs_every_isa_this_cpu_has(name, capsys):
    isas = available_isas()
    assert "portable" in isas and isas == [isa for isa in ISAS if isa in isas]
    main([name, "--quick", "--dtype", "fp32", "--repeats", "1", "--warmup", "0", "--isa", "all"])
    printed = capsys.readouterr().out
    measured = [m.group(1) for m in ROW.finditer(printed)]
    per_isa = len(measured) // len(isas)  # the same grid once per ISA, one ISA after the other
    assert per_isa >= 1 and measured == [isa for isa in isas for _ in range(per_isa)]
    assert f"CPU kernels: {', '.join(isas)};" in printed


def test_forced_isa_is_the_one_measured(capsys):
    main(["paged", "--quick", "--dtype", "fp32", "--repeats", "1", "--warmup", "0", "--isa", "portable"])
    assert [m.group(1) for m in ROW.finditer(capsys.readouterr().out)] == ["portable"]


def test_an_isa_this_cpu_lacks_is_named():
    missing = [isa for isa in ISAS if isa not in available_isas()]
    if not missing:
        pytest.skip("this CPU runs every ISA")
    with pytest.raises(RuntimeError, match=f"ASCEND_ATTN_CPU_ISA={missing[0]}, but this CPU lacks"):
        main(["flash", "--quick", "--isa", missing[0]])


def test_tables_divide_by_the_fastest_probe_of_each_dtype():
    """The bf16 probes cover both operand layouts because torch's CPU bf16 GEMM can be ten times slower in one: the
    peak is the faster, whichever it is, and the note names the one used."""
    peaks = {"torch.mm fp32": 90.0, "oneDNN fp32": 115.0, "torch.mm bf16 NN (512^3)": 1.4,
             "torch.mm bf16 NT (512^3)": 15.0}  # fmt: skip
    assert peak_names(peaks) == ("oneDNN fp32", "torch.mm bf16 NT (512^3)")
    flipped = {**peaks, "torch.mm fp32": 120.0, "torch.mm bf16 NN (512^3)": 30.0}
    assert peak_names(flipped) == ("torch.mm fp32", "torch.mm bf16 NN (512^3)")
    assert peaks_note(peaks).endswith("fp32 peak used: oneDNN fp32, bf16 peak used: torch.mm bf16 NT (512^3)")


def test_model_backward_rows_have_the_forward_columns():
    """bench model's backward table: one row per (seqlen, causal) in the forward table's columns, from dry runs of
    op_kernel/flash_attention_grad."""
    from ascend_attn.bench import model

    rows = model.flash_backward_rows([512], heads=2, d=64, cores=2)
    assert [r[:2] for r in rows] == [[512, "no"], [512, "yes"]]
    assert all(len(r) == len(model.FLASH_HEADER) for r in rows)
    full, causal = (float(r[2]) for r in rows)  # modelled us
    assert 0 < causal < full and all(float(r[5]) > 0 for r in rows)  # causal skips tiles; TFLOPS counted


def test_model_rows_give_every_operand_its_own_tensor(monkeypatch):
    """The modelled rows pass distinct q, k, v (and key and value caches, and backward operands): one tensor in two
    roles would let the L2 model find one operand's lines already brought in by the other's reads (V pages read as
    hits on what their K page fetched), flattering every figure."""
    from types import SimpleNamespace

    from ascend_attn.bench import model

    seen = []
    stats = SimpleNamespace(modelled_us=2.0, roofline_us=1.0, modelled_tflops=1.0, cube_utilisation=0.5,
                            critical="cube", launch_overhead_us=1.0, kv_splits=1, heads_per_item=1)  # fmt: skip

    def record(*tensors):
        seen.append([t for t in tensors if hasattr(t, "data_ptr") and t.dim() >= 2])
        return SimpleNamespace(stats=stats)

    monkeypatch.setattr(model.sim, "flash_attn_varlen_func", lambda *a, **k: record(*a))
    monkeypatch.setattr(model.sim, "flash_attn_varlen_backward", lambda *a, **k: record(*a))
    monkeypatch.setattr(model.sim, "paged_attention", lambda *a, **k: record(*a))
    model.flash_rows([64], heads=2, d=16, cores=2)
    model.flash_backward_rows([64], heads=2, d=16, cores=2)
    model.paged_rows([2], [256], heads=4, kv_heads=2, d=16, block=128, cores=2)
    assert len(seen) == 5  # two flash rows (causal or not), two backward rows, one paged row
    for tensors in seen:
        operands = [t for t in tensors if t.dtype == model.torch.float16]  # q, k, v (dout, out; the two caches)
        assert len({t.data_ptr() for t in operands}) == len(operands) >= 3, [t.shape for t in operands]
