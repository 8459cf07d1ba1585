"""Remove what labs killed before their teardown left behind, and only that.

A lab's leftovers are found by its claimed prefix (see ``rundir``): Mininet host
shells named ``mininet:<prefix>-*``, every process in those shells' network
namespaces, processes whose command line names the run's state directory, and
root-namespace links whose names start with ``<prefix>b``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lab.runtime.node import kill_pids, pids_in_netns
from lab.runtime.rundir import STATE_ROOT, claims, pid_alive

RUN_RE = re.compile(re.escape(str(STATE_ROOT / "runs")) + r"/([0-9]{8}-[0-9]{6}-[0-9a-f]{4})")


@dataclass
class CleanReport:
    prefixes: list[str] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    skipped_live: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not (self.prefixes or self.killed or self.links or self.dirs):
            text = "nothing to clean"
        else:
            text = (f"cleaned {len(self.prefixes)} lab(s) {' '.join(self.prefixes)}: "
                    f"{len(self.killed)} process(es), {len(self.links)} link(s), {len(self.dirs)} dir(s)")
        if self.skipped_live:
            text += f"; left running labs alone: {' '.join(self.skipped_live)} (use --force to remove them too)"
        return text


def _cmdlines() -> dict[int, str]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    out[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                pass
    return out


def _links() -> list[str]:
    r = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
    names = []
    for line in r.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _mentions(pid: int, needle: str) -> bool:
    """Does the process's mount table mention ``needle``?  Every lab host has the
    run's resolv.conf (and the mail node its private dirs) bind-mounted from the
    run's state dir, so this finds a host's daemons even after its shell died."""
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return needle in f.read()
    except OSError:
        return False


def lab_processes(prefix: str, state: str | None) -> set[int]:
    """Every process that belongs to the lab with this prefix and state dir."""
    me = os.getpid()
    root_ns = os.readlink("/proc/self/ns/net")
    cmdlines = _cmdlines()
    found = {pid for pid, cmd in cmdlines.items() if f"mininet:{prefix}-" in cmd or f"mininet:{prefix}b" in cmd}
    if state:
        run_key = "/runs/" + Path(state).name
        found |= {pid for pid, cmd in cmdlines.items() if run_key in cmd or _mentions(pid, run_key)}
    # everything sharing a network namespace with what we found (but never the root's)
    namespaces = set()
    for pid in found:
        try:
            ns = os.readlink(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if ns != root_ns:
            namespaces.add(ns)
    for ns in namespaces:
        found.update(pids_in_netns(ns))
    found.discard(me)
    return found


def clean_prefix(prefix: str, state: str | None, report: CleanReport) -> None:
    victims = lab_processes(prefix, state)
    kill_pids(sorted(victims), grace=1.0)
    report.killed.extend(sorted(victims))
    for name in _links():
        if name.startswith(f"{prefix}b"):
            r = subprocess.run(["ip", "link", "del", name], capture_output=True, text=True)
            if r.returncode == 0:
                report.links.append(name)
    if state and Path(state).exists():
        shutil.rmtree(state, ignore_errors=True)
        report.dirs.append(state)
    report.prefixes.append(prefix)


def clean(force: bool = False) -> CleanReport:
    report = CleanReport()
    for info in claims():
        if info["alive"] and not force:
            report.skipped_live.append(info["prefix"])
            continue
        clean_prefix(info["prefix"], info.get("state"), report)
        shutil.rmtree(info["claim"], ignore_errors=True)
    # anything else of a run that no live lab owns: a crash after the claim was
    # released, or a state dir removed while its daemons still ran
    live_runs = {Path(c["state"]).name for c in claims() if c.get("state")}
    orphans: dict[str, set[int]] = {}
    for pid, cmd in _cmdlines().items():
        if pid == os.getpid():
            continue
        text = cmd
        try:
            with open(f"/proc/{pid}/mountinfo") as f:
                text += f.read()
        except OSError:
            pass
        for run_id in set(RUN_RE.findall(text)):
            if run_id not in live_runs:
                orphans.setdefault(run_id, set()).add(pid)
    runs = STATE_ROOT / "runs"
    if runs.is_dir():
        for d in runs.iterdir():
            if d.name not in live_runs:
                orphans.setdefault(d.name, set())
    for run_id, pids in orphans.items():
        victims = set(pids) | lab_processes("-none-", str(STATE_ROOT / "runs" / run_id))
        kill_pids(sorted(victims), grace=1.0)
        report.killed.extend(sorted(victims))
        d = STATE_ROOT / "runs" / run_id
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
            report.dirs.append(str(d))
    return report


def owner_of(prefix: str) -> dict | None:
    p = STATE_ROOT / "prefixes" / prefix / "owner.json"
    try:
        info = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    info["alive"] = pid_alive(int(info.get("pid", 0)))
    return info
