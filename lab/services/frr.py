"""FRRouting on a router node: zebra plus one routing daemon (ospfd or ripd).

Each router runs its own FRR instance with every path moved into ``<node dir>/frr``:
per-daemon config files, pid files, log files, the vty sockets (``--vty_socket``) and
zebra's API socket (``-z``).  Nothing touches ``/etc/frr`` or ``/var/run/frr``, so
any number of routers (and labs) can run side by side, and ``vtysh --vty_socket`` talks
to exactly one router.

The settings come from the plan's ``RoutingPlan`` of the router (``lab.model.routes``):
mode, router id, interfaces with their addresses and whether they are passive, timers.
``passive`` marks a LAN with hosts only: its prefix is advertised but no adjacency is
formed there.  Non-passive interfaces are router-to-router links; OSPF runs them as
point-to-point (no DR election, so adjacencies come up within a hello or two).

Readiness means every daemon answers on its vty, not that routing has converged:
use ``converged()`` (or ``routes()``/``ospf_neighbors()``) from scenario steps for that.
"""

from __future__ import annotations

import ipaddress
import json
import pwd
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.model.routes import RoutingPlan
from lab.runtime import proc
from lab.services.base import TEMPLATES, Deployment, Service, Template, command_version, read_pid

FRR_BIN = Path("/usr/lib/frr")
VTYSH = "vtysh"
USER = GROUP = "frr"
ROUTING_DAEMON = {"ospf": "ospfd", "rip": "ripd"}
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes including the NUL
# A daemon's dry run (-C) exits 0 even when config lines fail: read its messages instead.
DRYRUN_ERROR = re.compile(
    r"on config line \d+|can't open|Unknown command|Ambiguous command|"
    r"Command incomplete|Config Failed"
)


@dataclass
class Frr(Service):
    routing: RoutingPlan | None = None

    daemon = "frr"
    commands = ("vtysh",)
    stage = 20
    ready_by: ClassVar[int] = 100  # routing converges on its own; scenarios wait for that

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return node.name in plan.routing

    @classmethod
    def from_plan(cls, node: Any, dep: Deployment) -> "Frr":
        return cls(node, dep, routing=dep.plan.routing[node.name])

    @classmethod
    def private_dirs(cls, ndir: Path) -> list[Any]:
        """The node's FRR folder is also its /run/frr, where a plain ``vtysh`` typed inside
        the node looks for the daemons' vty sockets (the lab's own calls name the folder)."""
        home = ndir / "frr"
        home.mkdir(parents=True, exist_ok=True)
        return [("/run/frr", str(home))]

    # -- paths ---------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.node.dir / "frr"

    @property
    def plan(self) -> RoutingPlan:
        assert self.routing is not None, "an Frr is made from its RoutingPlan"
        return self.routing

    @property
    def daemons(self) -> list[str]:
        """Start order: zebra first (the routing daemon connects to its API socket)."""
        return ["zebra", ROUTING_DAEMON[self.plan.mode]]

    @property
    def zserv(self) -> Path:
        return self.home / "zserv.api"

    def conf(self, daemon: str) -> Path:
        return self.home / f"{daemon}.conf"

    def pidfile(self, daemon: str) -> Path:
        return self.home / f"{daemon}.pid"

    def logfile(self, daemon: str) -> Path:
        return self.home / f"{daemon}.log"

    def _argv(self, daemon: str) -> list[str]:
        return [
            str(FRR_BIN / daemon),
            "-f",
            str(self.conf(daemon)),
            "-i",
            str(self.pidfile(daemon)),
            "-z",
            str(self.zserv),
            "--vty_socket",
            str(self.home),
            "-P",
            "0",
            "-u",
            USER,
            "-g",
            GROUP,
        ]

    # -- phases ----------------------------------------------------------------------
    def templates(self) -> list[Template]:
        r = self.plan
        interfaces = []
        for i in r.interfaces:
            net = ipaddress.ip_interface(f"{i.address}/{i.prefixlen}").network
            interfaces.append(
                {
                    "name": i.name,
                    "network": str(net),
                    "passive": i.passive,
                    "description": f"{'lan' if i.passive else 'link'} {net}",
                }
            )
        common = {"hostname": self.node.name, "interfaces": interfaces}
        out = [
            Template(
                TEMPLATES,
                "frr-zebra.conf.j2",
                {**common, "log_file": str(self.logfile("zebra"))},
                self.conf("zebra"),
                mode=0o640,
            )
        ]
        if r.mode == "ospf":
            delay, hold, max_hold = r.spf
            ctx = {
                **common,
                "log_file": str(self.logfile("ospfd")),
                "router_id": r.router_id,
                "area": r.area,
                "hello": r.hello,
                "dead": r.dead,
                "retransmit": r.retransmit,
                "spf_delay": delay,
                "spf_hold": hold,
                "spf_max_hold": max_hold,
                "lsa_interval": r.lsa[0],
                "lsa_arrival": r.lsa[1],
            }
            out.append(Template(TEMPLATES, "frr-ospfd.conf.j2", ctx, self.conf("ospfd"), mode=0o640))
        else:
            update, timeout, garbage = r.rip_timers
            ctx = {
                **common,
                "log_file": str(self.logfile("ripd")),
                "update": update,
                "timeout": timeout,
                "garbage": garbage,
            }
            out.append(Template(TEMPLATES, "frr-ripd.conf.j2", ctx, self.conf("ripd"), mode=0o640))
        return out

    def render(self) -> None:
        home = self.home
        home.mkdir(parents=True, exist_ok=True)
        longest = max((home / f"{d}.vty" for d in [*self.daemons, "zserv.api"]), key=lambda p: len(str(p)))
        if len(str(longest).encode()) > SOCKET_PATH_MAX:
            raise self.fail(
                f"socket path too long for a unix socket: {longest}",
                hint="use a shorter state directory (MAIL_LAB_STATE)",
            )
        super().render()
        # The daemons drop to frr:frr before they open their logs, pid files and sockets.
        frr = pwd.getpwnam(USER)
        for p in [home, *home.iterdir()]:
            shutil.chown(p, frr.pw_uid, frr.pw_gid)
        home.chmod(0o750)

    def check(self) -> None:
        """vtysh's grammar check (exits non-zero), then each daemon's own dry run.

        The dry run runs as frr inside the node, so it also catches files frr cannot
        open; it exits 0 whatever it finds, hence the scan of its messages.
        """
        for d in self.daemons:
            self.run_checked([VTYSH, "-C", "-f", str(self.conf(d))], f"vtysh -C {self.conf(d).name}")
            r = self.node.run([*self._argv(d), "-C"])
            out = (r.stdout + r.stderr).strip()
            bad = [line for line in out.splitlines() if DRYRUN_ERROR.search(line)]
            if r.returncode != 0 or bad:
                raise self.fail(f"{d} -C rejected {self.conf(d).name}", extra=out[-3000:])

    def start(self) -> None:
        """Spawn each daemon in the foreground (no -d) so this process is its parent.

        Daemonized (-d) FRR daemons are reparented to PID 1, which on this machine is
        slow to reap them: stopped routers linger as zombies.  As our children they are
        reaped in stop(), and a daemon that dies at start shows up in proc.poll().
        """
        self.started_at = time.monotonic()
        self.procs: dict[str, Any] = {}
        self.pids: dict[str, int] = {}
        self.zserv.unlink(missing_ok=True)  # a stale socket would pass the wait below
        for d in self.daemons:
            self.pidfile(d).unlink(missing_ok=True)
            proc = self.node.spawn(self._argv(d), log=self.start_log())
            self.procs[d], self.pids[d] = proc, proc.pid  # mnexec -a execs: same pid
            if d == "zebra":
                # A client that finds no API socket retries only 10 s later: wait for it.
                self._wait_for(lambda: self.zserv.exists(), "zebra", 5, "create its API socket")
        self.pid = self.pids["zebra"]

    def _wait_for(self, probe: Any, daemon: str, timeout: float, what: str) -> None:
        def died() -> BaseException | None:
            p = self.procs[daemon]
            return (
                self.fail(f"{daemon} exited with status {p.returncode} before it could {what}", log=self.start_log())
                if p.poll() is not None
                else None
            )

        if not proc.wait_until(probe, timeout, abort=died).ok:
            raise self.fail(f"{daemon} did not {what} within {timeout:g} s")

    def wait_ready(self, timeout: float) -> None:
        """Each daemon answers a show command on its own vty socket."""
        probes = {"zebra": "show zebra client summary", "ospfd": "show ip ospf json", "ripd": "show ip rip status"}

        def answers() -> bool:
            for d, child in self.procs.items():
                if child.poll() is not None:
                    raise self.fail(
                        f"{d} (pid {child.pid}) exited with status {child.returncode}", log=self.start_log()
                    )
            return all(self.vtysh(probes[d], daemon=d).returncode == 0 for d in self.daemons)

        self.poll(answers, timeout, "answer on its vty sockets")

    def stop(self) -> list[int]:
        """Routing daemon first, then zebra (which removes its routes from the kernel)."""
        pids, procs = getattr(self, "pids", {}), getattr(self, "procs", {})
        left: list[int] = []
        for d in reversed(self.daemons):
            pid = pids.get(d) or read_pid(self.pidfile(d))
            if pid:
                left += proc.terminate([pid], grace=5.0)
            if d in procs:
                procs[d].poll()  # reap our child
        return left

    def logs(self) -> list[Path]:
        return [self.start_log(), *(self.logfile(d) for d in self.daemons)]

    def version(self) -> str:
        return command_version(
            [str(FRR_BIN / "zebra"), "--version"], lambda s: "FRRouting " + s.split("version", 1)[1].split()[0]
        )

    # -- queries for scenario steps ------------------------------------------------
    def vtysh(self, command: str, daemon: str | None = None, timeout: float = 10) -> Any:
        args = [VTYSH, "--vty_socket", str(self.home)]
        if daemon:
            args += ["-d", daemon]
        return self.node.run([*args, "-c", command], timeout=timeout)

    def show_json(self, command: str, daemon: str | None = None) -> Any:
        r = self.vtysh(command, daemon)
        if r.returncode != 0:
            raise self.fail(
                f"vtysh -c '{command}' failed (exit {r.returncode})", extra=(r.stdout + r.stderr).strip()[-2000:]
            )
        try:
            return json.loads(r.stdout or "{}")
        except json.JSONDecodeError as exc:
            raise self.fail(f"vtysh -c '{command}' did not return JSON: {exc}", extra=r.stdout[-2000:]) from None

    def routes(self) -> list[dict[str, Any]]:
        """The router's IPv4 table as zebra sees it (``show ip route json``)."""
        out = []
        for prefix, entries in self.show_json("show ip route json", "zebra").items():
            for e in entries:
                out.append(
                    {
                        "prefix": prefix,
                        "protocol": e.get("protocol"),
                        "selected": bool(e.get("selected")),
                        "installed": bool(e.get("installed")),
                        "distance": e.get("distance"),
                        "metric": e.get("metric"),
                        "nexthops": [
                            {
                                "ip": nh.get("ip"),
                                "interface": nh.get("interfaceName"),
                                "active": bool(nh.get("active")),
                                "connected": bool(nh.get("directlyConnected")),
                            }
                            for nh in e.get("nexthops", [])
                        ],
                    }
                )
        return out

    def ospf_neighbors(self) -> list[dict[str, Any]]:
        """OSPF adjacencies (``show ip ospf neighbor json``); state reads e.g. ``Full/-``."""
        data = self.show_json("show ip ospf neighbor json", "ospfd")
        out = []
        for nbr_id, entries in data.get("neighbors", {}).items():
            for e in entries:
                out.append(
                    {
                        "neighbor_id": nbr_id,
                        "state": e.get("state", ""),
                        "address": e.get("address"),
                        "interface": e.get("ifaceName", "").split(":")[0],
                        "dead_ms": e.get("deadTimeMsecs"),
                    }
                )
        return out

    def rip_routes(self) -> list[dict[str, Any]]:
        """Routes this router learnt over RIP and installed."""
        return [r for r in self.routes() if r["protocol"] == "rip" and r["selected"]]

    def converged(self, expected_prefixes: set[str]) -> bool:
        """True when the table holds an installed route to every expected prefix."""
        have = {ipaddress.ip_network(r["prefix"]) for r in self.routes() if r["selected"] and r["installed"]}
        want = {ipaddress.ip_network(p, strict=False) for p in expected_prefixes}
        return want <= have
