"""Remove what labs killed before their teardown left behind, and only that.

A lab's leftovers are found by its claimed prefix (see ``rundir``): Mininet host
shells named ``mininet:<prefix>-*``, every process in those shells' network
namespaces, processes whose command line names the run's state directory, and
root-namespace links whose names start with ``<prefix>b``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lab.runtime.node import kill_pids, pids_in_netns
from lab.runtime.rundir import STATE_ROOT, claims, pid_alive


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


def clean_prefix(prefix: str, state: str | None, report: CleanReport) -> None:
    me = os.getpid()
    cmdlines = _cmdlines()
    shells = [pid for pid, cmd in cmdlines.items() if f"mininet:{prefix}-" in cmd and pid != me]
    victims: set[int] = set()
    for shell in shells:
        try:
            ns = os.readlink(f"/proc/{shell}/ns/net")
        except OSError:
            continue
        if ns == os.readlink("/proc/1/ns/net"):
            continue
        victims.update(pids_in_netns(ns))
    if state:
        victims.update(pid for pid, cmd in cmdlines.items() if state in cmd and pid != me)
    victims.update(shells)
    victims.discard(me)
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
    # state dirs whose claim is gone (a crash between claim release and rmtree)
    runs = STATE_ROOT / "runs"
    live_states = {c.get("state") for c in claims()}
    if runs.is_dir():
        for d in runs.iterdir():
            if str(d) not in live_states:
                users = [pid for pid, cmd in _cmdlines().items() if str(d) in cmd and pid != os.getpid()]
                kill_pids(users, grace=1.0)
                report.killed.extend(users)
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
