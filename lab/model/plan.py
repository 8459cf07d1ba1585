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
from lab.model.vpnplan import TunnelEnd, VpnPlan, vpn_plans
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
    filtering: bool = False  # rspamd + ClamAV as its milter
    dane: bool = False  # smtp_tls_security_level = dane (its resolver validates DNSSEC)
    mta_sts: bool = False  # asks mta-sts-daemon for the next hop's policy; serves its domains' policies
    fail2ban: bool = False
    tls_policy: str = "intermediate"
    #: why a protection the topology asks for is not applied here (shown in the report)
    notes: list[str] = field(default_factory=list)


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
    jitter: str | None = None

    @property
    def name(self) -> str:
        return f"{self.node}:{self.iface}"


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
    vpns: dict[str, VpnPlan] = field(default_factory=dict)

    def tunnel_ends(self, node: str) -> list[TunnelEnd]:
        return [e for v in self.vpns.values() for e in v.ends if e.node == node]

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
    _mail_users(topo, nodes)
    routers = {n.name: n for n in nodes.values() if n.forwards}
    for name, routes in static_routes(topo.routing, {k: s.cidr for k, s in topo.subnets.items()}, routers).items():
        nodes[name].routes = routes
    scopes = _scopes(topo, nodes)
    fixed = {r.node: r.address for s in scopes for r in s.reservations}
    every_zone, delegations = zones(topo.data, topo.subnets, nodes, fixed)
    # a server that delegates other domains' names recurses (and validates) for them; one
    # that only delegates reverse zones answers its own names authoritatively, with no AD bit
    recursing = {srv for srv, fs in delegations.items() if any(not f.zone.endswith(".arpa") for f in fs)}
    plan = Plan(topo, nodes, every_zone, scopes, _mail(topo, nodes, recursing), delegations)
    plan.firewalls = {fw: firewall_plan(plan, fw) for fw in topo.data.firewalls}
    plan.routing = routing_plans(topo.routing, routers)
    plan.vpns = vpn_plans(topo.data, {k: s.cidr for k, s in topo.subnets.items()}, nodes)
    for v in plan.vpns.values():
        for e in v.ends:
            nodes[e.node].tunnels.append(e.dev)
            nodes[e.node].unreachable += [r for r in e.routes if r not in nodes[e.node].unreachable]
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


def _mail_users(topo: Topology, nodes: dict[str, NodePlan]) -> None:
    """Each host's mail account: the one it names, else the next free user of its domain
    (pc1 alice, pc2 bob ...), so the mail programs inside it know who is there."""
    t = topo.data
    taken = {n.user for n in t.nodes.values() if n.user}
    free = {d: [f"{u}@{d}" for u in md.users if f"{u}@{d}" not in taken] for d, md in t.domains.items()}
    for name, node in t.nodes.items():
        if node.role != "host":
            continue
        if node.user:
            nodes[name].user = node.user
        elif free.get(nodes[name].domain):
            nodes[name].user = free[nodes[name].domain].pop(0)


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


def _mail(topo: Topology, nodes: dict[str, NodePlan], recursing: set[str]) -> dict[str, MailHost]:
    mail: dict[str, MailHost] = {}
    for dom, md in topo.data.domains.items():
        host = mail.setdefault(md.mail, MailHost(md.mail, nodes[md.mail].fqdn, [], []))
        host.domains.append(dom)
        host.users.extend(MailUser(u, dom, v.password) for u, v in md.users.items())
    for name, n in nodes.items():
        if n.role == "mail" and name not in mail:
            mail[name] = MailHost(name, n.fqdn, [], [])
    sec = topo.data.security
    validating = {str(n.ip) for n in nodes.values() if n.name in recursing and sec.dnssec}
    for host in mail.values():
        host.filtering, host.fail2ban, host.tls_policy = sec.filtering, sec.fail2ban, sec.tls_policy
        host.mta_sts = sec.mta_sts
        resolvers = nodes[host.node].dns_servers
        host.dane = sec.dane and bool(resolvers) and set(resolvers) <= validating
        if sec.dane and not host.dane:
            host.notes.append(
                f"DANE not enabled on {host.node}: its resolver ({', '.join(resolvers) or 'none'}) answers the "
                "other domains' names from its own zones, authoritatively (no AD bit), and Postfix would silently "
                "fall back to opportunistic TLS; smtp_tls_security_level stays 'may'"
            )
    if sec.mta_sts:
        _sts_reachable(topo, mail)
    return mail


def _sts_reachable(topo: Topology, mail: dict[str, MailHost]) -> None:
    """Behind NAT, outside senders fetch a domain's MTA-STS policy at its public address:
    without a port forward of tcp/443 to its MX they find none, and relay to it
    opportunistically, silently.  Said in the report's notes."""
    t = topo.data
    for dom, md in t.domains.items():
        if md.public is None:
            continue
        forwarded = any(
            f.to == md.mail and f.port.proto == "tcp" and (f.to_port or f.port.lo) == 443
            for pol in t.firewalls.values()
            for f in pol.forward
        )
        if not forwarded:
            mail[md.mail].notes.append(
                f"MTA-STS policy of {dom} not reachable from outside: mta-sts.{dom} is {md.public.address} there, "
                f"and no firewall forwards tcp/443 to {md.mail}; outside senders will relay to it opportunistically"
            )


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
                    link.jitter,
                )
            )
    return out
