"""What the plan says about one node: its name, role, interfaces, addresses and routes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def mac_for(topology: str, node: str, iface: str) -> str:
    """A locally administered MAC that is the same on every run of this topology, so DHCP
    reservations (and the addresses students see) stay the same."""
    h = hashlib.sha256(f"{topology}/{node}/{iface}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h[:5])


@dataclass
class IfacePlan:
    name: str  # eth0, eth1 ... inside the node
    subnet: str
    ip: str | None  # None when DHCP
    prefixlen: int
    dhcp: bool
    peer: str  # the switch or node at the other end
    link: int  # index in the topology's links
    mac: str = ""  # fixed per topology, node and interface (mac_for)


@dataclass(frozen=True)
class Route:
    to: str  # CIDR or "default"
    via: str


@dataclass
class NodePlan:
    name: str
    role: str
    fqdn: str
    subnet: str | None  # the first interface's subnet (a switch's own subnet)
    ip: str | None  # the first static address; None when DHCP
    prefixlen: int | None
    gateway: str | None
    dns_servers: list[str]
    search: str
    dhcp: bool = False
    interfaces: list[IfacePlan] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    user: str | None = None  # hosts: the mail account of the person there (user@domain)
    tunnels: list[str] = field(default_factory=list)  # TUN devices of its VPN ends (vpn0 ...)
    #: networks it reaches only through a tunnel: an unreachable route below the tunnel's,
    #: so that with the tunnel down their packets are refused here, never sent outside in clear
    unreachable: list[str] = field(default_factory=list)

    @property
    def forwards(self) -> bool:
        return self.role in ("router", "firewall")

    @property
    def domain(self) -> str:
        return self.fqdn.split(".", 1)[1]

    def iface_on(self, subnet: str) -> IfacePlan | None:
        return next((i for i in self.interfaces if i.subnet == subnet), None)
