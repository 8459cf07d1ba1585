"""BIND 9 (named), authoritative for the lab's zones, one instance per DNS node."""

from __future__ import annotations

import pwd
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

import dns.message
import dns.query
import dns.rdatatype

from lab.model.zones import Record, Zone, txt_strings
from lab.runtime.node import netns
from lab.services.base import TEMPLATES, Deployment, Rendered, Service, Template, command_version, read_pid


class Bind(Service):
    daemon = "named"
    roles = ("dns",)
    commands = ("named", "named-checkconf", "named-checkzone", "rndc-confgen", "dnssec-signzone")
    stage = 30
    ready_by: ClassVar[int] = 100  # waited for at the end, or before an ACME CA

    @classmethod
    def from_plan(cls, node: Any, dep: Deployment) -> "Bind":
        svc = cls(node, dep)
        # the lab's ACME CA (stage 42) resolves the names it validates: named answers first
        if any(n.role == "acme" for n in dep.plan.nodes.values()):
            svc.ready_by = 42  # type: ignore[misc]
        return svc

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

    @property
    def dnssec(self) -> bool:
        return self.dep.plan.topology.data.security.dnssec

    def _records(self, zone: str, records: list[Record]) -> list[dict[str, str]]:
        """Zone-file lines: per-run values filled in (DKIM, TLSA, DS), TXT quoted, and the
        zone's own DNSKEY when it is signed."""
        out = []
        for r in records:
            value = self.dep.keys.fill(r.key) if r.key else r.value
            out.append({"owner": r.owner, "type": r.type, "value": txt_strings(value) if r.type == "TXT" else value})
        if self.dnssec:
            out.append({"owner": "@", "type": "DNSKEY", "value": self.dep.keys.zone_key(self.node.name, zone).dnskey})
        return out

    def zone_files(self) -> list[tuple[str, Path]]:
        """(zone, the file named loads) of every zone this server serves, the lab root last."""
        names = [z.name for z in self.zones()] + (["."] if self.dep.plan.forwards.get(self.node.name) else [])
        suffix = ".signed" if self.dnssec else ""
        return [(n, self.home / (f"db.{n}{suffix}" if n != "." else f"db.root{suffix}")) for n in names]

    def templates(self) -> list[Template]:
        home, fqdn = self.home, self.node.plan.fqdn
        out = [
            Template(
                TEMPLATES,
                "zone.db.j2",
                self._zone_ctx(f"{z.name}.", self._records(z.name, z.records)),
                home / f"db.{z.name}",
            )
            for z in self.zones()
        ]
        forwards = self.dep.plan.forwards.get(self.node.name, [])
        if forwards:
            records = [
                Record("@", "NS", f"{fqdn}."),
                Record(f"{fqdn}.", "A", str(self.node.ip)),
                *(Record(f"{f.zone}.", "NS", f"{f.ns}.") for f in forwards),
                *(Record(f"{f.ns}.", "A", ip) for f in forwards for ip in f.servers),
                # the chain of trust: the root vouches for each child's key
                *(Record(f"{f.zone}.", "DS", "", key=f"ds:{f.server}:{f.zone}") for f in forwards if self.dnssec),
            ]
            out.append(
                Template(TEMPLATES, "zone.db.j2", self._zone_ctx(".", self._records(".", records)), home / "db.root")
            )
        zones = [{"name": n, "file": str(f)} for n, f in self.zone_files() if n != "."]
        anchor = None
        if forwards and self.dnssec:
            flags, protocol, algorithm, *key = self.dep.keys.zone_key(self.node.name, ".").dnskey.split()
            anchor = {"flags": flags, "protocol": protocol, "algorithm": algorithm, "key": "".join(key)}
        ctx = {
            "dir": str(home),
            "listen": self.node.ip,
            "zones": zones,
            "forwards": bool(forwards),
            "root_file": str(dict(self.zone_files()).get(".", "")),
            "dnssec": self.dnssec,
            "trust_anchor": anchor,
        }
        out.append(Template(TEMPLATES, "named.conf.j2", ctx, home / "named.conf"))
        return out

    def _sign(self) -> None:
        """dnssec-signzone every zone with its per-run key (BIND's own signer, before named
        starts: the zones are signed from the first answer, and the DS and trust anchor
        are known at render time)."""
        keydir = self.home / "keys"
        keydir.mkdir(exist_ok=True)
        for zone, signed in self.zone_files():
            k = self.dep.keys.zone_key(self.node.name, zone)
            (keydir / f"{k.basename}.key").write_text(k.key_file)
            (keydir / f"{k.basename}.private").write_text(k.private_file)
            (keydir / f"{k.basename}.private").chmod(0o600)
            unsigned = signed.with_suffix("")
            origin = zone if zone == "." else f"{zone}."
            self.run_checked(
                ["dnssec-signzone", "-q", "-o", origin, "-K", str(keydir), "-z", "-f", str(signed)]
                + [str(unsigned), str(keydir / k.basename)],
                f"dnssec-signzone {zone}",
                inside=False,
                cwd=str(self.home),
            )
            self.rendered.append(Rendered(signed, str(signed)))

    def render(self) -> None:
        home = self.home
        home.mkdir(parents=True, exist_ok=True)
        super().render()
        if self.dnssec:
            self._sign()
        key = home / "rndc.key"
        if not key.exists():
            subprocess.run(
                ["rndc-confgen", "-a", "-A", "hmac-sha256", "-k", "rndc-key", "-c", str(key)],
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
            )
        bind = pwd.getpwnam("bind")
        for p in [home, *home.rglob("*")]:
            shutil.chown(p, bind.pw_uid, bind.pw_gid)
        home.chmod(0o750)
        key.chmod(0o640)

    def check(self) -> None:
        self.run_checked(["named-checkconf", "-z", str(self.home / "named.conf")], "named-checkconf", inside=False)
        for zone, path in self.zone_files():
            self.run_checked(["named-checkzone", zone, str(path)], f"named-checkzone {zone}", inside=False)

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
