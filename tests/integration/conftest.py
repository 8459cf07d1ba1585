"""Fixtures for tests that build real labs (root, Debian packages)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_DAEMONS = re.compile(r"(postfix/master|dovecot|named |kea-dhcp4|dhclient|mnexec|mininet:ml)")


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
    """What a lab leaves in the root namespace: compare before and after a run."""
    root_ns = os.readlink("/proc/self/ns/net")
    foreign_ns = set()
    daemons = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns = os.readlink(f"/proc/{entry}/ns/net")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ns != root_ns:
            foreign_ns.add(ns)
        if LAB_DAEMONS.search(cmd):
            daemons.append(f"{entry} {cmd[:80]}")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    veth = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout
    bridges = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True).stdout
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    state = Path("/var/lib/mail-lab/prefixes")
    return {
        "namespaces": len(foreign_ns),
        "links": len(links.splitlines()),
        "veth": len(veth.splitlines()),
        "bridges": len(bridges.splitlines()),
        "mounts": len(mounts),
        "daemons": sorted(daemons),
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
