"""Hostile files as root: `lab run` refuses each injection before anything runs, and a
node that runs a program anyway cannot touch the machine's own /tmp, /root or /home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "data" / "hostile"))
import make

MARKER = Path(make.MARKER)


@pytest.fixture
def no_marker():
    MARKER.unlink(missing_ok=True)
    yield
    assert not MARKER.exists(), f"an injection ran: {MARKER} was written"


@pytest.mark.parametrize("case", make.INJECTIONS)
def test_injection_never_runs(case, tmp_path, no_marker, no_leaks):
    path = f"tests/data/hostile/{case}.yaml"
    scenario = case.startswith("scen-") or case.endswith("-in-scenario")
    args = ["run", path] if scenario else ["run", "scenarios/star.yaml", "--topology", path]
    reports = tmp_path / "reports"
    reports.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "lab.cli", *args, "--reports", str(reports), "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "MAIL_LAB_STATE": str(tmp_path / "state")},
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert list(reports.iterdir()) == [] and not (tmp_path / "state").exists()


def test_a_node_has_its_own_tmp_root_and_home(star_lab):
    """Defence in depth: even a daemon talked into running something writes into the node's
    own empty folders, never the machine's."""
    from lab.runtime.network import hidden_dirs

    hidden = hidden_dirs()
    assert hidden, "the lab lives under /tmp, /root and /home at once: nothing could be hidden"
    for node in ("mail", "dns", "pc1"):
        for d in hidden:
            probe = Path(d) / "mail-lab-private-probe"
            probe.unlink(missing_ok=True)
            r = star_lab.node(node).run(["sh", "-c", f"touch {probe} && ls -A {d}"])
            # a host's /root holds only what the lab put there for its user (mail programs)
            own = {".mailrc", ".swaksrc", ".lab-ca.pem"} if d == "/root" and node.startswith("pc") else set()
            assert r.returncode == 0 and set(r.stdout.split()) == {probe.name} | own, (node, d, r.stdout, r.stderr)
            assert not probe.exists(), f"{node} wrote into the machine's {d}"
