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

from lab.runtime import proc
from lab.runtime.node import pids_in_netns
from lab.runtime.rundir import RUN_ID, STATE_ROOT, TMPFS_NAME, claims, remove_state

RUN_RE = re.compile(re.escape(str(STATE_ROOT / "runs")) + rf"/({RUN_ID})")
_SOURCE = re.compile(rf"{re.escape(TMPFS_NAME)}-({RUN_ID})")
_ROOT = re.compile(re.escape(str(STATE_ROOT / "runs")) + rf"/({RUN_ID})(/|$)")


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
            text = (
                f"cleaned {len(self.prefixes)} lab(s) {' '.join(self.prefixes)}: "
                f"{len(self.killed)} process(es), {len(self.links)} link(s), {len(self.dirs)} dir(s)"
            )
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


_OWN_MNT = os.readlink("/proc/self/ns/mnt")
#: the mount points a lab host binds from its run's state (resolv.conf on every host)
_MEMBER_MOUNTS = ("/etc/resolv.conf", "/etc/postfix", "/var/spool/postfix", "/var/mail")


def runs_of(pid: int) -> set[str]:
    """The runs a process belongs to, from its mount table.

    A lab host (its own mount namespace) has its run's files bind-mounted over
    /etc/resolv.conf (and the mail node over /etc/postfix ...): the source of those
    mounts names the run (the run's tmpfs is called ``mail-lab-<run-id>``; on disk the
    mount root holds ``/runs/<run-id>/``).  Other mounts prove nothing: a host made
    while another run was up carries a copy of that run's tmpfs, and every process
    of our own namespace sees every run's tmpfs.
    """
    try:
        if os.readlink(f"/proc/{pid}/ns/mnt") == _OWN_MNT:
            return set()
        with open(f"/proc/{pid}/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    found = set()
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 2 or fields[4] not in _MEMBER_MOUNTS:
            continue
        source = tail[1]
        m = _SOURCE.fullmatch(source)
        if m:
            found.add(m.group(1))
        m = _ROOT.search(fields[3])
        if m:
            found.add(m.group(1))
    return found


def lab_processes(prefix: str, state: str | None) -> set[int]:
    """Every process that belongs to the lab with this prefix and state dir."""
    me = os.getpid()
    root_ns = os.readlink("/proc/self/ns/net")
    cmdlines = _cmdlines()
    found = {pid for pid, cmd in cmdlines.items() if f"mininet:{prefix}-" in cmd or f"mininet:{prefix}b" in cmd}
    if state:
        run_id = Path(state).name
        run_key = "/runs/" + run_id
        found |= {pid for pid, cmd in cmdlines.items() if run_key in cmd or run_id in runs_of(pid)}
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
    proc.terminate(sorted(victims), grace=1.0)
    report.killed.extend(sorted(victims))
    for name in _links():
        if name.startswith(f"{prefix}b"):
            r = subprocess.run(["ip", "link", "del", name], capture_output=True, text=True)
            if r.returncode == 0:
                report.links.append(name)
    if state and Path(state).exists():
        remove_state(Path(state))
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
        for run_id in set(RUN_RE.findall(cmd)) | runs_of(pid):
            if run_id not in live_runs:
                orphans.setdefault(run_id, set()).add(pid)
    runs = STATE_ROOT / "runs"
    if runs.is_dir():
        for d in runs.iterdir():
            if d.name not in live_runs:
                orphans.setdefault(d.name, set())
    for run_id, pids in orphans.items():
        victims = set(pids) | lab_processes("-none-", str(STATE_ROOT / "runs" / run_id))
        proc.terminate(sorted(victims), grace=1.0)
        report.killed.extend(sorted(victims))
        d = STATE_ROOT / "runs" / run_id
        if d.exists():
            remove_state(d)
            report.dirs.append(str(d))
    return report


def owner_of(prefix: str) -> dict | None:
    p = STATE_ROOT / "prefixes" / prefix / "owner.json"
    try:
        info = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    info["alive"] = proc.alive(int(info.get("pid", 0)))
    return info
