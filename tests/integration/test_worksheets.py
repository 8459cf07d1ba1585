"""The worksheets' commands work: every `lab run` of a Run section passes, and every
break-and-fix variant loses points under its rubric, each failure with a hint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lab.model.catalogue import load_catalogue

from .conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "unit"))
from test_worksheets import WORKSHEETS, run_commands

CATALOGUE = REPO / "docs" / "labs" / "catalogue.yaml"
LABS = load_catalogue(CATALOGUE) if CATALOGUE.exists() else {}
RUNS = sorted({tuple(c) for sheet in WORKSHEETS for c in run_commands(sheet.read_text()) if c[1] == "run"})


@pytest.mark.parametrize("cmd", RUNS, ids=lambda c: " ".join(c[2:]))
def test_run_section_command_passes(cmd, tmp_path, no_leaks):
    r = subprocess.run(
        [sys.executable, "-m", "lab.cli", *cmd[1:], "--reports", str(tmp_path), "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, f"{' '.join(cmd)}:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}"


@pytest.mark.parametrize("name", sorted(n for n, lab in LABS.items() if lab.broken and lab.rubric))
def test_broken_variant_loses_points_with_hints(name, tmp_path, no_leaks):
    lab = LABS[name]
    subs = tmp_path / "subs" / "broken"
    subs.mkdir(parents=True)
    subs.joinpath("topology.yaml").write_text((REPO / lab.broken).read_text())  # type: ignore[operator]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab.cli",
            "grade",
            str(subs.parent),
            "--rubric",
            str(lab.rubric),
            "--out",
            str(tmp_path / "out"),
            "-q",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    grade = json.loads((tmp_path / "out" / "broken" / "grade.json").read_text())
    assert grade["score"] < grade["max"], f"{name}: the broken variant got full marks"
    failed = [c for c in grade["checks"] if not c["passed"]]
    if grade["status"] == "graded":
        assert failed and all(c["hint"] for c in failed), f"{name}: every failed check names what to look at"
    else:
        assert "lab validate refuses it" in (REPO / lab.broken).read_text().splitlines()[0]
