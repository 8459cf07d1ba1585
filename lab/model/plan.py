"""Everything derived from a topology before anything is built.

The address plan, DNS zones with their records, DHCP scopes and mail domains are
computed here as plain data, so the services only format values and tests can check
the derivation without root.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

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
class NodePlan:
    name: str
    role: str
    fqdn: str
    subnet: str | None             # None for switches' own entry
    ip: str | None                 # None when DHCP
    prefixlen: int | None
    gateway: str | None
    dns_servers: list[str]
    search: str
    dhcp: bool = False


@dataclass
class Plan:
    topology: Topology
    nodes: dict[str, NodePlan]
    zones: list[Zone]
    scopes: list[DhcpScope]
    mail: dict[str, MailHost]

    def node_by_fqdn(self, name: str) -> NodePlan | None:
        name = name.rstrip(".")
        for n in self.nodes.values():
            if n.fqdn == name or n.name == name:
                return n
        return None

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
    nodes: dict[str, NodePlan] = {}
    dns_ips = [str(t.nodes[n].address) for n in dns_nodes]
    for name, node in t.nodes.items():
        domain = node.domain or t.domain
        if node.role == "switch":
            nodes[name] = NodePlan(name, "switch", f"{name}.{domain}", node.subnet, None, None, None, [], domain)
            continue
        sub_name = topo.subnet_of(name)
        sub = t.subnets[sub_name]
        dhcp = node.address == "dhcp"
        nodes[name] = NodePlan(
            name=name, role=node.role, fqdn=f"{name}.{domain}", subnet=sub_name,
            ip=None if dhcp else node.address, prefixlen=sub.network.prefixlen,
            gateway=sub.gateway, dns_servers=list(dns_ips), search=domain, dhcp=dhcp)

    # zones: every domain named by a node or a mail domain, served by its dns node
    zone_map: dict[str, Zone] = {}

    def server_for(domain: str) -> str | None:
        md = t.domains.get(domain)
        if md and md.dns:
            return md.dns
        return dns_nodes[0] if len(dns_nodes) == 1 else None

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
    for dom, md in t.domains.items():
        if dom in zone_map:
            mx = nodes[md.mail]
            zone_map[dom].records.append(Record("@", "MX", f"10 {mx.fqdn}."))
            if mx.ip and not mx.fqdn.endswith("." + dom):
                pass  # the MX host's A record lives in its own zone
    rev: dict[str, Zone] = {}
    for sub_name, sub in t.subnets.items():
        srvs = {server_for(n.fqdn.split(".", 1)[1]) for n in nodes.values() if n.subnet == sub_name and n.ip}
        srvs.discard(None)
        srv = sorted(s for s in srvs if s)[0] if srvs else (dns_nodes[0] if dns_nodes else None)
        if srv is None:
            continue
        zname = reverse_zone(sub.cidr)
        zone = rev.setdefault(zname, Zone(zname, srv, [Record("@", "NS", f"{nodes[srv].fqdn}.")]))
        for n in nodes.values():
            if n.subnet == sub_name and n.ip:
                ip = ipaddress.IPv4Address(n.ip)
                labels = str(ip).split(".")
                depth = 4 - (len(zname.split(".")) - 2)
                owner = ".".join(reversed(labels[-depth:]))
                zone.records.append(Record(owner, "PTR", f"{n.fqdn}."))

    scopes: list[DhcpScope] = []
    for sub_name, sub in t.subnets.items():
        if sub.dhcp is None:
            continue
        lo, hi = sub.dhcp.bounds
        scopes.append(DhcpScope(
            server=sub.dhcp.server, subnet=sub_name, cidr=sub.cidr, pool_start=str(lo), pool_end=str(hi),
            routers=[sub.gateway] if sub.gateway else [], dns_servers=list(dns_ips),
            domain=t.domain, lease_time=sub.dhcp.lease_time))

    mail: dict[str, MailHost] = {}
    for dom, md in t.domains.items():
        host = mail.setdefault(md.mail, MailHost(md.mail, nodes[md.mail].fqdn, [], []))
        host.domains.append(dom)
        host.users.extend(MailUser(u, dom, v.password) for u, v in md.users.items())
    for name, n in nodes.items():
        if n.role == "mail" and name not in mail:
            mail[name] = MailHost(name, n.fqdn, [], [])

    return Plan(topo, nodes, list(zone_map.values()) + list(rev.values()), scopes, mail)
