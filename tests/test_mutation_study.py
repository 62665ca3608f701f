"""scripts/mutation_study.py stays in step with the kernels: every mutant's edits apply exactly once to the current
op_kernel/ sources (its --check mode, which builds nothing), so a kernel change cannot leave a mutant silently
testing the unmutated code; and its build tree is refreshed so that ninja rebuilds exactly the changed files."""

from __future__ import annotations

import importlib.util
import os
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


def load_study(monkeypatch):
    spec = importlib.util.spec_from_file_location("mutation_study", ROOT / "scripts" / "mutation_study.py")
    study = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, study)  # dataclasses look their module up there
    spec.loader.exec_module(study)
    return study


def test_a_stale_mutant_is_named(monkeypatch):
    study = load_study(monkeypatch)
    pristine = {m.file: (ROOT / m.file).read_text() for m in study.MUTANTS}
    first = study.MUTANTS[0]
    pristine[first.file] = pristine[first.file].replace(first.edits[0][0], "")
    assert any(p.startswith(f"{first.id}: the text to mutate occurs 0 times") for p in study.problems(pristine))


def test_sync_tree_rewrites_only_changed_files(tmp_path, monkeypatch):
    study = load_study(monkeypatch)
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "same.h").write_text("same")
    (src / "sub" / "changed.h").write_text("new")
    (dst / "sub").mkdir(parents=True)
    (dst / "same.h").write_text("same")
    (dst / "sub" / "changed.h").write_text("mutant")
    (dst / "gone.cpp").write_text("removed from the checkout")
    for f in (dst / "same.h", dst / "sub" / "changed.h"):
        os.utime(f, (1, 1))
    study.sync_tree(str(src), str(dst))
    assert (dst / "sub" / "changed.h").read_text() == "new" and (dst / "sub" / "changed.h").stat().st_mtime > 1
    assert (dst / "same.h").stat().st_mtime == 1  # its objects stay up to date
    assert not (dst / "gone.cpp").exists()
