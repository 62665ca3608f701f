"""scripts/mutation_study.py stays in step with the kernels: every mutant's edits apply exactly once to the current
op_kernel/ sources (its --check mode, which builds nothing), so a kernel change cannot leave a mutant silently
testing the unmutated code."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_mutant_applies_to_the_current_kernels():
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "mutation_study.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "every edit applies exactly once" in r.stdout


def test_a_stale_mutant_is_named(monkeypatch):
    spec = importlib.util.spec_from_file_location("mutation_study", ROOT / "scripts" / "mutation_study.py")
    study = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, study)  # dataclasses look their module up there
    spec.loader.exec_module(study)
    pristine = {m.file: (ROOT / m.file).read_text() for m in study.MUTANTS}
    first = study.MUTANTS[0]
    pristine[first.file] = pristine[first.file].replace(first.edits[0][0], "")
    assert any(p.startswith(f"{first.id}: the text to mutate occurs 0 times") for p in study.problems(pristine))
