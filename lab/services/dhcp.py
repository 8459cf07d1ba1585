"""ISC Kea DHCPv4 (the server) and ISC dhclient (the clients on DHCP hosts)."""
from __future__ import annotations

import ipaddress
import time
from pathlib import Path

from lab.services.base import (TEMPLATES, Service, command_version, log_tail, process_alive, read_pid,
                               render_template, stop_pid)

SCRIPT = Path(__file__).parent / "dhclient-script.sh"


class Kea(Service):
    daemon = "kea-dhcp4"

    @property
    def home(self) -> Path:
        return self.node.dir / "kea"

    @property
    def env(self) -> dict[str, str]:
        return {"KEA_PIDFILE_DIR": str(self.home), "KEA_LOCKFILE_DIR": str(self.home)}

    def render(self) -> None:
        scopes = [s for s in self.dep.plan.scopes if s.server == self.node.name]
        scope = scopes[0]   # validation puts a DHCP server on exactly the subnet it serves
        self.home.mkdir(parents=True, exist_ok=True)
        self.write(self.home / "kea-dhcp4.conf", render_template(
            TEMPLATES, "kea-dhcp4.conf.j2", interface=self.node.intf, subnet=scope.cidr,
            pool_start=scope.pool_start, pool_end=scope.pool_end, routers=scope.routers,
            dns_servers=scope.dns_servers, domain=scope.domain, lease_file=str(self.home / "leases.csv"),
            log_file=str(self.home / "kea.log"), valid_lifetime=scope.lease_time, reservations=[]))

    def check(self) -> None:
        # must run inside the node: Kea checks that the interface exists
        self.run_checked(["kea-dhcp4", "-t", str(self.home / "kea-dhcp4.conf")], "kea-dhcp4 -t", env=self.env)

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.proc = self.node.spawn(["kea-dhcp4", "-c", str(self.home / "kea-dhcp4.conf")],
                                    env=self.env, log=self.home / "kea-stdout.log")
        self.pid = None

    def wait_ready(self, timeout: float) -> None:
        log = self.home / "kea.log"

        def started() -> bool:
            if self.pid is None:
                self.pid = read_pid(self.home / "kea-dhcp4.kea-dhcp4.pid")
            if self.proc.poll() is not None:
                raise self.fail(f"exited with status {self.proc.returncode}", log=self.home / "kea-stdout.log")
            try:
                return "DHCP4_STARTED" in log.read_text(errors="replace")
            except FileNotFoundError:
                return False
        self.poll(started, timeout, "report DHCP4_STARTED")

    def stop(self) -> None:
        stop_pid(self.pid or read_pid(self.home / "kea-dhcp4.kea-dhcp4.pid"))
        if getattr(self, "proc", None) is not None:
            try:
                self.proc.wait(timeout=5)
            except Exception:
                pass

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

    @property
    def home(self) -> Path:
        return self.node.dir / "dhclient"

    def render(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.write(self.home / "dhclient.conf", render_template(TEMPLATES, "dhclient.conf.j2",
                                                                 hostname=self.node.name))

    def start(self) -> None:
        self.started_at = time.monotonic()
        h = self.home
        args = ["dhclient", "-1", "-v", "-cf", str(h / "dhclient.conf"), "-sf", str(SCRIPT),
                "-lf", str(h / "dhclient.leases"), "-pf", str(h / "dhclient.pid"),
                "-e", f"RESOLV_CONF={self.node.dir / 'resolv.conf'}", "-e", f"LAB_LOG={h / 'script.log'}",
                self.node.intf]
        # dhclient -1 returns once bound (or after its timeout); run it without blocking
        self.proc = self.node.spawn(args, log=h / "dhclient.log")

    def wait_ready(self, timeout: float) -> None:
        def bound() -> bool:
            if self.proc.poll() is not None and self.proc.returncode != 0:
                raise self.fail(f"dhclient gave up (exit {self.proc.returncode}): no lease",
                                hint="is the DHCP server on this subnet running?")
            if self.proc.poll() is None:
                return False
            return self.address() is not None
        self.poll(bound, timeout, "get a lease")
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

    def stop(self) -> None:
        pid = self.pid or read_pid(self.home / "dhclient.pid")
        stop_pid(pid)
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            stop_pid(self.proc.pid)

    def logs(self) -> list[Path]:
        return [self.home / "dhclient.log", self.home / "script.log"]

    def version(self) -> str:
        return command_version(["dhclient", "--version"])


__all__ = ["Kea", "Dhclient", "log_tail", "process_alive"]
