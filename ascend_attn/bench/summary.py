"""``python -m ascend_attn.bench all``: every benchmark into one Markdown report and one speedup chart."""

from __future__ import annotations

from pathlib import Path

from ascend_attn.bench.common import BenchResult

PNG_EXTRA = "pip install 'ascend_attn[bench]'"


def markdown_report(results: list[BenchResult]) -> str:
    """One section per benchmark: its notes and table, as ``python -m ascend_attn.bench <name>`` prints them."""
    parts = ["# ascend_attn benchmarks", ""]
    for result in results:
        parts += [f"## {result.name}", "", result.markdown(), ""]
    return "\n".join(parts)


def speedup_chart(results: list[BenchResult], path: Path) -> None:
    """Horizontal bars of baseline time / our time per case, one panel per benchmark, a line at 1 (parity).

    Needs matplotlib (``ImportError`` without it).
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe on headless machines

    results = [r for r in results if r.speedups]  # modelled figures have no baseline to chart
    heights = [max(1.5, 0.3 * len(r.speedups) + 1.0) for r in results]
    fig = Figure(figsize=(10, sum(heights)), layout="constrained")
    axes = fig.subplots(len(results), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, result in zip(axes, results, strict=True):
        labels = [label for label, _ in result.speedups]
        ratios = [ratio for _, ratio in result.speedups]
        colors = ["tab:green" if r >= 1.0 else "tab:red" for r in ratios]
        ax.barh(range(len(ratios)), ratios, color=colors)
        ax.set_yticks(range(len(ratios)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xlim(0, 1.15 * max([1.0, *ratios]))  # room for the value labels
        for y, r in enumerate(ratios):
            ax.annotate(f"{r:.2f}x", (r, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_title(f"{result.name}: speedup of ascend_attn over the baseline (> 1: faster)")
        ax.set_xlabel("baseline ms / ascend_attn ms")
    fig.savefig(path, dpi=120)


def write_report(results: list[BenchResult], out: str | Path) -> tuple[str, list[str]]:
    """Writes ``out/report.md`` and, with matplotlib, ``out/report.png``.

    Returns:
        ``(markdown, messages)``: the report text and one line per file written or skipped.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown_report(results)
    (out / "report.md").write_text(text)
    messages = [f"wrote {out / 'report.md'}"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        messages.append(f"skipped {out / 'report.png'}: the chart needs matplotlib ({PNG_EXTRA})")
    else:
        speedup_chart(results, out / "report.png")
        messages.append(f"wrote {out / 'report.png'}")
    return text, messages
