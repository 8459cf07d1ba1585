"""Link delay without netem: the NFQUEUE delay helper of one node, with its iptables rules.

Where the kernel has no ``tc netem`` (``lab.runtime.impair.delay_mechanism()`` says
``nfqueue``), every node at an end of a delayed link runs ``lab.runtime.nfqdelay``:
one process per node, one queue per delayed interface and direction.  The rules live
in chains of their own in the node's ``mangle`` table, ``LABDELAY-OUT`` (hooked from
POSTROUTING: every packet leaving the interface, the node's own and forwarded ones)
and ``LABDELAY-IN`` (from PREROUTING: a link to a switch has a node at one end only,
which then delays both directions).  Each rule says ``--queue-bypass``: while the
helper is not bound (before it starts, after it stops, if it dies) packets pass
undelayed; they are never blocked.  Stop: the rules go first, then the helper, by
its pid; it lets what it still holds go before it exits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.model.nodeplan import NodePlan
from lab.model.plan import Impairment, Plan, impairments
from lab.model.topology import delay_seconds
from lab.runtime import impair, proc
from lab.services.base import Deployment, Service

CHAINS = {"out": ("LABDELAY-OUT", "POSTROUTING", "-o"), "in": ("LABDELAY-IN", "PREROUTING", "-i")}


@dataclass(frozen=True)
class QueueSpec:
    """One queue of the helper: an interface, a direction, a delay."""

    num: int
    iface: str
    direction: str  # "out" or "in"
    delay_ms: float
    jitter_ms: float
    link: int

    @property
    def name(self) -> str:
        return f"{self.iface} {self.direction}"


def queues_for(node: str, plan: Plan) -> list[QueueSpec]:
    """The queues the plan's delayed links give ``node`` (numbered from 0, per namespace)."""
    out: list[QueueSpec] = []
    for imp in impairments(plan):
        if imp.node != node or not imp.delay:
            continue
        for direction in ("out", "in") if imp.direction == "both" else ("out",):
            out.append(_queue(len(out), imp, direction))
    return out


def _queue(num: int, imp: Impairment, direction: str) -> QueueSpec:
    assert imp.delay is not None
    return QueueSpec(
        num,
        imp.iface,
        direction,
        round(delay_seconds(imp.delay) * 1000, 3),
        round(delay_seconds(imp.jitter) * 1000, 3) if imp.jitter else 0.0,
        imp.link,
    )


def rules(queues: list[QueueSpec], action: str = "-A") -> str:
    """iptables-restore input that adds (``-A``) the chains and rules, or that removes them."""
    lines = ["*mangle"]
    used = [d for d in ("out", "in") if any(q.direction == d for q in queues)]
    if action == "-A":
        lines += [f":{CHAINS[d][0]} - [0:0]" for d in used]
        lines += [f"-A {CHAINS[d][1]} -j {CHAINS[d][0]}" for d in used]
        for q in queues:
            chain, _, flag = CHAINS[q.direction]
            comment = f"links[{q.link}] delay {q.delay_ms:g}ms" + (f" jitter {q.jitter_ms:g}ms" if q.jitter_ms else "")
            lines.append(
                f'-A {chain} {flag} {q.iface} -m comment --comment "{comment}" '
                f"-j NFQUEUE --queue-num {q.num} --queue-bypass"
            )
    else:
        lines += [f"-D {CHAINS[d][1]} -j {CHAINS[d][0]}" for d in used]
        lines += [f"-F {CHAINS[d][0]}" for d in used]
        lines += [f"-X {CHAINS[d][0]}" for d in used]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


@dataclass
class DelayQueue(Service):
    """The NFQUEUE delay helper of one node (only where the kernel has no netem)."""

    queues: list[QueueSpec] = field(default_factory=list)
    popen: Any = None
    rules_loaded: bool = False

    daemon = "nfqdelay"
    stage = 5  # the links' own character comes before any daemon talks over them
    ready_timeout = 10.0
    commands = ("iptables", "iptables-restore")

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        if not any(imp.node == node.name and imp.delay for imp in impairments(plan)):
            return False
        return impair.delay_mechanism() == "nfqueue"

    @classmethod
    def from_plan(cls, node: Any, dep: Deployment) -> "DelayQueue":
        return cls(node, dep, queues=queues_for(node.name, dep.plan))

    @property
    def home(self) -> Path:
        return self.node.dir / "nfqdelay"

    @property
    def stats_file(self) -> Path:
        return self.home / "stats.json"

    @property
    def log_file(self) -> Path:
        return self.home / "nfqdelay.log"

    def config(self) -> dict[str, Any]:
        return {
            "queues": [
                {"num": q.num, "name": q.name, "delay_ms": q.delay_ms, "jitter_ms": q.jitter_ms} for q in self.queues
            ],
            "stats": str(self.stats_file),
            "seed": sum(map(ord, self.node.name)),
        }

    def render(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.write(self.home / "config.json", json.dumps(self.config(), indent=1) + "\n")
        self.write(self.home / "rules.v4", rules(self.queues))
        self.write(self.home / "unrules.v4", rules(self.queues, "-D"))

    def check(self) -> None:
        self.run_checked(
            ["iptables-restore", "-w", "5", "--test", "--noflush", str(self.home / "rules.v4")],
            "iptables-restore --test",
        )

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.popen = self.node.spawn(
            [sys.executable, "-m", "lab.runtime.nfqdelay", str(self.home / "config.json")], log=self.log_file
        )
        self.pid = self.popen.pid

    def _bound(self) -> bool:
        try:
            return "ready" in self.log_file.read_text().split()
        except OSError:
            return False

    def wait_ready(self, timeout: float) -> None:
        self.poll(self._bound, timeout, "bind its queues (print 'ready')")
        # the rules only once the helper listens: --queue-bypass would pass packets
        # undelayed until then anyway, but a lab is ready only when its links are
        self.run_checked(
            ["iptables-restore", "-w", "5", "--noflush", str(self.home / "rules.v4")], "loading the delay rules"
        )
        self.rules_loaded = True

    def stop(self) -> list[int]:
        if self.rules_loaded:
            self.node.run(["iptables-restore", "-w", "5", "--noflush", str(self.home / "unrules.v4")], timeout=10)
            self.rules_loaded = False
        left = proc.terminate([self.pid] if self.pid else [], grace=3.0)
        if self.popen is not None:
            try:
                self.popen.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            self.popen = None
        return left

    def stats(self) -> dict[str, Any]:
        """What the helper measured: packets per queue and how late they left."""
        try:
            return dict(json.loads(self.stats_file.read_text()))
        except (OSError, ValueError):
            return {}

    def logs(self) -> list[Path]:
        return [self.log_file, self.stats_file]

    def version(self) -> str:
        try:
            from importlib.metadata import version

            return f"NetfilterQueue {version('NetfilterQueue')}"
        except Exception:
            return "unknown"
