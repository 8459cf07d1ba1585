"""A running lab: the network of a plan with its services deployed.

This is the orchestration layer (docs/architecture.md, "Layers"): it owns the order of
bring-up and teardown and nothing else.  ``Lab.up()`` goes through named phases (claim
names, certificates, network, link impairments, then the services of the registry
stage by stage: render -> check -> start -> wait until it answers).  ``Lab.down()``
undoes exactly what ``up`` did, in reverse, is safe after a partial ``up``, and
reports the processes that would not die.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lab.errors import EnvironmentProblem
from lab.model.plan import Plan
from lab.runtime import impair
from lab.runtime.network import LabNetwork
from lab.runtime.node import LabNode
from lab.runtime.rundir import RunDir, claim_prefix, new_run_id
from lab.services.base import Deployment, Service
from lab.services.dhcp import Dhclient
from lab.services.keys import LabKeys
from lab.services.pki import LabCA
from lab.services.registry import services_for, stages

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
S = TypeVar("S", bound=Service)

#: what every lab needs, whatever its services
BASE_COMMANDS = ("mnexec", "ip", "brctl", "ifconfig", "ethtool", "nft", "tcpdump")


def check_environment(plan: Plan | None = None) -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "building a lab needs root (network namespaces, bridges, mounts)",
            hint="run it with sudo, or as root; 'lab validate' works without root",
        )
    needed = list(BASE_COMMANDS)
    if plan is not None:
        for _, entries in stages(plan):
            for _, cls in entries:
                needed += cls.commands
    missing = sorted({c for c in needed if shutil.which(c) is None})
    if missing:
        raise EnvironmentProblem(
            "missing commands: " + ", ".join(missing),
            hint="run scripts/setup.sh to install the Debian packages the lab uses",
        )


def _bring_up(svc: Service) -> None:
    svc.render()
    svc.check()
    svc.start()


class Lab:
    def __init__(
        self, plan: Plan, *, prefix: str | None = None, run_id: str | None = None, progress: Progress | None = None
    ):
        self.plan = plan
        self.requested_prefix = prefix
        self.run_id = run_id or new_run_id()
        self.progress = progress or (lambda msg: None)
        self.run: RunDir | None = None
        self.network: LabNetwork | None = None
        self.services: list[Service] = []
        self.dep: Deployment | None = None
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.loss_rules: dict[str, str] = {}
        self.ready_at: float | None = None
        self.teardown_problems: list[str] = []

    # -- lifecycle -----------------------------------------------------------------
    def __enter__(self) -> "Lab":
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    @property
    def nodes(self) -> dict[str, LabNode]:
        return self.network.nodes if self.network else {}

    def node(self, name: str) -> LabNode:
        return self.nodes[name]

    def service(self, node: str, cls: type[S]) -> S | None:
        for s in self.services:
            if s.node.name == node and isinstance(s, cls):
                return s
        return None

    def services_of(self, cls: type[S]) -> list[S]:
        return [s for s in self.services if isinstance(s, cls)]

    @property
    def dhclients(self) -> dict[str, Dhclient]:
        return {s.node.name: s for s in self.services_of(Dhclient)}

    def up(self, on_network: Callable[["Lab"], None] | None = None) -> None:
        """Build and deploy.  ``on_network`` runs once the network exists and before any
        service starts (captures start there, so they see the DHCP exchange)."""
        t0 = time.monotonic()
        check_environment(self.plan)
        self.notes = impair.check_supported(self.plan)  # refuses what cannot be honoured
        self.notes += [n for h in self.plan.mail.values() for n in h.notes]  # protections not applied
        self.run = claim_prefix(self.run_id, self.requested_prefix)
        self.progress(f"claimed name prefix {self.run.prefix} (run {self.run_id})")
        ca = LabCA(self.run.state / "pki")
        keys = LabKeys()
        keys.prepare([d for h in self.plan.mail.values() if h.filtering for d in h.domains])

        self.progress("building the network")
        t = time.monotonic()
        self.network = LabNetwork(self.plan, self.run)
        self.network.build(self._private_dirs)
        self.timings["network"] = time.monotonic() - t
        self.dep = Deployment(self.plan, self.run, ca, self.network.nodes, keys=keys)
        if on_network is not None:
            on_network(self)
        self.network.apply_link_states()
        self.loss_rules = impair.apply_loss(self.network.nodes, self.plan)
        later: list[Service] = []
        for stage, entries in stages(self.plan):
            later = self._await(later, t0, before=stage)
            self._stage(stage, [cls.from_plan(self.network.nodes[name], self.dep) for name, cls in entries], later)
        self._await(later, t0)
        self.ready_at = time.monotonic()
        self.timings["ready"] = self.ready_at - t0
        self.progress(f"lab ready in {self.timings['ready']:.2f} s")

    def _private_dirs(self, node: str, ndir: Path) -> list[Any]:
        out: list[Any] = []
        for cls in services_for(self.plan.nodes[node], self.plan):
            out += [d for d in cls.private_dirs(ndir) if d not in out]
        return out

    def _await(self, later: list[Service], t0: float, before: int | None = None) -> list[Service]:
        """Wait for the services started earlier whose readiness is due before ``before``
        (all of them when None); return the others."""
        due = [s for s in later if before is None or (s.ready_by or 0) <= before]
        for svc in due:
            svc.wait_ready(svc.ready_timeout)
            self.timings[f"{svc.node.name}/{svc.daemon}"] = time.monotonic() - t0
        return [s for s in later if s not in due]

    def _stage(self, stage: int, services: list[Service], later: list[Service]) -> None:
        """Render and check each service, start them all, then wait for each to answer
        (or leave it in ``later`` when it is due only at a later stage)."""
        t = time.monotonic()
        names = ", ".join(sorted({s.daemon for s in services}))
        self.progress(f"stage {stage}: {names} on {len(services)} node(s): render, check, start")
        # teardown knows each of them, started or not (stopping one never started is a no-op)
        self.services.extend(services)
        # each on its own node, side by side: their checks and starts are processes
        # (two Postfix nodes check and start in the time of one)
        if len(services) == 1:
            _bring_up(services[0])
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(services))) as pool:
                futures = [pool.submit(_bring_up, svc) for svc in services]
            failed = [f.exception() for f in futures if f.exception() is not None]
            if failed:
                raise failed[0]  # type: ignore[misc]
        for svc in services:
            if svc.ready_by is not None and svc.ready_by > stage:
                later.append(svc)
                continue
            svc.wait_ready(svc.ready_timeout)
            self.timings[f"{svc.node.name}/{svc.daemon}"] = time.monotonic() - t

    def expected_prefixes(self) -> set[str]:
        """The subnets routers should route to now: not one whose every link is down."""
        down = self.network.down if self.network is not None else set()
        links: dict[str, set[int]] = {}
        for n in self.plan.nodes.values():
            for i in n.interfaces:
                links.setdefault(i.subnet, set()).add(i.link)
        return {str(c) for name, c in self.plan.subnets.items() if not links.get(name) or links[name] - down}

    def collect(self, dest: Path) -> list[dict[str, str]]:
        """Copy every rendered config and daemon log into ``dest/nodes/<node>/``."""
        out = []
        for svc in self.services:
            nd = dest / "nodes" / svc.node.name
            for r in svc.rendered:
                target = nd / "config" / svc.daemon / r.path.name
                _copy(r.path, target)
                out.append(
                    {
                        "node": svc.node.name,
                        "daemon": svc.daemon,
                        "kind": "config",
                        "path": str(target.relative_to(dest)),
                        "shown_as": r.shown_as,
                    }
                )
            for lf in [*svc.logs(), svc.start_log()]:
                if lf.exists():
                    target = nd / "logs" / lf.name
                    _copy(lf, target)
                    out.append(
                        {
                            "node": svc.node.name,
                            "daemon": svc.daemon,
                            "kind": "log",
                            "path": str(target.relative_to(dest)),
                            "shown_as": str(lf),
                        }
                    )
        return out

    def down(self) -> None:
        t = time.monotonic()
        # every daemon at once: each waits for its own exit (Dovecot alone sleeps ~1 s)

        def stop(svc: Service) -> None:
            try:
                left = svc.stop()
            except Exception as exc:
                self.teardown_problems.append(f"{svc.node.name}: {svc.daemon}: stop: {exc}")
                return
            if left:
                self.teardown_problems.append(f"{svc.node.name}: {svc.daemon}: pid(s) {left} survived SIGKILL")

        if self.services:
            with ThreadPoolExecutor(max_workers=min(32, len(self.services))) as pool:
                list(pool.map(stop, reversed(self.services)))
        self.services = []
        if self.dep is not None:
            self.dep.keys.close()
        if self.network is not None:
            self.teardown_problems += self.network.stop()
            self.network = None
        if self.run is not None:
            self.run.release()
            self.run = None
        self.timings["teardown"] = time.monotonic() - t
        for p in self.teardown_problems:
            log.warning("teardown: %s", p)


def _copy(src: Path, dst: Path) -> None:
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    except OSError as exc:
        log.debug("could not copy %s: %s", src, exc)
