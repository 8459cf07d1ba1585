"""Everything derived from a topology before anything is built.

The address plan, DNS zones with their records, DHCP scopes and mail domains are
computed here as plain data, so the services only format values and tests can check
the derivation without root.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from lab.model.topology import Topology


@dataclass(frozen=True)
class Record:
    owner: str
    type: str
    value: str


@dataclass
class Zone:
    name: str                      # "projet.dz" or "0.0.10.in-addr.arpa"
    server: str                    # node name of the authoritative server
    records: list[Record] = field(default_factory=list)


@dataclass
class Forward:
    """Another lab domain a DNS server must find: delegated from its own lab root."""

    zone: str
    servers: list[str]
    ns: str = ""                   # the authoritative server's host name


@dataclass
class DhcpScope:
    server: str
    subnet: str                    # subnet name
    cidr: str
    pool_start: str
    pool_end: str
    routers: list[str]
    dns_servers: list[str]
    domain: str
    lease_time: int


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
class IfacePlan:
    name: str                      # eth0, eth1 ... inside the node
    subnet: str
    ip: str | None                 # None when DHCP
    prefixlen: int
    dhcp: bool
    peer: str                      # the switch or node at the other end
    link: int                      # index in the topology's links


@dataclass(frozen=True)
class Route:
    to: str                        # CIDR or "default"
    via: str


@dataclass
class NodePlan:
    name: str
    role: str
    fqdn: str
    subnet: str | None             # the first interface's subnet (a switch's own subnet)
    ip: str | None                 # the first static address; None when DHCP
    prefixlen: int | None
    gateway: str | None
    dns_servers: list[str]
    search: str
    dhcp: bool = False
    interfaces: list[IfacePlan] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)

    @property
    def forwards(self) -> bool:
        return self.role in ("router", "firewall")

    def iface_on(self, subnet: str) -> IfacePlan | None:
        return next((i for i in self.interfaces if i.subnet == subnet), None)


@dataclass
class Plan:
    topology: Topology
    nodes: dict[str, NodePlan]
    zones: list[Zone]
    scopes: list[DhcpScope]
    mail: dict[str, MailHost]
    forwards: dict[str, list[Forward]] = field(default_factory=dict)

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
        from lab.model.mailconfig import overrides
        out = []
        for name, node in self.topology.data.nodes.items():
            if node.config is not None:
                out.extend(overrides(name, node.config.sections()))
        return out

    def user(self, address: str) -> MailUser | None:
        for host in self.mail.values():
            for u in host.users:
                if u.address == address:
                    return u
        return None


def reverse_zone(cidr: str) -> str:
    """The in-addr.arpa zone on an octet boundary that holds this subnet."""
    net = ipaddress.IPv4Network(cidr)
    octets = str(net.network_address).split(".")
    keep = max(1, min(3, net.prefixlen // 8))
    return ".".join(reversed(octets[:keep])) + ".in-addr.arpa"


def make_plan(topo: Topology) -> Plan:
    t = topo.data
    dns_nodes = [n for n, v in t.nodes.items() if v.role == "dns"]
    ifaces = topo.interfaces
    nodes: dict[str, NodePlan] = {}

    def primary(name: str) -> str | None:
        return next((i.address for i in ifaces.get(name, []) if i.address), None)
    dns_ips = [str(primary(n)) for n in dns_nodes]

    def server_for(domain: str) -> str | None:
        md = t.domains.get(domain)
        if md and md.dns:
            return md.dns
        return dns_nodes[0] if len(dns_nodes) == 1 else None

    def resolvers(domain: str) -> list[str]:
        """A node asks the server of its own domain; with none, every server."""
        own = server_for(domain)
        return [str(primary(own))] if own else list(dns_ips)

    for name, node in t.nodes.items():
        domain = node.domain or t.domain
        if node.role == "switch":
            nodes[name] = NodePlan(name, "switch", f"{name}.{domain}", node.subnet, None, None, None, [], domain)
            continue
        plans = [IfacePlan(i.name, i.subnet, i.address, topo.subnets[i.subnet].network.prefixlen, i.dhcp, i.peer, i.link)
                 for i in ifaces[name]]
        first = plans[0]
        sub = topo.subnets[first.subnet]
        forwards = node.role in ("router", "firewall")
        nodes[name] = NodePlan(
            name=name, role=node.role, fqdn=f"{name}.{domain}", subnet=first.subnet,
            ip=next((i.ip for i in plans if i.ip), None), prefixlen=sub.network.prefixlen,
            gateway=None if forwards else sub.gateway, dns_servers=resolvers(domain), search=domain,
            dhcp=first.dhcp, interfaces=plans)
    _static_routes(topo, nodes)

    # zones: every domain named by a node or a mail domain, served by its dns node
    zone_map: dict[str, Zone] = {}

    domains = {n.domain or t.domain for n in t.nodes.values()} | set(t.domains)
    for dom in sorted(domains):
        srv = server_for(dom)
        if srv is None:
            continue
        zone = Zone(dom, srv)
        ns = nodes[srv]
        zone.records.append(Record("@", "NS", f"{ns.fqdn}."))
        zone_map[dom] = zone
    for n in nodes.values():
        if n.ip is None:
            continue
        dom = n.fqdn.split(".", 1)[1]
        if dom in zone_map:
            zone_map[dom].records.append(Record(n.name, "A", n.ip))
    public: list[Zone] = []
    for dom, md in t.domains.items():
        mx = nodes[md.mail]
        if dom in zone_map:
            zone_map[dom].records.append(Record("@", "MX", f"10 {mx.fqdn}."))
        if md.public is not None:
            # split horizon: the outside copy names the MX at the public (NATed) address
            pz = Zone(dom, md.public.dns, [Record("@", "NS", f"{nodes[md.public.dns].fqdn}."),
                                           Record("@", "MX", f"10 {mx.fqdn}.")])
            if mx.fqdn.endswith("." + dom):
                pz.records.append(Record(mx.fqdn[: -len(dom) - 1], "A", md.public.address))
            public.append(pz)
    rev: dict[str, Zone] = {}
    for sub_name, sub in topo.subnets.items():
        members = [(n, i) for n in nodes.values() for i in n.interfaces if i.subnet == sub_name and i.ip]
        srvs = sorted({s for s in (server_for(n.fqdn.split(".", 1)[1]) for n, _ in members) if s})
        # a subnet with a DNS server on it is that server's; else the first server naming its hosts
        local = sorted(n.name for n, _ in members if n.role == "dns")
        srv = local[0] if local else srvs[0] if srvs else (dns_nodes[0] if dns_nodes else None)
        if srv is None or not members:
            continue
        zname = reverse_zone(sub.cidr)
        zone = rev.setdefault(zname, Zone(zname, srv, [Record("@", "NS", f"{nodes[srv].fqdn}.")]))
        depth = 4 - (len(zname.split(".")) - 2)
        for n, i in members:
            labels = str(i.ip).split(".")
            owner = ".".join(reversed(labels[-depth:]))
            zone.records.append(Record(owner, "PTR", f"{n.fqdn}."))

    scopes: list[DhcpScope] = []
    for sub_name, sub in t.subnets.items():
        if sub.dhcp is None:
            continue
        lo, hi = sub.dhcp.bounds
        server = nodes[sub.dhcp.server]
        scopes.append(DhcpScope(
            server=sub.dhcp.server, subnet=sub_name, cidr=sub.cidr, pool_start=str(lo), pool_end=str(hi),
            routers=[sub.gateway] if sub.gateway else [], dns_servers=list(server.dns_servers),
            domain=server.search, lease_time=sub.dhcp.lease_time))

    mail: dict[str, MailHost] = {}
    for dom, md in t.domains.items():
        host = mail.setdefault(md.mail, MailHost(md.mail, nodes[md.mail].fqdn, [], []))
        host.domains.append(dom)
        host.users.extend(MailUser(u, dom, v.password) for u, v in md.users.items())
    for name, n in nodes.items():
        if n.role == "mail" and name not in mail:
            mail[name] = MailHost(name, n.fqdn, [], [])

    zones = list(zone_map.values()) + public + list(rev.values())
    # every DNS server finds the other lab domains (names, not reverse zones) through a
    # lab root zone of its own that delegates them to their servers, so mail relays
    # between sites find their MX and nothing is ever asked outside the lab
    forwards: dict[str, list[Forward]] = {}
    for srv in dns_nodes:
        mine = {z.name for z in zones if z.server == srv}
        for z in zone_map.values():
            if z.name not in mine and z.server != srv and nodes[z.server].ip:
                forwards.setdefault(srv, []).append(Forward(z.name, [str(nodes[z.server].ip)],
                                                            nodes[z.server].fqdn))
    return Plan(topo, nodes, zones, scopes, mail, forwards)


def _static_routes(topo: Topology, nodes: dict[str, NodePlan]) -> None:
    """Shortest-path static routes for every router to every subnet it does not join.

    In 'static' mode these are installed; in 'ospf'/'rip' mode they are computed too,
    as the expectation routers must converge to.  Hand-written routes replace the
    derived ones of their router.
    """
    routing = topo.routing
    routers = {n.name: n for n in nodes.values() if n.forwards}
    # adjacency: router -> [(neighbour router, the neighbour's address on the shared subnet)]
    on_subnet: dict[str, list[tuple[str, str]]] = {}
    for r in routers.values():
        for i in r.interfaces:
            if i.ip:
                on_subnet.setdefault(i.subnet, []).append((r.name, i.ip))
    all_subnets = {name: str(s.network) for name, s in topo.subnets.items()}
    for r in routers.values():
        if r.name in routing.routes:
            r.routes = [Route(x.to, x.via) for x in routing.routes[r.name]]
            continue
        if routing.mode == "static" and not routing.derive:
            continue
        own = {i.subnet for i in r.interfaces}
        # BFS over routers; remember the first hop (neighbour address) for each reached router
        first_hop: dict[str, str] = {}
        queue = [r.name]
        seen = {r.name}
        while queue:
            cur = queue.pop(0)
            for i in routers[cur].interfaces:
                for nb, nb_ip in on_subnet.get(i.subnet, []):
                    if nb in seen:
                        continue
                    seen.add(nb)
                    first_hop[nb] = first_hop.get(cur, nb_ip) if cur != r.name else nb_ip
                    queue.append(nb)
        order = {name: k for k, name in enumerate([r.name, *first_hop])}
        routes = []
        for sub_name, cidr in sorted(all_subnets.items()):
            if sub_name in own:
                continue
            holders = [nb for nb, _ in on_subnet.get(sub_name, []) if nb in first_hop]
            if not holders:
                continue
            best = min(holders, key=lambda h: order[h])
            routes.append(Route(cidr, first_hop[best]))
        r.routes = routes


def firewall_policy(plan: Plan, fw: str) -> dict[str, Any]:
    """The firewall service's policy (plain data) from the topology's zone policy."""
    t = plan.topology.data
    pol = t.firewalls[fw]
    node = plan.nodes[fw]
    zones = {z: [i.name for i in node.interfaces if i.subnet in subs] for z, subs in pol.zones.items()}
    allow: list[dict[str, Any]] = []
    for rule in pol.allow:
        by_proto: dict[str, list[str]] = {}
        for port in rule.ports:
            if port in ("any", "icmp"):
                allow.append({"from": rule.from_, "to": rule.to, "proto": port, "ports": []})
                continue
            proto, _, num = port.partition("/")
            by_proto.setdefault(proto, []).append(num)
        for proto, nums in by_proto.items():
            allow.append({"from": rule.from_, "to": rule.to, "proto": proto,
                          "ports": [int(n) if n.isdigit() else n for n in nums]})
    forwards = []
    for f in pol.forward:
        proto, _, num = f.port.partition("/")
        target = plan.nodes[f.to]
        forwards.append({"zone": f.zone, "proto": proto, "port": int(num), "to": target.ip,
                         "to_port": f.to_port or int(num)})
    mode = plan.topology.routing.mode
    return {"zones": zones, "allow": allow,
            "masquerade": [{"from": m.from_, "to": m.to} for m in pol.masquerade],
            "forwards": forwards, "icmp": pol.icmp, "default": pol.default,
            "routing": [mode] if mode in ("ospf", "rip") else []}


@dataclass
class Impairment:
    """Loss, delay and bandwidth on one end of a link, applied inside that node."""

    node: str
    iface: str
    link: int
    loss: float | None
    delay: str | None
    delay_optional: bool
    direction: str            # "out" (the other end is a node that does its own) or "both"


def impairments(plan: Plan) -> list[Impairment]:
    t = plan.topology.data
    out = []
    for k, link in enumerate(t.links):
        if not (link.loss or link.delay):
            continue
        node_ends = [e for e in (link.a, link.b) if t.nodes[e].role != "switch"]
        for end in node_ends:
            itf = next(i for i in plan.nodes[end].interfaces if i.link == k)
            out.append(Impairment(end, itf.name, k, link.loss, link.delay, link.delay_optional,
                                  "out" if len(node_ends) == 2 else "both"))
    return out
