"""ISC Kea DHCPv4 (the server) and ISC dhclient (the clients on DHCP hosts)."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any, ClassVar

from lab.model.nodeplan import NodePlan
from lab.model.plan import DhcpScope, Plan
from lab.runtime import proc
from lab.services.base import TEMPLATES, Service, Template, command_version, read_pid

SCRIPT = Path(__file__).parent / "dhclient-script.sh"


class Kea(Service):
    daemon = "kea-dhcp4"
    roles = ("dhcp",)
    stage = 40
    ready_by: ClassVar[int] = 90  # the DHCP clients need it answering
    commands = ("kea-dhcp4",)

    @property
    def home(self) -> Path:
        return self.node.dir / "kea"

    @property
    def env(self) -> dict[str, str]:
        return {"KEA_PIDFILE_DIR": str(self.home), "KEA_LOCKFILE_DIR": str(self.home)}

    @property
    def scope(self) -> DhcpScope:
        # validation puts a DHCP server on exactly the subnet it serves, and gives it one
        return next(s for s in self.dep.plan.scopes if s.server == self.node.name)

    def templates(self) -> list[Template]:
        s = self.scope
        ctx = {
            "interface": self.node.intf,
            "subnet": s.cidr,
            "pool_start": s.pool_start,
            "pool_end": s.pool_end,
            "routers": s.routers,
            "dns_servers": s.dns_servers,
            "domain": s.domain,
            "lease_file": str(self.home / "leases.csv"),
            "log_file": str(self.home / "kea.log"),
            "valid_lifetime": s.lease_time,
            "reservations": [{"hw": r.mac, "ip": r.address, "hostname": r.node} for r in s.reservations],
        }
        return [Template(TEMPLATES, "kea-dhcp4.conf.j2", ctx, self.home / "kea-dhcp4.conf")]

    def render(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        super().render()

    def check(self) -> None:
        # must run inside the node: Kea checks that the interface exists
        self.run_checked(["kea-dhcp4", "-t", str(self.home / "kea-dhcp4.conf")], "kea-dhcp4 -t", env=self.env)

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.proc = self.node.spawn(
            ["kea-dhcp4", "-c", str(self.home / "kea-dhcp4.conf")], env=self.env, log=self.home / "kea-stdout.log"
        )
        self.pid = self.proc.pid  # mnexec -a execs: the same pid

    def wait_ready(self, timeout: float) -> None:
        log = self.home / "kea.log"

        def started() -> bool:
            try:
                return "DHCP4_STARTED" in log.read_text(errors="replace")
            except FileNotFoundError:
                return False

        self.poll(started, timeout, "report DHCP4_STARTED", exited=lambda: self.proc.poll() is not None)

    def stop(self) -> list[int]:
        left = super().stop()
        if getattr(self, "proc", None) is not None:
            self.proc.poll()  # reap it (it is our child)
        return left

    def leases(self) -> list[dict[str, str]]:
        """Active leases from Kea's memfile (CSV with a header line)."""
        path = self.home / "leases.csv"
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        if not lines:
            return []
        head = lines[0].split(",")
        rows = [dict(zip(head, line.split(","))) for line in lines[1:] if line.strip()]
        latest: dict[str, dict[str, str]] = {}
        for row in rows:
            latest[row.get("address", "")] = row
        return [r for r in latest.values() if r.get("valid_lifetime", "0") != "0"]

    def logs(self) -> list[Path]:
        return [self.home / "kea.log", self.home / "kea-stdout.log"]

    def version(self) -> str:
        return command_version(["kea-dhcp4", "-V"])


class Dhclient(Service):
    """The DHCP client of one host: gets a lease, sets address, route and resolver."""

    daemon = "dhclient"
    commands = ("dhclient",)
    stage = 90  # last: dhclient's retry interval is long, so the servers must be up
    ready_timeout = 30.0

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return node.dhcp

    @property
    def home(self) -> Path:
        return self.node.dir / "dhclient"

    def templates(self) -> list[Template]:
        return [Template(TEMPLATES, "dhclient.conf.j2", {"hostname": self.node.name}, self.home / "dhclient.conf")]

    def render(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        super().render()

    def start(self) -> None:
        self.started_at = time.monotonic()
        h = self.home
        args = [
            "dhclient",
            "-1",
            "-v",
            "-cf",
            str(h / "dhclient.conf"),
            "-sf",
            str(SCRIPT),
            "-lf",
            str(h / "dhclient.leases"),
            "-pf",
            str(h / "dhclient.pid"),
            "-e",
            f"RESOLV_CONF={self.node.dir / 'resolv.conf'}",
            "-e",
            f"LAB_LOG={h / 'script.log'}",
            self.node.intf,
        ]
        # dhclient -1 returns once bound (or after its timeout); run it without blocking
        self.proc = self.node.spawn(args, log=h / "dhclient.log")

    def wait_ready(self, timeout: float) -> None:
        def bound() -> bool:
            if self.proc.poll() is not None and self.proc.returncode != 0:
                raise self.fail(
                    f"dhclient gave up (exit {self.proc.returncode}): no lease",
                    hint="is the DHCP server on this subnet running?",
                )
            return self.proc.poll() is not None and self.address() is not None

        self.poll(bound, timeout, "get a lease", exited=lambda: False)
        self.pid = read_pid(self.home / "dhclient.pid", timeout=2)
        self.node.ip = self.address()

    def address(self) -> str | None:
        r = self.node.run(["ip", "-4", "-o", "addr", "show", "dev", self.node.intf])
        for line in r.stdout.splitlines():
            parts = line.split()
            if "inet" in parts:
                return str(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).ip)
        return None

    def lease(self) -> dict[str, str]:
        """What the host got: address, router, DNS servers, from its own view."""
        route = self.node.run(["ip", "-4", "route", "show", "default"]).stdout.split()
        resolv = (self.node.dir / "resolv.conf").read_text()
        return {
            "address": self.address() or "",
            "router": route[2] if len(route) > 2 and route[0] == "default" else "",
            "dns": " ".join(line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver")),
            "search": " ".join(line.split()[1] for line in resolv.splitlines() if line.startswith("search")),
        }

    def stop(self) -> list[int]:
        self.pid = self.pid or read_pid(self.home / "dhclient.pid")
        pids: list[Any] = [self.pid] if self.pid else []
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            pids.append(self.proc.pid)
        return proc.terminate(pids, grace=5.0)

    def logs(self) -> list[Path]:
        return [self.home / "dhclient.log", self.home / "script.log"]

    def version(self) -> str:
        return command_version(["dhclient", "--version"])
