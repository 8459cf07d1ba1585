"""The firewall plan: a topology's zone policy with its subnets turned into interfaces.

One form of the policy for everything after validation: ``lab.services.firewall``
renders it into nftables, the report shows it, and the probe matrix asks it
(``allows``) what the policy means, instead of parsing ports again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lab.model.policy import PortSpec


@dataclass(frozen=True)
class FwZone:
    name: str
    subnets: tuple[str, ...]
    ifaces: tuple[str, ...]  # the firewall's interfaces on those subnets (eth0 ...)
    mark: int  # the packet mark of this zone for the NAT chains (1, 2 ...)


@dataclass(frozen=True)
class AllowRule:
    src: str
    dst: str
    ports: tuple[PortSpec, ...]


@dataclass(frozen=True)
class Forwarding:
    """A port forward: connections to the firewall's own address in ``zone`` go to ``to_ip``."""

    zone: str
    port: PortSpec  # a single tcp or udp port
    to_node: str
    to_ip: str
    to_port: int


@dataclass(frozen=True)
class InboundRule:
    """Traffic to the firewall itself (its own services), from one zone."""

    zone: str
    port: PortSpec


@dataclass(frozen=True)
class FirewallPlan:
    node: str
    zones: tuple[FwZone, ...]
    allow: tuple[AllowRule, ...] = ()
    masquerade: tuple[tuple[str, str], ...] = ()  # (from zone, to zone)
    forwards: tuple[Forwarding, ...] = ()
    inbound: tuple[InboundRule, ...] = ()
    icmp: bool = True
    default: str = "drop"
    routing: tuple[str, ...] = ()  # routing protocols to accept: ospf, rip
    notes: tuple[str, ...] = field(default=())

    def zone(self, name: str) -> FwZone:
        return next(z for z in self.zones if z.name == name)

    def zone_of_subnet(self, subnet: str) -> str | None:
        return next((z.name for z in self.zones if subnet in z.subnets), None)

    def allows(self, src: str, dst: str, proto: str, port: int | None = None) -> bool:
        """Does the policy let a connection from zone ``src`` to zone ``dst`` on proto/port through?"""
        if self.default == "accept":
            return True
        for rule in self.allow:
            if rule.src == src and rule.dst == dst and any(p.covers(proto, port) for p in rule.ports):
                return True
        return proto == "icmp" and self.icmp and any(r.src == src and r.dst == dst for r in self.allow)

    def to_dict(self) -> dict[str, Any]:
        """For summary.json: ports as text."""
        d = asdict(self)
        for rule in d["allow"]:
            rule["ports"] = [str(PortSpec(**p)) for p in rule["ports"]]
        for f in d["forwards"]:
            f["port"] = str(PortSpec(**f["port"]))
        for r in d["inbound"]:
            r["port"] = str(PortSpec(**r["port"]))
        return d
