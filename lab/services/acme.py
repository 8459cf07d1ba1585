"""Certificates as the thesis got them, by ACME: Pebble as the lab's own ACME CA, and
certbot on the nodes whose ``certificate:`` is ``acme``.

Pebble (Debian's, a test CA) runs on the ``acme`` node with a TLS certificate of the
run's lab CA; its own root changes on every start, so once it answers the root is
added to the bundle every client of the run trusts (``LabCA.trust``).  It validates
HTTP-01 challenges by asking the lab's DNS (``-dnsserver``) for the name and
connecting to port 80 there.

Certbot is a one-shot service (stage 45, before Postfix, Dovecot, Apache and Radicale,
which all serve its certificate): ``certbot certonly --standalone`` inside the node,
with per-run config, work and log folders.  ``Certbot.renew`` is a forced renewal
through Apache's webroot (or standalone where no Apache runs), used by the
``certificate`` step; the step then reloads the node's daemons.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.runtime.node import netns
from lab.services import certs
from lab.services.base import Service, Template, command_version

DIR_PORT = 14000
MGMT_PORT = 15000


class Pebble(Service):
    daemon = "pebble"
    roles = ("acme",)
    stage = 42  # after DNS: it resolves the names it validates through the lab's DNS
    commands = ("pebble",)

    @property
    def home(self) -> Path:
        return self.node.dir / "pebble"

    def dns_server(self) -> str:
        servers = self.node.plan.dns_servers
        return f"{servers[0]}:53" if servers else "127.0.0.1:53"

    def config(self) -> dict[str, Any]:
        return {
            "pebble": {
                "listenAddress": f"{self.node.ip}:{DIR_PORT}",
                "managementListenAddress": f"{self.node.ip}:{MGMT_PORT}",
                "certificate": str(self.home / "tls.pem"),
                "privateKey": str(self.home / "tls.key"),
                "httpPort": 80,
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }

    def templates(self) -> list[Template]:
        return []

    def render(self) -> None:
        # its own TLS certificate (the ACME API is HTTPS), from the run's lab CA
        self.dep.ca.issue(self.node.plan.fqdn, [], [self.node.ip or ""], self.home, name="tls")
        self.write(self.home / "pebble.json", json.dumps(self.config(), indent=2) + "\n")

    @property
    def log(self) -> Path:
        return self.home / "pebble.log"

    def start(self) -> None:
        self.started_at = time.monotonic()
        p = self.node.spawn(
            ["pebble", "-config", str(self.home / "pebble.json"), "-dnsserver", self.dns_server()],
            env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
            log=self.log,
        )
        self.pid = p.pid

    def _get(self, port: int, path: str) -> bytes:
        ctx = ssl.create_default_context(cafile=str(self.dep.ca.ca_file))
        ctx.check_hostname = False  # asked by address from the root side
        with (
            netns(self.node.pid),
            urllib.request.urlopen(f"https://{self.node.ip}:{port}{path}", context=ctx, timeout=2) as r,
        ):
            return bytes(r.read())

    def wait_ready(self, timeout: float) -> None:
        self.poll(lambda: b"newAccount" in self._get(DIR_PORT, "/dir"), timeout, f"serve its directory on {DIR_PORT}")
        root = self._get(MGMT_PORT, "/roots/0")
        (self.home / "root.pem").write_bytes(root)
        self.dep.ca.trust(root)

    def logs(self) -> list[Path]:
        return [self.log]

    def version(self) -> str:
        return command_version(["dpkg-query", "-W", "-f=${Version}", "pebble"])


class Certbot(Service):
    """certbot on a node whose certificate comes from the lab's ACME CA (one shot)."""

    daemon = "certbot"
    stage = 45  # before every daemon that serves the certificate
    commands = ("certbot",)
    ready_timeout = 60.0

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return node.role != "switch" and certs.source(plan, node.name) == "acme"

    @property
    def home(self) -> Path:
        return self.node.dir / "certbot"

    def acme_url(self) -> str:
        ca = next(n for n in self.dep.plan.nodes.values() if n.role == "acme")
        return f"https://{ca.fqdn}:{DIR_PORT}/dir"

    def argv(self, *how: str) -> list[str]:
        h = self.home
        return [
            "certbot",
            "certonly",
            "--non-interactive",
            "--agree-tos",
            "--register-unsafely-without-email",
            "--no-eff-email",
            "--no-random-sleep-on-renew",
            "--server",
            self.acme_url(),
            "--config-dir",
            str(h / "config"),
            "--work-dir",
            str(h / "work"),
            "--logs-dir",
            str(h / "logs"),
            "--key-type",
            "ecdsa",
            "--cert-name",
            self.node.plan.fqdn,
            "-d",
            self.node.plan.fqdn,
            *how,
        ]

    @property
    def live(self) -> Path:
        return self.home / "config" / "live" / self.node.plan.fqdn

    def _run(self, *how: str) -> str:
        env = {"REQUESTS_CA_BUNDLE": str(self.dep.ca.ca_file), "HOME": str(self.home)}
        r = self.node.run(self.argv(*how), env=env, timeout=90, output=self.start_log())
        if r.returncode != 0:
            raise self.fail(f"certbot failed (exit {r.returncode})", extra=r.stdout.strip()[-3000:])
        return r.stdout

    def render(self) -> None:
        for sub in ("config", "work", "logs"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._run("--standalone", "--preferred-challenges", "http")

    def wait_ready(self, timeout: float) -> None:
        self.poll(lambda: (self.live / "fullchain.pem").exists(), timeout, "write the certificate")
        certs.install(self.node.dir, self.live / "fullchain.pem", self.live / "privkey.pem")

    def renew(self, webroot: Path | None) -> str:
        """A forced renewal (through Apache's webroot when Apache serves port 80); the new
        certificate is installed where the node's daemons read it (they still need a reload)."""
        how = ["--webroot", "-w", str(webroot)] if webroot else ["--standalone"]
        out = self._run("--force-renewal", "--preferred-challenges", "http", *how)
        certs.install(self.node.dir, self.live / "fullchain.pem", self.live / "privkey.pem")
        return out

    def stop(self) -> list[int]:
        return []

    def logs(self) -> list[Path]:
        return [self.home / "logs" / "letsencrypt.log"]

    def version(self) -> str:
        return command_version(["certbot", "--version"])
