"""fail2ban on a mail node: failed logins on submission, IMAP and POP3 get the source banned
in the node's own nftables.

Debian's /etc/fail2ban is copied into the node's folder (its filters and actions), its
jail.d (which enables sshd) is left out, and ``fail2ban.local`` pins the socket, pid
file, database and log into the node's folder.  The server runs inside the node's
namespaces, so its nftables table is the node's, never the machine's.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

from lab.model.plan import MailHost, NodePlan, Plan
from lab.services.base import MAILNODE, Service, Template, command_version, read_pid

FINDTIME, BANTIME = 120, 600
JAILS = ("postfix", "dovecot")


class Fail2ban(Service):
    daemon = "fail2ban"
    roles = ("mail",)
    stage = 70  # after Postfix and Dovecot: their logs exist
    ready_by: ClassVar[int] = 100
    commands = ("fail2ban-client", "fail2ban-server")

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        host = plan.mail.get(node.name)
        return node.role == "mail" and host is not None and host.fail2ban

    @property
    def host(self) -> MailHost:
        return self.dep.plan.mail[self.node.name]

    @property
    def home(self) -> Path:
        return self.node.dir / "fail2ban"

    def templates(self) -> list[Template]:
        ctx: dict[str, Any] = {
            "hostname": self.host.hostname,
            "home": str(self.home),
            "maxretry": self.dep.plan.topology.data.security.maxretry,
            "findtime": FINDTIME,
            "bantime": BANTIME,
        }
        etc = self.home / "etc"
        return [Template(MAILNODE / "fail2ban", f"{n}.j2", ctx, etc / n) for n in ("fail2ban.local", "jail.local")]

    def render(self) -> None:
        etc = self.home / "etc"
        if not etc.exists():
            shutil.copytree("/etc/fail2ban", etc, symlinks=True)
        shutil.rmtree(etc / "jail.d", ignore_errors=True)  # Debian's enables sshd
        (etc / "jail.d").mkdir()
        (self.home / "run").mkdir(parents=True, exist_ok=True)
        super().render()

    def client(self, *args: str) -> list[str]:
        h = self.home
        return [
            "fail2ban-client",
            "-c",
            str(h / "etc"),
            "-s",
            str(h / "run" / "fail2ban.sock"),
            "-p",
            str(h / "run" / "fail2ban.pid"),
            *args,
        ]

    def check(self) -> None:
        self.run_checked(self.client("-t"), "fail2ban-client -t")

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.run_checked(self.client("-x", "start"), "starting fail2ban", output=self.start_log())
        self.pid = read_pid(self.home / "run" / "fail2ban.pid", timeout=10)

    def wait_ready(self, timeout: float) -> None:
        def jails() -> bool:
            r = self.node.run(self.client("status"), timeout=5)
            return r.returncode == 0 and all(j in r.stdout for j in JAILS)

        self.poll(jails, timeout, "answer with its jails (fail2ban-client status)")

    def banned(self, jail: str) -> list[str]:
        """The addresses a jail holds banned now."""
        r = self.node.run(self.client("status", jail), timeout=10)
        for line in r.stdout.splitlines():
            if "Banned IP list:" in line:
                return line.split(":", 1)[1].split()
        return []

    def stop(self) -> list[int]:
        self.pid = self.pid or read_pid(self.home / "run" / "fail2ban.pid")
        return super().stop()

    def logs(self) -> list[Path]:
        return [self.home / "fail2ban.log"]

    def version(self) -> str:
        return command_version(["fail2ban-client", "--version"])
