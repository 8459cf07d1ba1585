"""clamd, the virus scanner rspamd asks, with a signature database the lab makes itself.

There is no internet for freshclam, so the node's DatabaseDirectory holds only the lab's
own signatures: the EICAR test file as a body signature (``.ndb``) and as a hash
(``.hdb``).  clamd loads them in under 0.1 s (13 MB resident) instead of the minutes
and the gigabyte the official databases take.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import time
from pathlib import Path
from typing import ClassVar

from lab.model.plan import MailHost, NodePlan, Plan
from lab.services.base import MAILNODE, Service, Template, command_version, read_pid

#: the industry's harmless test file (https://www.eicar.org): every scanner must detect it
EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLAMD_PORT = 3310


def signatures() -> dict[str, str]:
    """The lab's signature files (name: text); clamd reports them as ``<name>.UNOFFICIAL``."""
    data = EICAR.encode()
    return {
        "lab.ndb": f"Lab.Eicar.NDB:0:*:{data.hex()}\n",
        "lab.hdb": f"{hashlib.md5(data).hexdigest()}:{len(data)}:Lab.Eicar.HDB\n",
    }


class Clamd(Service):
    daemon = "clamd"
    roles = ("mail",)
    stage = 22
    ready_by: ClassVar[int] = 100
    commands = ("clamd",)

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        host = plan.mail.get(node.name)
        return node.role == "mail" and host is not None and host.filtering

    @property
    def host(self) -> MailHost:
        return self.dep.plan.mail[self.node.name]

    @property
    def home(self) -> Path:
        return self.node.dir / "clamav"

    def templates(self) -> list[Template]:
        ctx = {"hostname": self.host.hostname, "home": str(self.home), "dbdir": str(self.home / "db")}
        return [Template(MAILNODE / "clamav", "clamd.conf.j2", ctx, self.home / "clamd.conf")]

    def render(self) -> None:
        clamav = pwd.getpwnam("clamav")
        (self.home / "db").mkdir(parents=True, exist_ok=True)
        super().render()
        for name, text in signatures().items():
            self.write(self.home / "db" / name, text)
        for p in [self.home, *self.home.rglob("*")]:
            os.chown(p, clamav.pw_uid, clamav.pw_gid)

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.spawn(["clamd", "-c", str(self.home / "clamd.conf")])

    def wait_ready(self, timeout: float) -> None:
        self.poll(
            lambda: self.greets("127.0.0.1", CLAMD_PORT, b"PONG", b"zPING\0"), timeout, "answer PONG on 127.0.0.1:3310"
        )

    def stop(self) -> list[int]:
        self.pid = self.pid or read_pid(self.home / "clamd.pid")
        return super().stop()

    def logs(self) -> list[Path]:
        return [self.home / "clamd.log"]

    def version(self) -> str:
        return command_version(["clamd", "--version"])
