"""An attacker's middlebox on a router: the STARTTLS-stripping SMTP proxy (``lab.middlebox``).

The proxy starts first, then an nftables table of its own (``ip labstrip``) redirects
every TCP connection to port 25 crossing the router to it.  Stopping it (a scenario's
``service`` step) removes the table first: mail flows directly again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lab.model.plan import NodePlan, Plan
from lab.services.base import TEMPLATES, Service, Template

PROXY_PORT = 10025


class StartTlsStrip(Service):
    daemon = "starttls-strip"
    roles = ("router", "firewall")
    stage = 12
    commands = ("nft",)

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return plan.topology.data.nodes[node.name].middlebox == "starttls-strip"

    @property
    def home(self) -> Path:
        return self.node.dir / "middlebox"

    def templates(self) -> list[Template]:
        ctx = {"node": self.node.name, "port": PROXY_PORT}
        return [Template(TEMPLATES, "strip-nftables.conf.j2", ctx, self.home / "strip-nftables.conf")]

    def check(self) -> None:
        self.run_checked(["nft", "-c", "-f", str(self.home / "strip-nftables.conf")], "nft -c")

    def start(self) -> None:
        self.started_at = time.monotonic()
        log = self.home / "middlebox.log"
        self.spawn([sys.executable, "-m", "lab.middlebox", "strip-starttls", str(PROXY_PORT), str(log)])

    def wait_ready(self, timeout: float) -> None:
        self.poll(lambda: self.listens("127.0.0.1", PROXY_PORT), timeout, f"listen on port {PROXY_PORT}")
        self.run_checked(["nft", "-f", str(self.home / "strip-nftables.conf")], "nft -f (the redirect to the proxy)")

    def stop(self) -> list[int]:
        self.node.run(["nft", "delete", "table", "ip", "labstrip"])
        return super().stop()

    def logs(self) -> list[Path]:
        return [self.home / "middlebox.log"]
