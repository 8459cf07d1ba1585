"""The mail programs of a host, set up for the person there (no daemon).

A host whose plan names a mail account (``NodePlan.user``: the topology's ``user``, or
the next user of its domain) gets its own /root (a folder of the node, not the
machine's) holding ``.mailrc`` for s-nail (IMAPS inbox, submission with STARTTLS and
AUTH) and ``.swaksrc`` for swaks, both trusting only the lab's CA.  Inside the node
``s-nail`` reads that user's inbox and ``swaks --to bob@projet.dz`` sends as them.

Nothing from the topology reaches these files unchecked: names and domains are
validated, and the login and password go in percent-encoded (the s-nail URLs) or, for
swaks, only when the password has no whitespace (validation refuses control
characters in passwords).
"""

from __future__ import annotations

import shutil
import urllib.parse
from pathlib import Path
from typing import Any

from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.services.base import TEMPLATES, Service, Template


class MailClient(Service):
    daemon = "mail-client"
    roles = ("host",)
    stage = 95  # after the DHCP clients: nothing waits on it
    commands = ("s-nail", "swaks")
    ready_timeout = 1.0

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return node.role == "host" and node.user is not None and _server(plan, node.user) is not None

    @classmethod
    def private_dirs(cls, ndir: Path) -> list[Any]:
        home = ndir / "home"
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        return [("/root", str(home))]

    @property
    def home(self) -> Path:
        return self.node.dir / "home"

    def templates(self) -> list[Template]:
        ctx = client_context(self.dep.plan, self.node.plan)
        return [
            Template(TEMPLATES, "s-nail.rc.j2", ctx, self.home / ".mailrc", "/root/.mailrc", 0o600),
            Template(TEMPLATES, "swaksrc.j2", ctx, self.home / ".swaksrc", "/root/.swaksrc", 0o600),
        ]

    def render(self) -> None:
        super().render()
        shutil.copyfile(self.dep.ca.ca_file, self.home / ".lab-ca.pem")

    def start(self) -> None:
        pass  # no daemon: the files are the service

    def wait_ready(self, timeout: float) -> None:
        pass

    def stop(self) -> list[int]:
        return []


def client_context(plan: Plan, node: NodePlan) -> dict[str, Any]:
    """What .mailrc and .swaksrc say for ``node``'s user (pure: the template tests use it)."""
    user = node.user
    assert user is not None
    password = _password(plan, user)

    def quote(s: str) -> str:
        return urllib.parse.quote(s, safe="")

    return {
        "user": user,
        "fqdn": node.fqdn,
        "server": _server(plan, user),
        "login_q": quote(user),
        "password_q": quote(password),
        # swaks reads the rest of the line: a password with spaces is asked for instead
        "password": password if password.isprintable() and not any(c.isspace() for c in password) else "",
        "ca_file": "/root/.lab-ca.pem",
    }


def _server(plan: Plan, user: str) -> str | None:
    dom = user.partition("@")[2]
    return next((m.hostname for m in plan.mail.values() if dom in m.domains), None)


def _password(plan: Plan, user: str) -> str:
    local, _, dom = user.partition("@")
    return next(
        (u.password for m in plan.mail.values() for u in m.users if u.name == local and u.domain == dom),
        "",
    )
