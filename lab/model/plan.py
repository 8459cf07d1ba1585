"""Everything derived from a topology before anything is built.

The address plan, DNS zones with their records (``zones``), DHCP scopes, mail
domains, routes and FRR settings (``routes``), the firewall plans (``fwplan``) and
the link impairments are computed here as plain typed data, so the services only
format values and tests check the derivation without root.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from lab.model.fwplan import AllowRule, FirewallPlan, Forwarding, FwZone, InboundRule
from lab.model.nodeplan import IfacePlan, NodePlan, Route, mac_for
from lab.model.routes import RoutingPlan, routing_plans, static_routes
from lab.model.topology import Topology
from lab.model.zones import Forward, Record, Zone, reverse_zone, zones

__all__ = [
    "DhcpScope",
    "FirewallPlan",
    "Forward",
    "IfacePlan",
    "Impairment",
    "MailHost",
    "MailUser",
    "NodePlan",
    "Plan",
    "Record",
    "Reservation",
    "Route",
    "RoutingPlan",
    "Zone",
    "impairments",
    "make_plan",
    "reverse_zone",
]


@dataclass(frozen=True)
class Reservation:
    """A DHCP host's fixed lease: the same address on every run."""

    node: str
    mac: str
    address: str


@dataclass
class DhcpScope:
    server: str
    subnet: str  # subnet name
    cidr: str
    pool_start: str
    pool_end: str
    routers: list[str]
    dns_servers: list[str]
    domain: str
    lease_time: int
    reservations: list[Reservation] = field(default_factory=list)


@dataclass
class MailUser:
    name: str
    domain: str
    password: str

    @property
    def address(self) -> str:
        return f"{self.name}@{self.domain}"


@dataclass
class MailHost:
    node: str
    hostname: str
    domains: list[str]
    users: list[MailUser]


@dataclass
class Impairment:
    """Loss, delay and bandwidth on one end of a link, applied inside that node."""

    node: str
    iface: str
    link: int
    loss: float | None
    delay: str | None
    delay_optional: bool
    direction: str  # "out" (the other end is a node that does its own) or "both"


@dataclass
class Plan:
    topology: Topology
    nodes: dict[str, NodePlan]
    zones: list[Zone]
    scopes: list[DhcpScope]
    mail: dict[str, MailHost]
    forwards: dict[str, list[Forward]] = field(default_factory=dict)
    firewalls: dict[str, FirewallPlan] = field(default_factory=dict)
    routing: dict[str, RoutingPlan] = field(default_factory=dict)

    @property
    def subnets(self) -> dict[str, ipaddress.IPv4Network]:
        return {n: s.network for n, s in self.topology.subnets.items()}

    def routers(self) -> list[NodePlan]:
        return [n for n in self.nodes.values() if n.forwards]

    def owner_of(self, ip: str) -> NodePlan | None:
        for n in self.nodes.values():
            if any(i.ip == ip for i in n.interfaces):
                return n
        return None

    def node_by_fqdn(self, name: str) -> NodePlan | None:
        name = name.rstrip(".")
        for n in self.nodes.values():
            if n.fqdn == name or n.name == name:
                return n
        return None

    def overrides(self) -> list[Any]:
        """Every mail node setting the topology changes, against the shipped server."""
        from lab.model.mailconfig import overrides_of

        return overrides_of(self.topology.data)

    def user(self, address: str) -> MailUser | None:
        for host in self.mail.values():
            for u in host.users:
                if u.address == address:
                    return u
        return None


def make_plan(topo: Topology) -> Plan:
    nodes = _node_plans(topo)
    routers = {n.name: n for n in nodes.values() if n.forwards}
    for name, routes in static_routes(topo.routing, {k: s.cidr for k, s in topo.subnets.items()}, routers).items():
        nodes[name].routes = routes
    every_zone, delegations = zones(topo.data, topo.subnets, nodes)
    plan = Plan(topo, nodes, every_zone, _scopes(topo, nodes), _mail(topo, nodes), delegations)
    plan.firewalls = {fw: firewall_plan(plan, fw) for fw in topo.data.firewalls}
    plan.routing = routing_plans(topo.routing, routers)
    return plan


def _node_plans(topo: Topology) -> dict[str, NodePlan]:
    t = topo.data
    dns_nodes = [n for n, v in t.nodes.items() if v.role == "dns"]

    def primary(name: str) -> str | None:
        return next((i.address for i in topo.interfaces.get(name, []) if i.address), None)

    dns_ips = [str(primary(n)) for n in dns_nodes]
    server_of = {dom: md.dns for dom, md in t.domains.items() if md.dns}

    def resolvers(domain: str) -> list[str]:
        """A node asks the server of its own domain; with none, every server."""
        own = server_of.get(domain) or (dns_nodes[0] if len(dns_nodes) == 1 else None)
        return [str(primary(own))] if own else list(dns_ips)

    nodes: dict[str, NodePlan] = {}
    for name, node in t.nodes.items():
        domain = node.domain or t.domain
        if node.role == "switch":
            nodes[name] = NodePlan(name, "switch", f"{name}.{domain}", node.subnet, None, None, None, [], domain)
            continue
        plans = [
            IfacePlan(
                i.name,
                i.subnet,
                i.address,
                topo.subnets[i.subnet].network.prefixlen,
                i.dhcp,
                i.peer,
                i.link,
                mac_for(t.name, name, i.name),
            )
            for i in topo.interfaces[name]
        ]
        sub = topo.subnets[plans[0].subnet]
        forwards = node.role in ("router", "firewall")
        nodes[name] = NodePlan(
            name=name,
            role=node.role,
            fqdn=f"{name}.{domain}",
            subnet=plans[0].subnet,
            ip=next((i.ip for i in plans if i.ip), None),
            prefixlen=sub.network.prefixlen,
            gateway=None if forwards else sub.gateway,
            dns_servers=resolvers(domain),
            search=domain,
            dhcp=plans[0].dhcp,
            interfaces=plans,
        )
    return nodes


def _scopes(topo: Topology, nodes: dict[str, NodePlan]) -> list[DhcpScope]:
    out = []
    for sub_name, sub in topo.data.subnets.items():
        if sub.dhcp is None:
            continue
        lo, hi = sub.dhcp.bounds
        server = nodes[sub.dhcp.server]
        clients = [(n.name, i.mac) for n in nodes.values() for i in n.interfaces if i.dhcp and i.subnet == sub_name]
        # in node order from the bottom of the pool: pc1 gets the same address on every run
        fixed = [Reservation(node, mac, str(lo + k)) for k, (node, mac) in enumerate(clients) if lo + k <= hi]
        out.append(
            DhcpScope(
                server=sub.dhcp.server,
                subnet=sub_name,
                cidr=sub.cidr,
                pool_start=str(lo),
                pool_end=str(hi),
                routers=[sub.gateway] if sub.gateway else [],
                dns_servers=list(server.dns_servers),
                domain=server.search,
                lease_time=sub.dhcp.lease_time,
                reservations=fixed,
            )
        )
    return out


def _mail(topo: Topology, nodes: dict[str, NodePlan]) -> dict[str, MailHost]:
    mail: dict[str, MailHost] = {}
    for dom, md in topo.data.domains.items():
        host = mail.setdefault(md.mail, MailHost(md.mail, nodes[md.mail].fqdn, [], []))
        host.domains.append(dom)
        host.users.extend(MailUser(u, dom, v.password) for u, v in md.users.items())
    for name, n in nodes.items():
        if n.role == "mail" and name not in mail:
            mail[name] = MailHost(name, n.fqdn, [], [])
    return mail


def firewall_plan(plan: Plan, fw: str) -> FirewallPlan:
    """A firewall's zone policy with its subnets turned into its own interfaces."""
    pol = plan.topology.data.firewalls[fw]
    node = plan.nodes[fw]
    zones_ = tuple(
        FwZone(z, tuple(subs), tuple(i.name for i in node.interfaces if i.subnet in subs), k)
        for k, (z, subs) in enumerate(pol.zones.items(), start=1)
    )
    forwards = tuple(
        Forwarding(f.zone, f.port, f.to, str(plan.nodes[f.to].ip), f.to_port or f.port.lo) for f in pol.forward
    )
    mode = plan.topology.routing.mode
    return FirewallPlan(
        node=fw,
        zones=zones_,
        allow=tuple(AllowRule(a.from_, a.to, tuple(a.ports)) for a in pol.allow),
        masquerade=tuple((m.from_, m.to) for m in pol.masquerade),
        forwards=forwards,
        inbound=tuple(InboundRule(r.from_, p) for r in pol.inbound for p in r.ports),
        icmp=pol.icmp,
        default=pol.default,
        routing=(mode,) if mode in ("ospf", "rip") else (),
    )


def impairments(plan: Plan) -> list[Impairment]:
    t = plan.topology.data
    out = []
    for k, link in enumerate(t.links):
        if not (link.loss or link.delay):
            continue
        node_ends = [e for e in (link.a, link.b) if t.nodes[e].role != "switch"]
        for end in node_ends:
            itf = next(i for i in plan.nodes[end].interfaces if i.link == k)
            out.append(
                Impairment(
                    end,
                    itf.name,
                    k,
                    link.loss,
                    link.delay,
                    link.delay_optional,
                    "out" if len(node_ends) == 2 else "both",
                )
            )
    return out
