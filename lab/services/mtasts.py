"""MTA-STS in the lab (``security.mta_sts``): the policy each domain serves, and the
resolver each sending mail node asks.

- ``StsPolicy``: nginx on a domain's MX, HTTPS only, serving
  ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (``lab.model.mtasts.policy_text``)
  with a certificate of the run's lab CA for ``mta-sts.<domain>``.  Its own folder,
  config and pid, apart from a web node's nginx.
- ``StsResolver``: ``mta-sts-daemon`` (postfix-mta-sts-resolver) on the mail node's
  loopback; Postfix's ``smtp_tls_policy_maps`` asks it through a socketmap.  It trusts
  the lab CA through ``SSL_CERT_FILE`` (it has no option for a CA file): without it, the
  policy fetch fails and mail would go opportunistic.

Recipe measured on this machine: ../shared/notes/mail-trust.md, section 4.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lab.model import mtasts
from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.runtime.node import netns
from lab.services.base import TEMPLATES, Deployment, Service, Template, command_version
from lab.services.web import Nginx


def _policy_domains(node: str, plan: Plan) -> list[str]:
    """The domains whose MX ``node`` is, when the topology publishes MTA-STS."""
    if not plan.topology.data.security.mta_sts or node not in plan.mail:
        return []
    return list(plan.mail[node].domains)


def _mx_names(domain: str, plan: Plan) -> list[str]:
    return [plan.nodes[plan.topology.data.domains[domain].mail].fqdn]


@dataclass
class StsPolicy(Nginx):
    domains: list[str] = field(default_factory=list)

    daemon = "mta-sts-web"
    roles = ("mail",)
    stage = 48  # started before Postfix ...
    ready_by: ClassVar[int] = 100  # ... and waited for at the end: no daemon needs it, only senders' first relay
    commands = ("nginx",)

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return bool(_policy_domains(node.name, plan))

    @classmethod
    def from_plan(cls, node: Any, dep: Deployment) -> "StsPolicy":
        doms = _policy_domains(node.name, dep.plan)
        return cls(node, dep, names=[f"{mtasts.STS_HOST}.{d}" for d in doms], domains=doms)

    @property
    def home(self) -> Path:
        return self.node.dir / "mta-sts-web"

    def policies(self) -> dict[str, str]:
        """Host name -> the policy text it serves."""
        return {f"{mtasts.STS_HOST}.{d}": mtasts.policy_text(_mx_names(d, self.dep.plan)) for d in self.domains}

    def templates(self) -> list[Template]:
        h = self.home
        ctx = {
            "node": self.node.name,
            "dir": str(h),
            "listen": self.node.ip,
            "cert": str(h / "server.crt"),
            "key": str(h / "server.key"),
            "well_known": mtasts.WELL_KNOWN,
            "sites": [{"name": n} for n in self.names],
        }
        return [Template(TEMPLATES, "mta-sts-nginx.conf.j2", ctx, h / "nginx.conf")]

    def render(self) -> None:
        super().render()  # folders, the certificate, nginx.conf
        for name, text in self.policies().items():
            self.write(self.home / "www" / name / mtasts.WELL_KNOWN.lstrip("/"), text)

    def wait_ready(self, timeout: float) -> None:
        # ready when the policy comes back over HTTPS verified by the lab CA, as a sender gets it
        ip, name = str(self.node.ip), self.names[0]
        ctx = ssl.create_default_context(cafile=str(self.dep.ca.ca_file))

        def serves() -> bool:
            with netns(self.node.pid):
                raw = socket.create_connection((ip, 443), timeout=1)
            with ctx.wrap_socket(raw, server_hostname=name) as s:
                s.sendall(f"GET {mtasts.WELL_KNOWN} HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
                reply = b""
                while chunk := s.recv(4096):  # HTTP/1.0: the server closes after the reply
                    reply += chunk
                return reply.startswith(b"HTTP/1.1 200") and b"version: STSv1" in reply

        self.poll(serves, timeout, f"serve https://{name}{mtasts.WELL_KNOWN}")


@dataclass
class StsResolver(Service):
    daemon = "mta-sts-daemon"
    roles = ("mail",)
    stage = 48  # started before Postfix ...
    ready_by: ClassVar[int] = 100  # ... and waited for at the end: Postfix asks it only when it relays
    commands = ("mta-sts-daemon",)

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return node.name in plan.mail and plan.mail[node.name].mta_sts

    @property
    def home(self) -> Path:
        return self.node.dir / "mta-sts"

    @property
    def conf(self) -> Path:
        return self.home / "mta-sts-daemon.yml"

    def templates(self) -> list[Template]:
        ctx = {"node": self.node.name, "port": mtasts.RESOLVER_PORT}
        return [Template(TEMPLATES, "mta-sts-daemon.yml.j2", ctx, self.conf)]

    def render(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        super().render()
        # its own copy of the trust bundle: the run's CA file may grow (Pebble's root)
        shutil.copyfile(self.dep.ca.ca_file, self.home / "ca.pem")

    def start(self) -> None:
        self.started_at = time.monotonic()
        argv = ["mta-sts-daemon", "-c", str(self.conf), "-l", str(self.home / "mta-sts.log"), "-v", "info"]
        self.spawn(argv, env={"SSL_CERT_FILE": str(self.home / "ca.pem")})

    def wait_ready(self, timeout: float) -> None:
        self.poll(
            lambda: self.listens("127.0.0.1", mtasts.RESOLVER_PORT),
            timeout,
            f"listen on 127.0.0.1:{mtasts.RESOLVER_PORT}",
        )

    def logs(self) -> list[Path]:
        return [self.home / "mta-sts.log"]

    def version(self) -> str:
        return command_version(["dpkg-query", "-W", "-f", "${Version}", "postfix-mta-sts-resolver"])
