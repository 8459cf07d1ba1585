"""OpenVPN over TUN: one process per tunnel end, TLS with the run's lab CA.

Each end (``lab.model.vpnplan.TunnelEnd``) gets a folder of its own in the node's
directory: its config, its certificate (a client certificate for clients, the
server's for servers) and key, the CA, a client-config-dir for a remote-access
server (each road warrior's fixed address), its pid file and its log.  The TUN device
was made with the network (``vpn0`` ...); OpenVPN attaches to it.  Ready means the
tunnel is up: the end logs ``Initialization Sequence Completed`` (a client once its
server answered; a site-to-site end once its peer did).  Stop: by pid.

Measured on this machine (../shared/notes/network-and-seed.md, section 2): a TLS tunnel
up in about 1.5 s.  This kernel has no IPsec data path (ESP) nor a WireGuard module,
so OpenVPN, which needs only TUN, is the VPN here.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.model.vpnplan import TunnelEnd
from lab.runtime import proc
from lab.services.base import TEMPLATES, Deployment, Service, Template, command_version, read_pid

READY = "Initialization Sequence Completed"


def _route(cidr: str) -> dict[str, str]:
    net = ipaddress.IPv4Network(cidr)
    return {"net": str(net.network_address), "mask": str(net.netmask)}


def end_context(e: TunnelEnd, folder: Path) -> dict[str, Any]:
    net = ipaddress.IPv4Network(f"{e.address}/{e.prefixlen}", strict=False)
    return {
        "vpn": e.vpn,
        "kind": e.kind,
        "node": e.node,
        "role": e.role,
        "dev": e.dev,
        "local": e.local,
        "port": e.port,
        "remote": e.remote,
        "address": e.address,
        "peer_address": e.peer_address,
        "routes": [_route(r) for r in e.routes],
        "push": [_route(r) for r in e.push],
        "network": str(net.network_address),
        "netmask": str(net.netmask),
        "dir": str(folder),
        "peer_name": e.peer_names[0] if e.role == "client" or e.kind == "site-to-site" else None,
        "cipher": e.cipher,
    }


@dataclass
class OpenVpn(Service):
    ends: list[TunnelEnd] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)

    daemon = "openvpn"
    stage = 25  # after routing, before DNS: remote sites and road warriors reach the servers through it
    ready_timeout = 30.0
    commands = ("openvpn",)

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return bool(plan.tunnel_ends(node.name))

    @classmethod
    def from_plan(cls, node: Any, dep: Deployment) -> "OpenVpn":
        return cls(node, dep, ends=dep.plan.tunnel_ends(node.name))

    def folder(self, e: TunnelEnd) -> Path:
        return self.node.dir / "openvpn" / e.vpn

    def templates(self) -> list[Template]:
        return [
            Template(TEMPLATES, "openvpn.conf.j2", end_context(e, self.folder(e)), self.folder(e) / f"{e.vpn}.conf")
            for e in self.ends
        ]

    def render(self) -> None:
        for e in self.ends:
            d = self.folder(e)
            (d / "ccd").mkdir(parents=True, exist_ok=True)
            cert = self.dep.ca.issue(self.node.plan.fqdn, [], [], d / "pki", client=e.role == "client")
            shutil.copyfile(cert.cert, d / "end.crt")
            shutil.copyfile(cert.key, d / "end.key")
            (d / "end.key").chmod(0o600)
            shutil.copyfile(self.dep.ca.ca_file, d / "ca.crt")
            for client, addr in e.clients:  # each road warrior's fixed address, by its certificate's name
                fqdn = self.dep.plan.nodes[client].fqdn
                self.write(
                    d / "ccd" / fqdn,
                    f"ifconfig-push {addr} {ipaddress.IPv4Network(f'{addr}/{e.prefixlen}', strict=False).netmask}\n",
                )
        super().render()

    def check(self) -> None:
        for e in self.ends:
            conf = self.folder(e) / f"{e.vpn}.conf"
            # --verb 0 --show-... would not parse everything: a real parse is a start; this
            # only proves the file is readable and every path it names exists
            for line in conf.read_text().splitlines():
                parts = line.split()
                if parts and parts[0] in ("ca", "cert", "key") and not Path(parts[1]).is_file():
                    raise self.fail(f"{conf.name}: {parts[0]} {parts[1]} does not exist")

    def start(self) -> None:
        self.started_at = time.monotonic()
        for e in self.ends:
            d = self.folder(e)
            (d / f"openvpn-{e.vpn}.log").unlink(missing_ok=True)
            self.run_checked(
                [
                    "openvpn",
                    "--config",
                    str(d / f"{e.vpn}.conf"),
                    "--daemon",
                    f"openvpn-{self.node.name}-{e.vpn}",
                    "--log",
                    str(d / f"openvpn-{e.vpn}.log"),
                ],
                f"starting openvpn for {e.vpn}",
                output=self.start_log(),
            )
            pid = read_pid(d / "openvpn.pid", timeout=5)
            if pid is None:
                raise self.fail(f"openvpn for {e.vpn} wrote no pid file", log=d / f"openvpn-{e.vpn}.log")
            self.pids[e.vpn] = pid
        self.pid = next(iter(self.pids.values()), None)

    def _up(self, e: TunnelEnd) -> bool:
        try:
            return READY in (self.folder(e) / f"openvpn-{e.vpn}.log").read_text(errors="replace")
        except OSError:
            return False

    def wait_ready(self, timeout: float) -> None:
        for e in self.ends:
            pid = self.pids.get(e.vpn)

            def up(e: TunnelEnd = e) -> bool:
                return self._up(e)

            def gone(pid: int | None = pid) -> bool:
                return not proc.alive(pid)

            self.poll(
                up,
                timeout,
                f"bring tunnel {e.vpn} up ({READY!r} in its log)",
                hint="the other end must be running and reachable on udp/" + str(e.port),
                exited=gone,
            )

    def stop(self) -> list[int]:
        left = proc.terminate(list(self.pids.values()), grace=5.0)
        self.pids = {}
        self.pid = None
        return left

    def logs(self) -> list[Path]:
        return [self.folder(e) / f"openvpn-{e.vpn}.log" for e in self.ends]

    def version(self) -> str:
        return command_version(["openvpn", "--version"])
