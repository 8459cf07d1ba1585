"""The web side of the lab: a Squid forward proxy and an nginx web server.

- ``Squid`` runs on nodes of role ``proxy`` with the topology's ``proxies`` entry: who
  may use it (source subnets), which destination ports it serves (80; 443 through
  CONNECT), which sites it refuses (``dstdomain`` ACL).  It runs in the foreground
  (``-N``, one process, stopped by its pid) with every path in the node's folder and
  its own service name (``-n``: its shared-memory segments are named after the node,
  so two proxies never share them).  Nothing is cached: every request reaches the
  origin server and shows in the access log, which the report shows.
- ``Nginx`` runs on nodes of role ``web``: HTTP on 80 and HTTPS on 443 with a
  certificate of the run's lab CA for the node's name and its aliases, one small
  page per name.

Recipes measured on this machine: ../shared/notes/network-and-seed.md, section 1.
"""

from __future__ import annotations

import pwd
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.model.proxyvpn import ProxyPolicy
from lab.services.base import TEMPLATES, Deployment, Service, Template, command_version


def _own(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    shutil.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class Squid(Service):
    policy: ProxyPolicy | None = None

    daemon = "squid"
    roles = ("proxy",)
    stage = 70  # after DNS: it resolves the sites it fetches
    commands = ("squid",)

    @classmethod
    def from_plan(cls, node: Any, dep: Deployment) -> "Squid":
        return cls(node, dep, policy=dep.plan.topology.data.proxies[node.name])

    @property
    def home(self) -> Path:
        return self.node.dir / "squid"

    @property
    def conf(self) -> Path:
        return self.home / "squid.conf"

    def templates(self) -> list[Template]:
        assert self.policy is not None, "a Squid is made from its plan"
        subnets = self.dep.plan.topology.subnets
        ctx = {
            "node": self.node.name,
            "fqdn": self.node.plan.fqdn,
            "listen": self.node.ip,
            "port": self.policy.port,
            "dir": str(self.home),
            "dns": list(self.node.plan.dns_servers),
            "clients": [subnets[s].cidr for s in self.policy.clients],
            "ports": sorted(set(self.policy.ports)),
            "deny": list(self.policy.deny),
        }
        return [Template(TEMPLATES, "squid.conf.j2", ctx, self.conf)]

    def render(self) -> None:
        for d in (self.home, self.home / "spool"):
            d.mkdir(parents=True, exist_ok=True)
        super().render()
        for p in (self.home, self.home / "spool"):
            _own(p, "proxy")

    def check(self) -> None:
        self.run_checked(["squid", "-k", "parse", "-f", str(self.conf), "-n", self.node.name], "squid -k parse")

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.spawn(["squid", "-N", "-f", str(self.conf), "-n", self.node.name])

    def wait_ready(self, timeout: float) -> None:
        # its own words that it listens (a probe connection would add a line to the access log)
        def accepting() -> bool:
            try:
                return "Accepting HTTP Socket connections" in (self.home / "cache.log").read_text(errors="replace")
            except OSError:
                return False

        self.poll(accepting, timeout, f"accept connections on {self.node.ip}:{self.policy.port if self.policy else 0}")

    def logs(self) -> list[Path]:
        return [self.home / "access.log", self.home / "cache.log"]

    def version(self) -> str:
        return command_version(["squid", "-v"])


@dataclass
class Nginx(Service):
    names: list[str] = field(default_factory=list)

    daemon = "nginx"
    roles = ("web",)
    stage = 70
    commands = ("nginx",)

    @classmethod
    def from_plan(cls, node: Any, dep: Deployment) -> "Nginx":
        plan = node.plan
        aliases = dep.plan.topology.data.nodes[node.name].aliases
        return cls(node, dep, names=[plan.fqdn, *(f"{a}.{plan.domain}" for a in aliases)])

    @property
    def home(self) -> Path:
        return self.node.dir / "nginx"

    def templates(self) -> list[Template]:
        h = self.home
        ctx = {
            "node": self.node.name,
            "dir": str(h),
            "listen": self.node.ip,
            "cert": str(h / "server.crt"),
            "key": str(h / "server.key"),
            "sites": [{"name": n} for n in self.names],
        }
        out = [Template(TEMPLATES, "nginx.conf.j2", ctx, h / "nginx.conf")]
        for n in self.names:
            page = {"site": n, "fqdn": self.node.plan.fqdn, "address": self.node.ip}
            out.append(Template(TEMPLATES, "site.html.j2", page, h / "www" / n / "index.html"))
        return out

    def render(self) -> None:
        h = self.home
        for d in (h, h / "tmp", h / "www"):
            d.mkdir(parents=True, exist_ok=True)
        cert = self.dep.ca.issue(self.names[0], self.names[1:], [self.node.ip] if self.node.ip else [], h / "pki")
        shutil.copyfile(cert.cert, h / "server.crt")
        shutil.copyfile(cert.key, h / "server.key")
        (h / "server.key").chmod(0o600)
        super().render()

    def _argv(self, *extra: str) -> list[str]:
        return [
            "nginx",
            "-c",
            str(self.home / "nginx.conf"),
            "-p",
            str(self.home),
            "-e",
            str(self.home / "error.log"),
            *extra,
        ]

    def check(self) -> None:
        self.run_checked(self._argv("-t"), "nginx -t")

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.spawn(self._argv())

    def wait_ready(self, timeout: float) -> None:
        ip = str(self.node.ip)

        head = f"HEAD / HTTP/1.0\r\nHost: {self.names[0]}\r\n\r\n".encode()
        self.poll(lambda: self.greets(ip, 80, b"HTTP/1.1 200", head), timeout, f"answer HTTP on {ip}:80")

    def logs(self) -> list[Path]:
        return [self.home / "access.log", self.home / "error.log"]

    def version(self) -> str:
        return command_version(["nginx", "-v"])
