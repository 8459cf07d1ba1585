"""Topology files: the network and its services as data.

A topology names subnets, nodes (with a role), links, and mail domains with their
users.  ``load_topology`` parses, checks every cross-reference and the address plan,
and returns a ``Topology``; ``lab.model.plan`` derives what the services need.
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from lab.errors import InputError, Problem
from lab.model.schema import Strict, hinted, parse, suggest
from lab.model.yamlload import Located, load_file

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
USER_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

Role = Literal["host", "switch", "mail", "dns", "dhcp", "router", "firewall"]
#: Roles this version can build; router and firewall are reserved for the routing labs.
BUILDABLE_ROLES = ("host", "switch", "mail", "dns", "dhcp")
SERVICE_ROLES = ("mail", "dns", "dhcp")


def _ipv4(value: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise ValueError(hinted(f"'{value}' is not an IPv4 address", f"{what} looks like 10.0.0.10"))


class DhcpPool(Strict):
    server: str
    pool: str = Field(description="first-last address, e.g. 10.0.0.100-10.0.0.199")
    lease_time: int = Field(3600, ge=60, le=604800)

    @field_validator("pool")
    @classmethod
    def _pool(cls, v: str) -> str:
        parts = str(v).split("-")
        if len(parts) != 2:
            raise ValueError(hinted(f"pool '{v}' is not a range", "write it as 10.0.0.100-10.0.0.199"))
        a, b = (_ipv4(p.strip(), "each end of the pool") for p in parts)
        if int(b) < int(a):
            raise ValueError(hinted(f"pool '{v}' ends before it starts", "put the lower address first"))
        return f"{a}-{b}"

    @property
    def bounds(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        a, b = self.pool.split("-")
        return ipaddress.IPv4Address(a), ipaddress.IPv4Address(b)


class Subnet(Strict):
    cidr: str
    gateway: str | None = None
    dhcp: DhcpPool | None = None

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        try:
            net = ipaddress.IPv4Network(str(v), strict=True)
        except ValueError as exc:
            if "has host bits set" in str(exc):
                fixed = ipaddress.IPv4Network(str(v), strict=False)
                raise ValueError(hinted(f"'{v}' has host bits set", f"the network is {fixed}"))
            raise ValueError(hinted(f"'{v}' is not an IPv4 network in CIDR form", "write it as 10.0.0.0/24"))
        if net.prefixlen > 30:
            raise ValueError(hinted(f"'{v}' is too small for a LAN", "use a /30 or larger"))
        return str(net)

    @field_validator("gateway")
    @classmethod
    def _gw(cls, v: str | None) -> str | None:
        return None if v is None else str(_ipv4(v, "the gateway"))

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)


class Node(Strict):
    role: Role
    address: str | None = Field(None, description="an IPv4 address in the node's subnet, or 'dhcp'")
    subnet: str | None = Field(None, description="switches only: the subnet this switch carries")
    domain: str | None = Field(None, description="DNS domain of this node's name (default: the topology's)")
    description: str | None = None

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str | None) -> str | None:
        if v is None or v == "dhcp":
            return v
        return str(_ipv4(v, "a static address"))


class Link(Strict):
    a: str
    b: str
    bw: float | None = Field(None, gt=0, le=100000, description="bandwidth limit in Mbit/s (HTB)")


class User(Strict):
    password: str = Field(min_length=1)


class MailDomain(Strict):
    mail: str = Field(description="the node that is this domain's mail server (its MX)")
    dns: str | None = Field(None, description="the node authoritative for this domain")
    users: dict[str, User] = Field(default_factory=dict)


class TopologyFile(Strict):
    name: str
    description: str | None = None
    domain: str
    subnets: dict[str, Subnet]
    nodes: dict[str, Node]
    links: list[Link]
    domains: dict[str, MailDomain] = Field(default_factory=dict)


class Topology:
    """A validated topology plus where it came from."""

    def __init__(self, data: TopologyFile, src: Located):
        self.data = data
        self.src = src
        self.path = Path(src.file)

    @property
    def name(self) -> str:
        return self.data.name

    def switch_of(self, node: str) -> str:
        for link in self.data.links:
            if link.a == node and self.data.nodes[link.b].role == "switch":
                return link.b
            if link.b == node and self.data.nodes[link.a].role == "switch":
                return link.a
        raise KeyError(node)  # validation guarantees this does not happen

    def subnet_of(self, node: str) -> str:
        n = self.data.nodes[node]
        if n.role == "switch":
            assert n.subnet is not None
            return n.subnet
        return self.subnet_of(self.switch_of(node))


def load_topology(path: str | Path) -> Topology:
    src = load_file(path)
    if not isinstance(src.data, dict):
        raise InputError(problems=[src.problem((), "a topology must be a mapping with name, domain, subnets, nodes, links")])
    data = parse(TopologyFile, src.data, src)
    problems = check(data, src)
    if problems:
        raise InputError(problems=problems)
    return Topology(data, src)


def check(t: TopologyFile, src: Located) -> list[Problem]:
    """Cross-reference and address-plan checks that a schema cannot express."""
    out: list[Problem] = []
    p = src.problem
    nodes = t.nodes
    if not DOMAIN_RE.match(t.domain):
        out.append(p(("domain",), f"'{t.domain}' is not a DNS domain name", "lower case, e.g. projet.dz"))

    for name, sub in t.subnets.items():
        if not NAME_RE.match(name):
            out.append(p(("subnets", name), f"subnet name '{name}' is not a simple name",
                         "use 1-15 lower-case letters, digits or '-', starting with a letter"))
        if sub.gateway and ipaddress.IPv4Address(sub.gateway) not in sub.network:
            out.append(p(("subnets", name, "gateway"), f"gateway {sub.gateway} is outside {sub.cidr}"))
        if sub.dhcp:
            lo, hi = sub.dhcp.bounds
            if sub.gateway and lo <= ipaddress.IPv4Address(sub.gateway) <= hi:
                out.append(p(("subnets", name, "gateway"), f"gateway {sub.gateway} is inside the DHCP pool {sub.dhcp.pool}",
                             "a client could be leased the router's address: keep the gateway outside the pool"))
            if lo not in sub.network or hi not in sub.network or lo == sub.network.network_address \
                    or hi == sub.network.broadcast_address:
                out.append(p(("subnets", name, "dhcp", "pool"),
                             f"pool {sub.dhcp.pool} is not inside the usable hosts of {sub.cidr}"))
            srv = nodes.get(sub.dhcp.server)
            if srv is None:
                out.append(p(("subnets", name, "dhcp", "server"), f"unknown node '{sub.dhcp.server}'",
                             suggest(sub.dhcp.server, list(nodes))))
            elif srv.role != "dhcp":
                out.append(p(("subnets", name, "dhcp", "server"),
                             f"node '{sub.dhcp.server}' has role '{srv.role}', not 'dhcp'"))
    names = list(t.subnets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if t.subnets[a].network.overlaps(t.subnets[b].network):
                out.append(p(("subnets", b, "cidr"),
                             f"{t.subnets[b].cidr} overlaps subnet '{a}' ({t.subnets[a].cidr})",
                             "give every subnet its own address range"))

    for name, node in nodes.items():
        where = ("nodes", name)
        if not NAME_RE.match(name):
            out.append(p(where, f"node name '{name}' is not a simple name",
                         "use 1-15 lower-case letters, digits or '-', starting with a letter"))
        if node.role not in BUILDABLE_ROLES:
            out.append(p(where + ("role",), f"role '{node.role}' cannot be built by this version yet",
                         "use one of: " + ", ".join(BUILDABLE_ROLES)))
            continue
        if node.role == "switch":
            if node.address is not None:
                out.append(p(where + ("address",), "a switch has no address", "remove 'address'"))
            if node.subnet is None:
                out.append(p(where, "a switch needs 'subnet': the subnet it carries",
                             "one of: " + ", ".join(t.subnets) if t.subnets else None))
            elif node.subnet not in t.subnets:
                out.append(p(where + ("subnet",), f"unknown subnet '{node.subnet}'",
                             suggest(node.subnet, list(t.subnets))))
        else:
            if node.subnet is not None:
                out.append(p(where + ("subnet",), "only switches carry a subnet; a node takes the subnet of its switch",
                             "remove 'subnet' and link the node to a switch"))
            if node.address is None:
                out.append(p(where, "this node needs 'address': a static IPv4 address or 'dhcp'"))
            elif node.address == "dhcp" and node.role != "host":
                out.append(p(where + ("address",), f"a {node.role} server needs a static address",
                             "clients must be able to find it"))
        if node.domain is not None and not DOMAIN_RE.match(node.domain):
            out.append(p(where + ("domain",), f"'{node.domain}' is not a DNS domain name"))

    degree: dict[str, list[int]] = {n: [] for n in nodes}
    seen_pairs: dict[frozenset[str], int] = {}
    for i, link in enumerate(t.links):
        ok = True
        for end in ("a", "b"):
            ref = getattr(link, end)
            if ref not in nodes:
                out.append(p(("links", i, end), f"unknown node '{ref}'", suggest(ref, list(nodes))))
                ok = False
        if not ok:
            continue
        if link.a == link.b:
            out.append(p(("links", i), f"link from '{link.a}' to itself"))
            continue
        pair = frozenset((link.a, link.b))
        if pair in seen_pairs:
            out.append(p(("links", i), f"'{link.a}' and '{link.b}' are already linked by links[{seen_pairs[pair]}]"))
            continue
        seen_pairs[pair] = i
        ra, rb = nodes[link.a].role, nodes[link.b].role
        if "switch" not in (ra, rb):
            out.append(p(("links", i), f"'{link.a}' and '{link.b}' are both end nodes",
                         "connect end nodes through a switch (router links come with the routing labs)"))
            continue
        if ra == rb == "switch":
            sa, sb = nodes[link.a].subnet, nodes[link.b].subnet
            if sa != sb:
                out.append(p(("links", i), f"switches '{link.a}' ({sa}) and '{link.b}' ({sb}) carry different subnets",
                             "only a router joins two subnets"))
        degree[link.a].append(i)
        degree[link.b].append(i)

    for name, node in nodes.items():
        if node.role == "switch" or node.role not in BUILDABLE_ROLES:
            continue
        if not degree[name]:
            out.append(p(("nodes", name), f"node '{name}' has no link", f"add a link from '{name}' to a switch"))
        elif len(degree[name]) > 1:
            out.append(p(("links", degree[name][1]), f"node '{name}' has more than one link",
                         "a host has one interface in this version; multi-homed routers come with the routing labs"))
    if out:
        return out

    # the address plan, now that each node's subnet is known
    topo = Topology(t, src)
    owners: dict[str, str] = {}
    for name, node in nodes.items():
        if node.role == "switch":
            continue
        sub_name = topo.subnet_of(name)
        sub = t.subnets[sub_name]
        if node.address == "dhcp":
            if sub.dhcp is None:
                out.append(p(("nodes", name, "address"), f"subnet '{sub_name}' has no DHCP server",
                             f"add subnets.{sub_name}.dhcp or give '{name}' a static address"))
            continue
        assert node.address is not None
        ip = ipaddress.IPv4Address(node.address)
        if ip not in sub.network:
            out.append(p(("nodes", name, "address"), f"{ip} is not in subnet '{sub_name}' ({sub.cidr})",
                         f"'{name}' is linked to switch '{topo.switch_of(name)}'"))
            continue
        if ip in (sub.network.network_address, sub.network.broadcast_address):
            out.append(p(("nodes", name, "address"), f"{ip} is the network or broadcast address of {sub.cidr}"))
            continue
        if sub.gateway and str(ip) == sub.gateway:
            out.append(p(("nodes", name, "address"), f"{ip} is the gateway of subnet '{sub_name}'"))
            continue
        if sub.dhcp:
            lo, hi = sub.dhcp.bounds
            if lo <= ip <= hi:
                out.append(p(("nodes", name, "address"), f"{ip} is inside the DHCP pool {sub.dhcp.pool}",
                             "static addresses must stay outside the pool"))
                continue
        if str(ip) in owners:
            out.append(p(("nodes", name, "address"), f"{ip} is already the address of '{owners[str(ip)]}'",
                         "every node needs its own address"))
            continue
        owners[str(ip)] = name
    for sub_name, sub in t.subnets.items():
        if sub.dhcp and sub.dhcp.server in nodes and nodes[sub.dhcp.server].role == "dhcp":
            if topo.subnet_of(sub.dhcp.server) != sub_name:
                out.append(p(("subnets", sub_name, "dhcp", "server"),
                             f"DHCP server '{sub.dhcp.server}' is not on subnet '{sub_name}'",
                             "this version has no DHCP relay: put the server on the subnet it serves"))

    for dom, md in t.domains.items():
        where = ("domains", dom)
        if not DOMAIN_RE.match(dom):
            out.append(p(where, f"'{dom}' is not a DNS domain name"))
        for key, role in (("mail", "mail"), ("dns", "dns")):
            ref = getattr(md, key)
            if ref is None:
                continue
            if ref not in nodes:
                out.append(p(where + (key,), f"unknown node '{ref}'", suggest(ref, list(nodes))))
            elif nodes[ref].role != role:
                out.append(p(where + (key,), f"node '{ref}' has role '{nodes[ref].role}', not '{role}'"))
        for user in md.users:
            if not USER_RE.match(user):
                out.append(p(where + ("users", user), f"'{user}' is not a valid mailbox name",
                             "lower-case letters, digits, '.', '_' or '-'"))
    if t.domain not in t.domains and any(n.role == "dns" for n in nodes.values()):
        pass  # a DNS server may serve only the host names of the default domain
    return out
