"""The pytest plugin's item ids read like the report: step names intact (dots, colons
and addresses as written), the wire checks under their own names, one item each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.model.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["dmz.yaml", "authenticity.yaml", "security.yaml"])
def test_ids_are_the_step_and_check_names(name: str) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "-q",
            "--lab-scenarios",
            f"scenarios/{name}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    ids = [ln.split("::", 1)[1] for ln in r.stdout.splitlines() if ln.startswith(f"scenarios/{name}::")]
    scn = load_scenario(REPO / "scenarios" / name)
    assert all("::" not in i for i in ids), ids
    steps = [i for i in ids if i[:2].isdigit()]
    assert [int(i[:2]) for i in steps[: len(scn.steps)]] == list(range(len(scn.steps)))
    wire = [i for i in ids if i.startswith("wire: ")]
    assert wire == [n.replace("/", "|") for n in (scn.wire.check_names() if scn.wire else [])]
    if name == "dmz.yaml":  # a name with dots and a colon, as written
        assert "06 pc1: dns MX projet.dz" in ids
