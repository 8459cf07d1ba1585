"""Roundcube webmail (Debian's roundcube-core 1.6) under Apache 2.4 with mod_php, HTTPS only.

Runs on a ``webmail`` node, or on a mail node whose ``services:`` list ``webmail`` (as in
the thesis: mail.projet.dz/mail).  Apache gets one self-contained config rendered here
(no copy of the machine's /etc/apache2 is edited); Roundcube's own folders are private
to the node by bind mounts (its config, its sqlite database, its temp and log folders),
so several webmail nodes never share a session table or a log.  Roundcube logs into
the mail node over IMAPS (993) and submits over 587 with STARTTLS and the user's own
login, verifying the mail node's certificate against the run's trusted CAs.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.runtime.node import netns
from lab.services import certs
from lab.services.base import TEMPLATES, Service, Template, command_version, read_pid

#: (mount point inside the node, folder under the node's dir)
WEBMAIL_PRIVATE_DIRS = [
    ("/etc/roundcube", "etc-roundcube"),
    ("/var/lib/dbconfig-common/sqlite3/roundcube", "roundcube-db"),
    ("/var/lib/roundcube/temp", "roundcube-temp"),
    ("/var/log/roundcube", "roundcube-log"),
]
RC_DB = Path("/var/lib/dbconfig-common/sqlite3/roundcube/roundcube")
#: the URL path of Roundcube, as in the thesis (mail.projet.dz/mail)
PATH = "mail"
MODULES = ("authz_core", "authz_host", "alias", "dir", "mime", "ssl", "socache_shmcb", "filter", "deflate", "expires")


def php_module() -> str:
    found = sorted(Path(p).name for p in glob.glob("/usr/lib/apache2/modules/libphp*.so"))
    return found[-1] if found else "libphp8.2.so"


def mail_server(plan: Plan, node: str) -> str:
    """The mail node Roundcube logs into: the node itself, its ``mail_server``, or the only one."""
    n = plan.topology.data.nodes[node]
    if n.role == "mail":
        return node
    if n.mail_server:
        return n.mail_server
    return next(name for name, v in plan.nodes.items() if v.role == "mail")


@dataclass
class Apache(Service):
    #: Roundcube's session-encryption key, one per node and run
    des_key: str = field(default_factory=lambda: secrets.token_hex(12))

    daemon = "apache2"
    stage = 70  # after the mail node's daemons it logs into
    commands = ("apache2", "php")

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return node.role == "webmail" or "webmail" in plan.topology.data.nodes[node.name].services

    @classmethod
    def private_dirs(cls, ndir: Path) -> list[Any]:
        www = pwd.getpwnam("www-data")
        etc = ndir / "etc-roundcube"
        if not etc.exists():
            shutil.copytree("/etc/roundcube", etc, symlinks=True)
        db = ndir / "roundcube-db"
        db.mkdir(parents=True, exist_ok=True)
        if RC_DB.exists() and not (db / "roundcube").exists():
            shutil.copy2(RC_DB, db / "roundcube")
        for d in (db, ndir / "roundcube-temp", ndir / "roundcube-log"):
            d.mkdir(parents=True, exist_ok=True)
            for p in [d, *d.iterdir()]:
                os.chown(p, www.pw_uid, www.pw_gid)
            d.chmod(0o770)
        return [(mount, str(ndir / sub)) for mount, sub in WEBMAIL_PRIVATE_DIRS]

    @property
    def home(self) -> Path:
        return self.node.dir / "apache"

    @property
    def webroot(self) -> Path:
        """Where certbot puts HTTP-01 challenges; Apache serves it on port 80."""
        return self.home / "acme-webroot"

    @property
    def hostname(self) -> str:
        return self.node.plan.fqdn

    def context(self) -> dict[str, Any]:
        crt, key = certs.paths(self.node.dir)
        plan = self.dep.plan
        return {
            "hostname": self.hostname,
            "run": str(self.home / "run"),
            "logs": str(self.home / "logs"),
            "webroot": str(self.webroot),
            "cert_file": str(crt),
            "key_file": str(key),
            "path": PATH,
            "modules": MODULES,
            "php_module": php_module(),
            "mail_host": plan.nodes[mail_server(plan, self.node.name)].fqdn,
            "ca_file": "/etc/roundcube/lab-ca.pem",
            "product_name": f"Webmail {self.node.plan.domain}",
            "des_key": self.des_key,
        }

    def templates(self) -> list[Template]:
        ctx = self.context()
        return [
            Template(TEMPLATES, "apache2.conf.j2", ctx, self.home / "apache2.conf"),
            Template(
                TEMPLATES,
                "roundcube.config.inc.php.j2",
                ctx,
                self.node.dir / "etc-roundcube" / "config.inc.php",
                "/etc/roundcube/config.inc.php",
                mode=0o640,
            ),
        ]

    def render(self) -> None:
        for d in (self.home / "run", self.home / "logs", self.webroot / ".well-known" / "acme-challenge"):
            d.mkdir(parents=True, exist_ok=True)
        certs.ensure(self.dep.plan, self.dep.ca, self.node.name, self.node.dir, self.node.ip)
        shutil.copyfile(self.dep.ca.ca_file, self.node.dir / "etc-roundcube" / "lab-ca.pem")
        super().render()
        os.chown(self.node.dir / "etc-roundcube" / "config.inc.php", 0, pwd.getpwnam("www-data").pw_gid)

    def check(self) -> None:
        self.run_checked(["php", "-l", "/etc/roundcube/config.inc.php"], "php -l config.inc.php")
        self.run_checked(["apache2", "-t", "-f", str(self.home / "apache2.conf")], "apache2 -t (configtest)")

    @property
    def pidfile(self) -> Path:
        return self.home / "run" / "apache2.pid"

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.run_checked(
            ["apache2", "-f", str(self.home / "apache2.conf"), "-k", "start"],
            "apache2 -k start",
            output=self.start_log(),
        )
        self.pid = read_pid(self.pidfile, timeout=5)

    def login_page(self) -> bytes:
        ctx = certs.readiness_context(self.dep.plan, self.node.name, self.dep.ca.ca_file)
        with netns(self.node.pid):
            raw = socket.create_connection((self.node.ip, 443), timeout=2)
        with ctx.wrap_socket(raw, server_hostname=self.hostname) as s:
            s.settimeout(5)
            s.sendall(f"GET /{PATH}/ HTTP/1.0\r\nHost: {self.hostname}\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    def wait_ready(self, timeout: float) -> None:
        def answers() -> bool:
            page = self.login_page()
            return page.startswith(b"HTTP/1.1 200") and b"rcmloginuser" in page

        self.poll(answers, timeout, f"answer 200 with Roundcube's login form on https://{self.hostname}/{PATH}/")

    def reload(self) -> None:
        self.run_checked(["apache2", "-f", str(self.home / "apache2.conf"), "-k", "graceful"], "apache2 graceful")

    def stop(self) -> list[int]:
        self.pid = self.pid or read_pid(self.pidfile)
        return super().stop()

    def logs(self) -> list[Path]:
        rc = self.node.dir / "roundcube-log"
        return [
            self.home / "logs" / "error.log",
            self.home / "logs" / "access.log",
            rc / "errors.log",
            rc / "userlogins.log",
            rc / "smtp.log",
        ]

    def version(self) -> str:
        return command_version(["dpkg-query", "-W", "-f=roundcube ${Version}", "roundcube-core"])
