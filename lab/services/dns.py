"""BIND 9 (named), authoritative for the lab's zones, one instance per DNS node."""

from __future__ import annotations

import pwd
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype

from lab.model.zones import Zone
from lab.runtime.node import netns
from lab.services.base import TEMPLATES, Service, Template, command_version, read_pid


class Bind(Service):
    daemon = "named"
    roles = ("dns",)
    commands = ("named", "named-checkconf", "named-checkzone", "rndc-confgen")
    stage = 30

    @property
    def home(self) -> Path:
        return self.node.dir / "named"

    def zones(self) -> list[Zone]:
        return [z for z in self.dep.plan.zones if z.server == self.node.name]

    def _zone_ctx(self, origin: str, records: list[Any]) -> dict[str, Any]:
        fqdn = self.node.plan.fqdn
        return {
            "origin": origin,
            "ttl": 300,
            "serial": int(time.strftime("%Y%m%d")) * 100 + 1,
            "primary_ns": f"{fqdn}.",
            "admin": f"hostmaster.{fqdn.split('.', 1)[1]}.",
            "records": records,
        }

    def templates(self) -> list[Template]:
        home, fqdn = self.home, self.node.plan.fqdn
        out = [
            Template(TEMPLATES, "zone.db.j2", self._zone_ctx(f"{z.name}.", z.records), home / f"db.{z.name}")
            for z in self.zones()
        ]
        forwards = self.dep.plan.forwards.get(self.node.name, [])
        if forwards:
            records = [
                {"owner": "@", "type": "NS", "value": f"{fqdn}."},
                {"owner": f"{fqdn}.", "type": "A", "value": self.node.ip},
                *({"owner": f"{f.zone}.", "type": "NS", "value": f"{f.ns}."} for f in forwards),
                *({"owner": f"{f.ns}.", "type": "A", "value": ip} for f in forwards for ip in f.servers),
            ]
            out.append(Template(TEMPLATES, "zone.db.j2", self._zone_ctx(".", records), home / "db.root"))
        zones = [{"name": z.name, "file": str(home / f"db.{z.name}")} for z in self.zones()]
        out.append(
            Template(
                TEMPLATES,
                "named.conf.j2",
                {"dir": str(home), "listen": self.node.ip, "zones": zones, "forwards": bool(forwards)},
                home / "named.conf",
            )
        )
        return out

    def render(self) -> None:
        home = self.home
        home.mkdir(parents=True, exist_ok=True)
        super().render()
        key = home / "rndc.key"
        if not key.exists():
            subprocess.run(
                ["rndc-confgen", "-a", "-A", "hmac-sha256", "-k", "rndc-key", "-c", str(key)],
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
            )
        bind = pwd.getpwnam("bind")
        for p in [home, *home.iterdir()]:
            shutil.chown(p, bind.pw_uid, bind.pw_gid)
        home.chmod(0o750)
        key.chmod(0o640)

    def check(self) -> None:
        self.run_checked(["named-checkconf", "-z", str(self.home / "named.conf")], "named-checkconf", inside=False)
        for z in self.zones():
            self.run_checked(
                ["named-checkzone", z.name, str(self.home / f"db.{z.name}")], f"named-checkzone {z.name}", inside=False
            )

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.run_checked(
            ["named", "-u", "bind", "-L", str(self.home / "early.log"), "-c", str(self.home / "named.conf")],
            "starting named",
            output=self.start_log(),
        )
        self.pid = read_pid(self.home / "named.pid", timeout=5)
        if self.pid is None:
            raise self.fail("started but wrote no pid file")

    def wait_ready(self, timeout: float) -> None:
        zones = self.zones()
        zone = zones[0].name if zones else "."
        query = dns.message.make_query(zone, dns.rdatatype.SOA)

        ip = str(self.node.ip)

        def answers() -> bool:
            with netns(self.node.pid):
                r = dns.query.udp(query, ip, timeout=0.3)
            return bool(r.answer) or not zones

        self.poll(answers, timeout, "answer a DNS query for " + zone)

    def stop(self) -> list[int]:
        self.pid = self.pid or read_pid(self.home / "named.pid")
        return super().stop()

    def logs(self) -> list[Path]:
        return [self.home / "early.log", self.home / "named.log", self.home / "queries.log"]

    def version(self) -> str:
        return command_version(["named", "-v"])
