"""Radicale (Debian's, CalDAV) for the mail users, on the nodes whose ``services:`` list
``calendar``: meetings as in the thesis's conclusion.

One Radicale per node, over HTTPS on 5232 with the node's certificate, users and
passwords from the topology's mail domains (bcrypt htpasswd), each user owning only
their own calendars (``owner_only``), collections in the node's folder.  Radicale has no
CalDAV scheduling and nothing packaged processes an iMIP invitation, so invitations are
handled by the lab's own small agent (``lab.clients_calendar``), run by the ``invite``
and ``agent`` steps inside a host like any other client.
"""

from __future__ import annotations

import base64
import http.client
import socket
import time
from pathlib import Path
from typing import Any

import bcrypt

from lab.model.nodeplan import NodePlan
from lab.model.plan import MailUser, Plan
from lab.runtime.node import netns
from lab.services import certs
from lab.services.base import TEMPLATES, Service, Template, command_version

PORT = 5232


def calendar_users(plan: Plan, node: str) -> list[MailUser]:
    """The users of this node's mail domains (a mail node), else every mail user."""
    if node in plan.mail and plan.mail[node].users:
        return list(plan.mail[node].users)
    return [u for h in plan.mail.values() for u in h.users]


class Radicale(Service):
    daemon = "radicale"
    stage = 70
    commands = ("radicale",)

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return node.role != "switch" and "calendar" in plan.topology.data.nodes[node.name].services

    @property
    def home(self) -> Path:
        return self.node.dir / "radicale"

    def context(self) -> dict[str, Any]:
        crt, key = certs.paths(self.node.dir)
        return {
            "hostname": self.node.plan.fqdn,
            "listen": f"{self.node.ip}:{PORT}",
            "cert_file": str(crt),
            "key_file": str(key),
            "users_file": str(self.home / "users"),
            "collections": str(self.home / "collections"),
        }

    def templates(self) -> list[Template]:
        return [Template(TEMPLATES, "radicale.conf.j2", self.context(), self.home / "config")]

    def render(self) -> None:
        (self.home / "collections").mkdir(parents=True, exist_ok=True)
        certs.ensure(self.dep.plan, self.dep.ca, self.node.name, self.node.dir, self.node.ip)
        super().render()
        lines = "".join(
            f"{u.address}:{bcrypt.hashpw(u.password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
            for u in calendar_users(self.dep.plan, self.node.name)
        )
        self.write(self.home / "users", lines, mode=0o600)

    def check(self) -> None:
        # Radicale has no config-check mode: its config must at least parse as INI
        import configparser

        cp = configparser.ConfigParser()
        cp.read(self.home / "config")
        if not cp.has_section("server"):
            raise self.fail("radicale config has no [server] section")

    def start(self) -> None:
        self.started_at = time.monotonic()
        p = self.node.spawn(["radicale", "--config", str(self.home / "config")], log=self.log)
        self.pid = p.pid

    @property
    def log(self) -> Path:
        return self.home / "radicale.log"

    def propfind(self, user: MailUser) -> int:
        ctx = certs.readiness_context(self.dep.plan, self.node.name, self.dep.ca.ca_file)
        with netns(self.node.pid):
            raw = socket.create_connection((self.node.ip, PORT), timeout=2)
        conn = http.client.HTTPSConnection(self.node.plan.fqdn, PORT, context=ctx, timeout=5)
        conn.sock = ctx.wrap_socket(raw, server_hostname=self.node.plan.fqdn)
        auth = base64.b64encode(f"{user.address}:{user.password}".encode()).decode()
        conn.request("PROPFIND", f"/{user.address}/", headers={"Authorization": f"Basic {auth}", "Depth": "0"})
        status = conn.getresponse().status
        conn.close()
        return status

    def wait_ready(self, timeout: float) -> None:
        users = calendar_users(self.dep.plan, self.node.name)
        if not users:
            self.poll(lambda: self.listens(str(self.node.ip), PORT), timeout, f"listen on {PORT}")
            return
        self.poll(lambda: self.propfind(users[0]) == 207, timeout, f"answer PROPFIND with 207 on {PORT} (HTTPS)")

    def reload(self) -> None:
        """Radicale reads its certificate at start: restart it."""
        self.stop()
        self.start()
        self.wait_ready(self.ready_timeout)

    def logs(self) -> list[Path]:
        return [self.log]

    def version(self) -> str:
        return command_version(["dpkg-query", "-W", "-f=radicale ${Version}", "radicale"])
