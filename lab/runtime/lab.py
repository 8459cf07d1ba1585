"""A running lab: the network of a plan with its services deployed.

``Lab.up()`` goes through named phases (claim names, certificates, network, each
service: render -> check -> start -> wait until it answers).  ``Lab.down()`` undoes
exactly what ``up`` did, in reverse, and is safe to call after a partial ``up``.
"""
from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.errors import EnvironmentProblem
from lab.model.plan import Plan
from lab.runtime.network import LabNetwork
from lab.runtime.node import LabNode
from lab.runtime.rundir import RunDir, claim_prefix, new_run_id
from lab.services.base import Deployment, Service
from lab.services.dhcp import Dhclient, Kea
from lab.services.dns import Bind
from lab.services.firewall import Firewall
from lab.services.frr import Frr
from lab.services.mail import Dovecot, Postfix
from lab.services.pki import LabCA
from lab.model.plan import firewall_policy
from lab.runtime import impair

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

REQUIRED_COMMANDS = ["mnexec", "ip", "brctl", "ifconfig", "ethtool", "named", "named-checkconf", "rndc-confgen",
                     "kea-dhcp4", "dhclient", "postfix", "postconf", "dovecot", "doveconf"]


def check_environment() -> None:
    import os
    if os.geteuid() != 0:
        raise EnvironmentProblem("building a lab needs root (network namespaces, bridges, mounts)",
                                 hint="run it with sudo, or as root; 'lab validate' works without root")
    missing = [c for c in REQUIRED_COMMANDS if shutil.which(c) is None]
    if missing:
        raise EnvironmentProblem("missing commands: " + ", ".join(missing),
                                 hint="run scripts/setup.sh to install the Debian packages the lab uses")


class Lab:
    def __init__(self, plan: Plan, *, prefix: str | None = None, run_id: str | None = None,
                 progress: Progress | None = None):
        self.plan = plan
        self.requested_prefix = prefix
        self.run_id = run_id or new_run_id()
        self.progress = progress or (lambda msg: None)
        self.run: RunDir | None = None
        self.network: LabNetwork | None = None
        self.services: list[Service] = []
        self.dhclients: dict[str, Dhclient] = {}
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

    def service(self, node: str, cls: type[Service]) -> Service | None:
        for s in self.services:
            if s.node.name == node and isinstance(s, cls):
                return s
        return None

    def capture_links(self) -> list[dict[str, Any]]:
        """One capture point per topology link: its name, subnet and where to listen.

        A link with a switch end is captured on the bridge port in the root namespace
        (exactly that node's traffic); a link between two nodes inside the first one.
        """
        assert self.network is not None
        t = self.plan.topology.data
        out = []
        for k, link in enumerate(t.links):
            mlink = self.network.links[k]
            ends = [(mlink.intf1.node, mlink.intf1.name), (mlink.intf2.node, mlink.intf2.name)]
            roles = [t.nodes[link.a].role, t.nodes[link.b].role]
            if "switch" in roles:
                sw = link.a if roles[0] == "switch" else link.b
                subnet = t.nodes[sw].subnet
                iface = next(name for mn, name in ends if mn.name == self.network.bridges.get(sw)) \
                    if roles.count("switch") == 1 else ends[0][1]
                pid = None
            else:
                node = self.network.nodes[link.a]
                subnet = next(i.subnet for i in node.plan.interfaces if i.link == k)
                iface = next(i.name for i in node.plan.interfaces if i.link == k)
                pid = node.pid
            out.append({"link": f"{link.a}-{link.b}", "index": k, "subnet": subnet, "iface": iface,
                        "netns_pid": pid, "ends": [link.a, link.b]})
        return out

    def up(self, on_network: Callable[["Lab"], None] | None = None) -> None:
        """Build and deploy.  ``on_network`` runs once the network exists and before any
        service starts (captures start there, so they see the DHCP exchange)."""
        t0 = time.monotonic()
        check_environment()
        self.notes = impair.check_supported(self.plan)     # refuses what cannot be honoured
        self.run = claim_prefix(self.run_id, self.requested_prefix)
        self.progress(f"claimed name prefix {self.run.prefix} (run {self.run_id})")
        ca = LabCA(self.run.state / "pki")

        self.progress("building the network")
        t = time.monotonic()
        self.network = LabNetwork(self.plan, self.run)
        roles = {n: v.role for n, v in self.plan.nodes.items()}

        def private_dirs(node: str, ndir: Path) -> list[Any]:
            if roles[node] == "mail":
                return Postfix.prepare_private_dirs(ndir)
            return []
        self.network.build(private_dirs)
        self.timings["network"] = time.monotonic() - t
        self.dep = Deployment(self.plan, self.run, ca, self.network.nodes)
        if on_network is not None:
            on_network(self)

        # the network's own behaviour first: firewall policy, loss, routing daemons
        for name, node in self.network.nodes.items():
            if node.plan.role == "firewall":
                fw = Firewall(node, self.dep)
                fw.policy = firewall_policy(self.plan, name)
                self._deploy(fw)
        self.loss_rules = impair.apply_loss(self.network.nodes, self.plan)
        mode = self.plan.topology.routing
        if mode.mode in ("ospf", "rip"):
            for name, node in self.network.nodes.items():
                if node.plan.forwards:
                    frr = Frr(node, self.dep)
                    frr.routing = self.frr_routing(node)
                    self._deploy(frr)

        order = [("dns", [Bind]), ("dhcp", [Kea]), ("mail", [Postfix, Dovecot])]
        for role, classes in order:
            for name, node in self.network.nodes.items():
                if node.plan.role != role:
                    continue
                for cls in classes:
                    self._deploy(cls(node, self.dep))
        # DHCP clients last: dhclient's retry interval is long, so the server must be up
        t = time.monotonic()
        clients = [Dhclient(node, self.dep) for node in self.network.nodes.values() if node.plan.dhcp]
        if clients:
            self.progress(f"getting DHCP leases for {len(clients)} host(s)")
        for c in clients:
            c.render()
            self.services.append(c)
            self.dhclients[c.node.name] = c
            c.start()
        for c in clients:
            c.wait_ready(30)
        if clients:
            self.timings["dhcp leases"] = time.monotonic() - t
        self.ready_at = time.monotonic()
        self.timings["ready"] = self.ready_at - t0
        self.progress(f"lab ready in {self.timings['ready']:.2f} s")

    def frr_routing(self, node: LabNode) -> dict[str, Any]:
        """What the FRR service needs: interfaces, which of them face only hosts, timers."""
        routing = self.plan.topology.routing
        t = self.plan.topology.data
        routers = {n for n, v in t.nodes.items() if v.role in ("router", "firewall")}
        # an interface is passive when no other router shares its subnet
        members: dict[str, set[str]] = {}
        for other in self.plan.routers():
            for i in other.interfaces:
                members.setdefault(i.subnet, set()).add(other.name)
        ifaces = []
        for i in node.plan.interfaces:
            if not i.ip:
                continue
            passive = len(members.get(i.subnet, set()) & routers) < 2
            ifaces.append({"name": i.name, "address": i.ip, "prefixlen": i.prefixlen, "passive": passive})
        return {"mode": routing.mode, "router_id": node.plan.ip, "interfaces": ifaces,
                "hello": routing.hello, "dead": routing.dead}

    def expected_prefixes(self) -> set[str]:
        return {str(n) for n in self.plan.subnets.values()}

    def _deploy(self, svc: Service) -> None:
        t = time.monotonic()
        self.progress(f"{svc.node.name}: {svc.daemon}: render, check, start")
        svc.render()
        svc.check()
        self.services.append(svc)
        svc.start()
        svc.wait_ready(20)
        self.timings[f"{svc.node.name}/{svc.daemon}"] = time.monotonic() - t

    def collect(self, dest: Path) -> list[dict[str, str]]:
        """Copy every rendered config and daemon log into ``dest/nodes/<node>/``."""
        out = []
        for svc in self.services:
            nd = dest / "nodes" / svc.node.name
            for r in svc.rendered:
                target = nd / "config" / svc.daemon / r.path.name
                _copy(r.path, target)
                out.append({"node": svc.node.name, "daemon": svc.daemon, "kind": "config",
                            "path": str(target.relative_to(dest)), "shown_as": r.shown_as})
            for lf in [*svc.logs(), svc.start_log()]:
                if lf.exists():
                    target = nd / "logs" / lf.name
                    _copy(lf, target)
                    out.append({"node": svc.node.name, "daemon": svc.daemon, "kind": "log",
                                "path": str(target.relative_to(dest)), "shown_as": str(lf)})
        return out

    def down(self) -> None:
        t = time.monotonic()
        # every daemon at once: each waits for its own exit (Dovecot alone sleeps ~1 s)
        from concurrent.futures import ThreadPoolExecutor

        def stop(svc: Service) -> None:
            try:
                svc.stop()
            except Exception as exc:
                self.teardown_problems.append(f"{svc.node.name}: {svc.daemon}: stop: {exc}")
        if self.services:
            with ThreadPoolExecutor(max_workers=min(32, len(self.services))) as pool:
                list(pool.map(stop, reversed(self.services)))
        self.services = []
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
