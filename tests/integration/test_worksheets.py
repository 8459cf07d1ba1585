"""The worksheets' commands work: every `lab run` of a Run section passes, and every
break-and-fix variant loses points under its rubric, each failure with a hint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.model.catalogue import load_catalogue

from .conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "unit"))
from test_worksheets import WORKSHEETS, run_commands_with_exit

CATALOGUE = REPO / "docs" / "labs" / "catalogue.yaml"
LABS = load_catalogue(CATALOGUE) if CATALOGUE.exists() else {}
SHIPPED = {p.name for p in (REPO / "scenarios").glob("*.yaml")}
#: Run lines another test runs exactly: the weakened attacks campus is test_trust.py's,
#: MTA-STS off is test_mta_sts.py's
COVERED = {
    ("lab", "run", "scenarios/attacks.yaml", "--topology", "tests/data/good/dmz-attacks-weak.yaml"),
    ("lab", "run", "scenarios/mta-sts.yaml", "--topology", "tests/data/good/mta-sts-weak.yaml"),
}
#: a plain `lab run scenarios/X.yaml` is what test_scenarios.py runs for every shipped
#: scenario: only the other Run lines (another topology, an expected failure) run here
RUNS = sorted(
    {
        (tuple(c), rc)
        for sheet in WORKSHEETS
        for c, rc in run_commands_with_exit(sheet.read_text())
        if c[1] == "run"
        and not (len(c) == 3 and c[2].startswith("scenarios/") and Path(c[2]).name in SHIPPED)
        and tuple(c) not in COVERED
    }
)


def test_plain_runs_are_the_shipped_scenarios() -> None:
    plain = {c[2] for sheet in WORKSHEETS for c, _ in run_commands_with_exit(sheet.read_text()) if len(c) == 3}
    assert {Path(c).name for c in plain if c.startswith("scenarios/")} <= SHIPPED


@pytest.mark.parametrize("cmd,rc", RUNS, ids=lambda c: " ".join(c[2:]) if isinstance(c, tuple) else str(c))
def test_run_section_command_passes(cmd, rc, tmp_path, no_leaks):
    r = subprocess.run(
        [sys.executable, "-m", "lab.cli", *cmd[1:], "--reports", str(tmp_path), "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == rc, f"{' '.join(cmd)} (expected exit {rc}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}"


BROKEN = sorted(n for n, lab in LABS.items() if lab.broken and lab.rubric)


def _grade(name: str, out: Path) -> tuple[int, str]:
    lab = LABS[name]
    subs = out / "subs" / "broken"
    subs.mkdir(parents=True)
    subs.joinpath("topology.yaml").write_text((REPO / lab.broken).read_text())  # type: ignore[operator]
    r = subprocess.run(
        [sys.executable, "-m", "lab.cli", "grade", str(subs.parent), "--rubric", str(lab.rubric)]
        + ["--out", str(out / "grades"), "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    return r.returncode, r.stderr[-2000:]


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, str]]:
    """Every broken variant graded, three labs side by side (most of a broken lab's time
    is a wait running out, not work); nothing of them left behind."""
    from concurrent.futures import ThreadPoolExecutor

    from .conftest import footprint

    root = tmp_path_factory.mktemp("broken")
    before = footprint()
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(BROKEN, pool.map(lambda n: _grade(n, root / n), BROKEN)))
    after = footprint()
    assert after == before, f"grading the broken variants leaked: before {before}, after {after}"
    return {n: (root / n / "grades", rc, err) for n, (rc, err) in results.items()}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_variant_loses_points_with_hints(name, graded):
    out, rc, err = graded[name]
    assert rc == 0, err
    lab = LABS[name]
    grade = json.loads((out / "broken" / "grade.json").read_text())
    assert grade["score"] < grade["max"], f"{name}: the broken variant got full marks"
    failed = [c for c in grade["checks"] if not c["passed"]]
    if grade["status"] == "graded":
        assert failed and all(c["hint"] for c in failed), f"{name}: every failed check names what to look at"
    else:
        assert "lab validate refuses it" in (REPO / lab.broken).read_text().splitlines()[0]
