"""Fixtures for tests that build real labs (root, Debian packages)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNS = "/var/lib/mail-lab/runs/"


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


def footprint() -> dict[str, object]:
    """What mail-lab has on this machine: compare before and after a run.

    Only what is ours counts (other labs, e.g. a developer's scratch network, may
    come and go meanwhile): links named with the lab prefix stem, processes of lab
    hosts (Mininet shells of ``ml*`` hosts, anything whose command line or mount
    table names a run's state dir), their network namespaces, mounts and claims.
    """
    root_ns = os.readlink("/proc/self/ns/net")
    procs = []
    namespaces = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/mountinfo") as f:
                mounts = f.read()
            ns = os.readlink(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if "mininet:ml" in cmd or RUNS in cmd or RUNS in mounts:
            procs.append(f"{entry} {cmd[:80]}")
            if ns != root_ns:
                namespaces.add(ns)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    ours = sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
                  if line.split(":")[1].strip().startswith("ml"))
    root_mounts = [m for m in Path("/proc/self/mountinfo").read_text().splitlines() if "mail-lab" in m]
    state = Path("/var/lib/mail-lab/prefixes")
    return {
        "namespaces": len(namespaces),
        "links": ours,
        "processes": sorted(procs),
        "mounts": root_mounts,
        "claims": sorted(p.name for p in state.iterdir()) if state.is_dir() else [],
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
    from lab.model.plan import make_plan
    from lab.model.topology import load_topology
    from lab.runtime.lab import Lab

    plan = make_plan(load_topology(REPO / "topologies" / "star.yaml"))
    with Lab(plan) as lab:
        yield lab


@pytest.fixture
def ctx(star_lab, tmp_path):
    from lab.scenario.steps import Context
    return Context(star_lab, star_lab.run_id, tmp_path)
