"""Fixtures for tests that build real labs (root, Debian packages)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.runtime.rundir import PREFIX_STEM, STATE_ROOT, TMPFS_NAME
from lab.runtime.rundir import RUN_ID as RUN_ID_RE

REPO = Path(__file__).resolve().parents[2]
RUNS = f"{STATE_ROOT}/runs/"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "builds network namespaces: needs root"
    for cmd in ("mnexec", "postfix", "dovecot", "named", "kea-dhcp4", "dhclient"):
        if shutil.which(cmd) is None:
            return f"'{cmd}' is missing: run scripts/setup.sh"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _why_not()
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


OURS = re.compile(rf"^{PREFIX_STEM}\d+(b\d|-)")  # kernel names of labs with automatic prefixes
RUN_ID = re.compile(re.escape(RUNS) + rf"({RUN_ID_RE})")


def footprint() -> dict[str, object]:
    """What mail-lab's automatically named labs have on this machine.

    Compared before and after a test.  Only labs with automatic prefixes (ml1, ml2,
    ...) count: a benchmark or a developer's scratch lab with its own prefix may come
    and go meanwhile.  Orphans (processes of a run that has no claim any more) count.
    """
    root_ns = os.readlink("/proc/self/ns/net")
    state = STATE_ROOT / "prefixes"
    claims = {}
    if state.is_dir():
        for c in state.iterdir():
            try:
                claims[json.loads((c / "owner.json").read_text())["run_id"]] = c.name
            except (OSError, ValueError, KeyError):
                claims[c.name] = c.name
    from lab.runtime.clean import runs_of

    procs = []
    namespaces = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            ns = os.readlink(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        shell = re.search(r"mininet:(\S+)", cmd)
        # a process is of one of our runs by its command line, or by the mounts a lab host
        # has from its run (runs_of: not every mount, since hosts of other labs made while
        # ours was up carry a copy of our state)
        runs = set(RUN_ID.findall(cmd)) | runs_of(int(entry))
        mine = (shell is not None and OURS.match(shell.group(1) + "-")) or any(
            r not in claims or OURS.match(claims[r] + "-") for r in runs
        )
        if mine:
            procs.append(f"{entry} {cmd[:80]}")
            if ns != root_ns:
                namespaces.add(ns)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    ours = re.compile(rf" ({re.escape(TMPFS_NAME)}-{RUN_ID_RE}|{re.escape(str(STATE_ROOT))}/\S*) ")
    root_mounts = [m for m in Path("/proc/self/mountinfo").read_text().splitlines() if ours.search(m)]
    return {
        "namespaces": len(namespaces),
        "links": sorted(n for n in names if OURS.match(n)),
        "processes": sorted(procs),
        "mounts": root_mounts,
        "claims": sorted(c for c in claims.values() if re.fullmatch(rf"{PREFIX_STEM}\d+", c)),
    }


@pytest.fixture
def no_leaks():
    """Assert that the test leaves the machine as it found it."""
    before = footprint()
    yield before
    after = footprint()
    assert after == before, f"the lab leaked: before {before}, after {after}"


@pytest.fixture(scope="module")
def star_lab():
    """The star campus LAN, built once for a module's checks."""
    from lab.deploy.lab import Lab
    from lab.model.load import load_topology
    from lab.model.plan import make_plan

    plan = make_plan(load_topology(REPO / "topologies" / "star.yaml"))
    with Lab(plan) as lab:
        yield lab


@pytest.fixture
def ctx(star_lab, tmp_path):
    from lab.scenario.steps import Context

    return Context(star_lab, star_lab.run_id, tmp_path)


_SHIPPED: dict[str, tuple[object, dict, Path]] = {}
#: shipped scenarios that measure time (round trips, a flood's rate): run with the machine
#: to themselves, after the others
ALONE = ("wan.yaml", "lan-man-wan.yaml", "flood.yaml")
#: labs side by side: most of a lab run is waiting (timers, delivery, a browser), and the
#: worksheets' broken variants are graded three at a time the same way
SIDE_BY_SIDE = 3


def _result(summary: dict):
    """The RunResult a summary.json was written from."""
    from dataclasses import fields

    from lab.report.results import RunResult, StepResult

    names = {f.name for f in fields(RunResult)} - {"steps"}
    result = RunResult(**{k: v for k, v in summary.items() if k in names})
    result.steps = [StepResult(**step) for step in summary["steps"]]
    return result


def _run_shipped(name: str, root: Path) -> tuple[object, dict, Path]:
    reports = root / name
    reports.mkdir(parents=True)
    r = subprocess.run(
        [sys.executable, "-m", "lab.cli", "run", f"scenarios/{name}", "--reports", str(reports), "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    found = list(reports.glob("*/summary.json"))
    if len(found) != 1:  # the tests that read it fail with this, the others still run
        error = f"lab run scenarios/{name}: exit {r.returncode}, no report\n{r.stderr[-3000:]}"
        empty = {k: "" for k in ("run_id", "scenario_file", "topology", "topology_file", "started")}
        summary = {**empty, "scenario": name, "status": "error", "error": error, "steps": [], "captures": []}
        return _result(summary), summary, reports
    summary = json.loads(found[0].read_text())
    return _result(summary), summary, found[0].parent


@pytest.fixture(scope="session")
def shipped(tmp_path_factory: pytest.TempPathFactory):
    """``shipped("attacks.yaml")`` -> (result, summary, report dir) of that shipped scenario
    on its own topology.  The first call runs every shipped scenario with `lab run`, three
    side by side (ALONE ones after, one at a time), and checks that together they left
    nothing behind; test_shipped_scenario_passes and the tests that look closer at a run
    then read the same runs.  The summary is a fresh copy each time."""
    import copy
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("shipped")

    def get(name: str) -> tuple[object, dict, Path]:
        if not _SHIPPED:
            names = sorted(p.name for p in (REPO / "scenarios").glob("*.yaml"))
            before = footprint()
            with ThreadPoolExecutor(max_workers=SIDE_BY_SIDE) as pool:
                together = [n for n in names if n not in ALONE]
                _SHIPPED.update(zip(together, pool.map(lambda n: _run_shipped(n, root), together)))
            _SHIPPED.update((n, _run_shipped(n, root)) for n in ALONE if n in names)
            after = footprint()
            assert after == before, f"the shipped scenarios leaked: before {before}, after {after}"
        result, summary, report = _SHIPPED[name]
        return result, copy.deepcopy(summary), report

    return get
