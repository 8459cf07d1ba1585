"""BIND 9 (named), authoritative for the lab's zones, one instance per DNS node."""
from __future__ import annotations

import pwd
import shutil
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from lab.runtime.node import netns
from lab.services.base import TEMPLATES, Service, command_version, read_pid, render_template, stop_pid


class Bind(Service):
    daemon = "named"

    @property
    def home(self) -> Path:
        return self.node.dir / "named"

    def zones(self) -> list:
        return [z for z in self.dep.plan.zones if z.server == self.node.name]

    def render(self) -> None:
        home = self.home
        home.mkdir(parents=True, exist_ok=True)
        zones = []
        serial = int(time.strftime("%Y%m%d")) * 100 + 1
        for z in self.zones():
            zfile = home / f"db.{z.name}"
            self.write(zfile, render_template(
                TEMPLATES, "zone.db.j2", origin=f"{z.name}.", ttl=300, serial=serial,
                primary_ns=f"{self.node.plan.fqdn}.", admin=f"hostmaster.{self.node.plan.fqdn.split('.', 1)[1]}.",
                records=z.records))
            zones.append({"name": z.name, "file": str(zfile)})
        forwards = self.dep.plan.forwards.get(self.node.name, [])
        if forwards:
            self.write(home / "db.root", render_template(
                TEMPLATES, "zone.db.j2", origin=".", ttl=300, serial=serial, primary_ns=f"{self.node.plan.fqdn}.",
                admin=f"hostmaster.{self.node.plan.fqdn.split('.', 1)[1]}.",
                records=[{"owner": "@", "type": "NS", "value": f"{self.node.plan.fqdn}."},
                         {"owner": f"{self.node.plan.fqdn}.", "type": "A", "value": self.node.ip},
                         *({"owner": f"{f.zone}.", "type": "NS", "value": f"{f.ns}."} for f in forwards),
                         *({"owner": f"{f.ns}.", "type": "A", "value": ip} for f in forwards for ip in f.servers)]))
        self.write(home / "named.conf", render_template(TEMPLATES, "named.conf.j2", dir=str(home),
                                                         listen=self.node.ip, zones=zones, forwards=bool(forwards)))
        key = home / "rndc.key"
        if not key.exists():
            subprocess.run(["rndc-confgen", "-a", "-A", "hmac-sha256", "-k", "rndc-key", "-c", str(key)],
                           check=True, capture_output=True, stdin=subprocess.DEVNULL)
        bind = pwd.getpwnam("bind")
        for p in [home, *home.iterdir()]:
            shutil.chown(p, bind.pw_uid, bind.pw_gid)
        home.chmod(0o750)
        key.chmod(0o640)

    def check(self) -> None:
        self.run_checked(["named-checkconf", "-z", str(self.home / "named.conf")], "named-checkconf", inside=False)
        for z in self.zones():
            self.run_checked(["named-checkzone", z.name, str(self.home / f"db.{z.name}")],
                             f"named-checkzone {z.name}", inside=False)

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.run_checked(["named", "-u", "bind", "-L", str(self.home / "early.log"),
                          "-c", str(self.home / "named.conf")], "starting named",
                         output=self.start_log())
        self.pid = read_pid(self.home / "named.pid", timeout=5)
        if self.pid is None:
            raise self.fail("started but wrote no pid file")

    def wait_ready(self, timeout: float) -> None:
        self._wait_ready_impl(timeout)

    def _wait_ready_impl(self, timeout: float) -> None:
        zones = self.zones()
        zone = zones[0].name if zones else "."
        query = dns.message.make_query(zone, dns.rdatatype.SOA)

        def answers() -> bool:
            with netns(self.node.pid):
                r = dns.query.udp(query, self.node.ip, timeout=0.3)
            return bool(r.answer) or not zones
        self.poll(answers, timeout, "answer a DNS query for " + zone)

    def stop(self) -> None:
        pid = self.pid or read_pid(self.home / "named.pid")
        stop_pid(pid)

    def logs(self) -> list[Path]:
        return [self.home / "early.log", self.home / "named.log", self.home / "queries.log"]

    def version(self) -> str:
        return command_version(["named", "-v"])
