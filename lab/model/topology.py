"""Topology files: the network and its services as data.

A topology names subnets, nodes (with a role), links, and mail domains with their
users.  ``load_topology`` parses, checks every cross-reference and the address plan,
and returns a ``Topology``; ``lab.model.plan`` derives what the services need.
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from lab.errors import InputError, Problem
from lab.model import mailconfig
from lab.model.schema import Strict, hinted, parse, suggest
from lab.model.yamlload import Located, load_file

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
USER_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

Role = Literal["host", "switch", "mail", "dns", "dhcp", "router", "firewall"]
BUILDABLE_ROLES = ("host", "switch", "mail", "dns", "dhcp", "router", "firewall")
SERVICE_ROLES = ("mail", "dns", "dhcp")
from lab.model.policy import (PORT_RE, ROUTING_ROLES, Allow, FirewallPolicy, Masquerade,  # noqa: F401,E402
                              PortForward, Routing, StaticRoute, _check_firewalls, _check_routing)


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


Setting = str | int | bool


def _settings(v: dict[str, Setting]) -> dict[str, str]:
    """YAML gives numbers and yes/no as such: a daemon setting is their text."""
    return {str(k): ("yes" if x else "no") if isinstance(x, bool) else str(x) for k, x in v.items()}


class MailConfig(Strict):
    """Change a mail node's configuration: what a student edits, or a deliberately
    weakened server for a negative test.  Applied after the shipped templates; every
    setting is checked as data first (``lab.model.mailconfig``)."""

    postfix: dict[str, Setting] = Field(default_factory=dict, description="main.cf parameters (postconf -e)")
    postfix_master: dict[str, Setting] = Field(
        default_factory=dict, description="master.cf service parameters: 'submission/inet/smtpd_tls_security_level': may")
    dovecot: dict[str, Setting] = Field(default_factory=dict, description="dovecot.conf settings, e.g. ssl: 'yes'")

    _norm = field_validator("postfix", "postfix_master", "dovecot")(_settings)

    def sections(self) -> dict[str, dict[str, str]]:
        return {"postfix": dict(self.postfix), "postfix_master": dict(self.postfix_master),  # type: ignore[arg-type]
                "dovecot": dict(self.dovecot)}  # type: ignore[arg-type]


class Node(Strict):
    role: Role
    address: str | None = Field(None, description="an IPv4 address in the node's subnet, or 'dhcp'")
    interfaces: dict[str, str] | None = Field(
        None, description="routers and firewalls: the address on each subnet they join (subnet name: address)")
    subnet: str | None = Field(None, description="switches only: the subnet this switch carries")
    hub: bool = Field(False, description="switches only: flood every frame to every port, like a hub or a bus")
    stp: bool = Field(False, description="switches only: run the spanning tree protocol (for L2 rings)")
    domain: str | None = Field(None, description="DNS domain of this node's name (default: the topology's)")
    description: str | None = None
    config: "MailConfig | None" = Field(None, description="mail nodes: settings that replace the shipped ones")

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str | None) -> str | None:
        if v is None or v == "dhcp":
            return v
        return str(_ipv4(v, "a static address"))

    @field_validator("interfaces")
    @classmethod
    def _ifaces(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        return {k: str(_ipv4(a, "an interface address")) for k, a in v.items()}


class Link(Strict):
    a: str
    b: str
    subnet: str | None = Field(None, description="for a link without a switch: a subnet name or a CIDR like 10.255.0.0/30")
    bw: float | None = Field(None, gt=0, le=100000, description="bandwidth limit in Mbit/s (HTB)")
    loss: float | None = Field(None, ge=0, le=100, description="packet loss in percent, each direction")
    delay: str | None = Field(None, description="one-way delay, e.g. '20ms' (needs tc netem in the kernel)")
    delay_optional: bool = Field(False, description="build even where the kernel cannot delay (say so, apply nothing)")
    up: bool = Field(True, description="false: the link starts administratively down")

    @field_validator("delay")
    @classmethod
    def _delay(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.fullmatch(r"\d+(\.\d+)?(us|ms|s)", str(v)):
            raise ValueError(hinted(f"'{v}' is not a delay", "write it like 20ms"))
        return str(v)


class User(Strict):
    password: str = Field(min_length=1)


class PublicView(Strict):
    """How the outside sees a domain whose servers sit behind NAT (split-horizon DNS)."""

    dns: str = Field(description="the outside DNS node that serves the public copy of this domain")
    address: str = Field(description="the public address of the mail server (the firewall's, with a port forward)")

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return str(_ipv4(v, "the public address"))


class MailDomain(Strict):
    mail: str = Field(description="the node that is this domain's mail server (its MX)")
    dns: str | None = Field(None, description="the node authoritative for this domain")
    users: dict[str, User] = Field(default_factory=dict)
    public: PublicView | None = Field(None, description="the domain as seen from outside a NAT")


class TopologyFile(Strict):
    name: str
    description: str | None = None
    domain: str
    subnets: dict[str, Subnet]
    nodes: dict[str, Node]
    links: list[Link]
    domains: dict[str, MailDomain] = Field(default_factory=dict)
    routing: Literal["static", "ospf", "rip"] | Routing = "static"
    firewalls: dict[str, FirewallPolicy] = Field(default_factory=dict)
    params: dict[str, int] = Field(default_factory=dict, description="set by a generator: the sizes used")


@dataclass
class Iface:
    """One interface of a node: ``eth<N>`` on a subnet, with an address, a DHCP lease or none."""

    node: str
    name: str
    subnet: str
    address: str | None        # None: DHCP (hosts) or not yet known
    dhcp: bool
    link: int                  # index in links
    peer: str                  # the node at the other end (a switch or a node)


Node.model_rebuild()


class Topology:
    """A validated topology plus where it came from."""

    def __init__(self, data: TopologyFile, src: Located, subnets: dict[str, Subnet] | None = None,
                 interfaces: dict[str, list[Iface]] | None = None):
        self.data = data
        self.src = src
        self.path = Path(src.file)
        #: every subnet, including those written as a CIDR on a link
        self.subnets: dict[str, Subnet] = subnets if subnets is not None else dict(data.subnets)
        #: every non-switch node's interfaces, in link order
        self.interfaces: dict[str, list[Iface]] = interfaces or {}

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def routing(self) -> Routing:
        r = self.data.routing
        return Routing(mode=r) if isinstance(r, str) else r

    def switch_of(self, node: str) -> str:
        for link in self.data.links:
            if link.a == node and self.data.nodes[link.b].role == "switch":
                return link.b
            if link.b == node and self.data.nodes[link.a].role == "switch":
                return link.a
        raise KeyError(node)

    def subnet_of(self, node: str) -> str:
        """The subnet of a switch, or of a node's first interface."""
        n = self.data.nodes[node]
        if n.role == "switch":
            assert n.subnet is not None
            return n.subnet
        return self.interfaces[node][0].subnet


def load_topology(path: str | Path, *, routing: str | None = None,
                  params: dict[str, Any] | None = None) -> Topology:
    """Load, expand (``generate:``), validate.  ``routing`` replaces the file's mode
    (one ring, three labs: static, ospf, rip); ``params`` size a generated topology."""
    src = load_file(path)
    if not isinstance(src.data, dict):
        raise InputError(problems=[src.problem((), "a topology must be a mapping with name, domain, subnets, nodes, links")])
    if "generate" in src.data:
        from lab.model.generate import expand
        expand(src, params or {})
    elif params:
        raise InputError(problems=[src.problem((), "parameters were given but this topology is not generated",
                                               "only topologies with a 'generate:' key take parameters")])
    if routing is not None:
        r = src.data.get("routing")
        if isinstance(r, dict):
            r = {**r, "mode": routing}
            if routing != "static":
                r.pop("routes", None)
            src.data["routing"] = r
        else:
            src.data["routing"] = routing
    data = parse(TopologyFile, src.data, src)
    topo = Topology(data, src)
    problems = check(data, src, topo)
    if problems:
        raise InputError(problems=problems)
    return topo


def _link_subnet(t: TopologyFile, link: Link, i: int, subnets: dict[str, Subnet],
                 p: Any, out: list[Problem]) -> str | None:
    """The subnet of a link: its switch's, or the one named (or written as a CIDR) on it."""
    na, nb = t.nodes[link.a], t.nodes[link.b]
    if na.role == "switch" or nb.role == "switch":
        if link.subnet is not None:
            out.append(p(("links", i, "subnet"), "a link to a switch takes the switch's subnet",
                         "remove 'subnet' from this link"))
        sw = na if na.role == "switch" else nb
        return sw.subnet
    if link.subnet is None:
        out.append(p(("links", i), f"'{link.a}' and '{link.b}' are linked without a switch: the link needs 'subnet'",
                     "name a subnet, or write a CIDR like 10.255.0.0/30"))
        return None
    if link.subnet in subnets:
        return link.subnet
    if "/" in link.subnet:
        try:
            sub = Subnet(cidr=link.subnet)
        except ValidationError as exc:
            msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            msg, _, hint = msg.partition("\n  hint: ")
            out.append(p(("links", i, "subnet"), msg, hint or None))
            return None
        name = f"{link.a}-{link.b}"
        subnets[name] = sub
        return name
    out.append(p(("links", i, "subnet"), f"unknown subnet '{link.subnet}'",
                 suggest(link.subnet, list(subnets)) or "name a subnet, or write a CIDR like 10.255.0.0/30"))
    return None


def check(t: TopologyFile, src: Located, topo: Topology | None = None) -> list[Problem]:
    """Cross-reference and address-plan checks that a schema cannot express.

    Fills ``topo.subnets`` and ``topo.interfaces`` when given.
    """
    out: list[Problem] = []
    p = src.problem
    nodes = t.nodes
    subnets: dict[str, Subnet] = dict(t.subnets)
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

    for name, node in nodes.items():
        where = ("nodes", name)
        if not NAME_RE.match(name):
            out.append(p(where, f"node name '{name}' is not a simple name",
                         "use 1-15 lower-case letters, digits or '-', starting with a letter"))
        if node.role == "switch":
            if node.address is not None:
                out.append(p(where + ("address",), "a switch has no address", "remove 'address'"))
            if node.interfaces is not None:
                out.append(p(where + ("interfaces",), "a switch has no addresses", "remove 'interfaces'"))
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
            if node.config is not None and node.role != "mail":
                out.append(p(where + ("config",), "only mail nodes take 'config'", "remove 'config'"))
            elif node.config is not None:
                for section, settings in node.config.sections().items():
                    for r in mailconfig.check(section, settings):
                        out.append(p(where + ("config", section, r.key), r.message, r.hint))
            for key in ("hub", "stp"):
                if getattr(node, key):
                    out.append(p(where + (key,), f"only switches have '{key}'", f"remove '{key}'"))
            if node.interfaces is not None and node.role not in ROUTING_ROLES:
                out.append(p(where + ("interfaces",), "only routers and firewalls have several interfaces",
                             "give this node one 'address'"))
            elif node.interfaces is not None and node.address is not None:
                out.append(p(where + ("address",), "give either 'address' or 'interfaces', not both"))
            elif node.address is None and node.interfaces is None and node.role not in ROUTING_ROLES:
                out.append(p(where, "this node needs 'address': a static IPv4 address or 'dhcp'"))
            elif node.address == "dhcp" and node.role != "host":
                out.append(p(where + ("address",), f"a {node.role} server needs a static address",
                             "clients must be able to find it"))
        if node.domain is not None and not DOMAIN_RE.match(node.domain):
            out.append(p(where + ("domain",), f"'{node.domain}' is not a DNS domain name"))

    ifaces: dict[str, list[Iface]] = {n: [] for n, v in nodes.items() if v.role != "switch"}
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
        if ra == rb == "switch":
            sa, sb = nodes[link.a].subnet, nodes[link.b].subnet
            if sa != sb:
                out.append(p(("links", i), f"switches '{link.a}' ({sa}) and '{link.b}' ({sb}) carry different subnets",
                             "only a router joins two subnets"))
            if link.loss or link.delay:
                out.append(p(("links", i), "loss and delay go on a link with a node at one end",
                             "put them on the link of the host or router whose traffic should suffer"))
            continue
        sub = _link_subnet(t, link, i, subnets, p, out)
        if sub is None:
            continue
        for end, other in ((link.a, link.b), (link.b, link.a)):
            if nodes[end].role == "switch":
                continue
            ifaces[end].append(Iface(end, f"eth{len(ifaces[end])}", sub, None, False, i, other))

    names = list(subnets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if subnets[a].network.overlaps(subnets[b].network):
                where_b = ("subnets", b, "cidr") if b in t.subnets else \
                    ("links", next(j for j, lk in enumerate(t.links) if lk.subnet == subnets[b].cidr), "subnet")
                out.append(p(where_b, f"{subnets[b].cidr} overlaps subnet '{a}' ({subnets[a].cidr})",
                             "give every subnet its own address range"))

    for name, node in nodes.items():
        if node.role == "switch":
            continue
        mine = ifaces[name]
        if not mine:
            if not any(name in (lk.a, lk.b) for lk in t.links):
                out.append(p(("nodes", name), f"node '{name}' has no link", f"add a link from '{name}' to a switch"))
            continue
        if len(mine) > 1 and node.role not in ROUTING_ROLES:
            out.append(p(("links", mine[1].link), f"node '{name}' has more than one link",
                         "only routers and firewalls have several interfaces: use role router"))
            continue
        if len(mine) > 1 and node.interfaces is None and node.address is not None:
            out.append(p(("nodes", name, "address") if node.address else ("nodes", name),
                         f"'{name}' joins {len(mine)} subnets: it needs an address on each",
                         "replace 'address' with interfaces: {" + ", ".join(f"{i.subnet}: ..." for i in mine) + "}"))
            continue
        seen_sub: dict[str, int] = {}
        for itf in mine:
            if itf.subnet in seen_sub:
                out.append(p(("links", itf.link), f"'{name}' is linked twice to subnet '{itf.subnet}'",
                             f"links[{seen_sub[itf.subnet]}] already joins it"))
            seen_sub[itf.subnet] = itf.link
        if node.interfaces is not None:
            for sub_name in node.interfaces:
                if sub_name not in seen_sub:
                    out.append(p(("nodes", name, "interfaces", sub_name),
                                 f"'{name}' has no link to subnet '{sub_name}'" if sub_name in subnets
                                 else f"unknown subnet '{sub_name}'",
                                 suggest(sub_name, list(seen_sub)) or "link it to a switch of that subnet"))
    if out:
        return out

    # the address plan, now that each interface's subnet is known
    owners: dict[str, str] = {}
    auto: list[Iface] = []
    for name, node in nodes.items():
        if node.role == "switch":
            continue
        for itf in ifaces[name]:
            sub = subnets[itf.subnet]
            by_iface = node.interfaces is not None or (node.role in ROUTING_ROLES and node.address is None)
            here = ("nodes", name, "interfaces", itf.subnet) if by_iface else ("nodes", name, "address")
            if by_iface:
                addr = (node.interfaces or {}).get(itf.subnet)
                if addr is None:
                    if itf.subnet in t.subnets:
                        out.append(p(("nodes", name, "interfaces") if node.interfaces is not None else ("nodes", name),
                                     f"no address for '{name}' on subnet '{itf.subnet}'",
                                     f"add interfaces: {{{itf.subnet}: <an address in {sub.cidr}>}}"))
                    else:
                        auto.append(itf)
                    continue
            else:
                addr = node.address
            if addr == "dhcp":
                itf.dhcp = True
                if sub.dhcp is None:
                    out.append(p(here, f"subnet '{itf.subnet}' has no DHCP server",
                                 f"add subnets.{itf.subnet}.dhcp or give '{name}' a static address"))
                continue
            assert addr is not None
            ip = ipaddress.IPv4Address(addr)
            if ip not in sub.network:
                hint = f"'{name}' is linked to switch '{itf.peer}'" if nodes[itf.peer].role == "switch" \
                    else f"links[{itf.link}] joins it to subnet {sub.cidr}"
                out.append(p(here, f"{ip} is not in subnet '{itf.subnet}' ({sub.cidr})", hint))
                continue
            if ip in (sub.network.network_address, sub.network.broadcast_address):
                out.append(p(here, f"{ip} is the network or broadcast address of {sub.cidr}"))
                continue
            if sub.gateway and str(ip) == sub.gateway and node.role not in ROUTING_ROLES:
                out.append(p(here, f"{ip} is the gateway of subnet '{itf.subnet}'"))
                continue
            if sub.dhcp:
                lo, hi = sub.dhcp.bounds
                if lo <= ip <= hi:
                    out.append(p(here, f"{ip} is inside the DHCP pool {sub.dhcp.pool}",
                                 "static addresses must stay outside the pool"))
                    continue
            if str(ip) in owners:
                out.append(p(here, f"{ip} is already the address of '{owners[str(ip)]}'",
                             "every node needs its own address"))
                continue
            owners[str(ip)] = name
            itf.address = str(ip)
    # point-to-point links written as a CIDR: number the ends from the bottom of the range
    for itf in auto:
        sub = subnets[itf.subnet]
        free = (str(h) for h in sub.network.hosts() if str(h) not in owners)
        addr = next(free, None)
        if addr is None:
            out.append(p(("links", itf.link, "subnet"), f"{sub.cidr} has no free address left for '{itf.node}'"))
            continue
        owners[addr] = itf.node
        itf.address = addr

    for sub_name, sub in t.subnets.items():
        if sub.dhcp and sub.dhcp.server in nodes and nodes[sub.dhcp.server].role == "dhcp":
            if ifaces[sub.dhcp.server][0].subnet != sub_name:
                out.append(p(("subnets", sub_name, "dhcp", "server"),
                             f"DHCP server '{sub.dhcp.server}' is not on subnet '{sub_name}'",
                             "this version has no DHCP relay: put the server on the subnet it serves"))
    # a gateway must be a router's address on that subnet, once the topology has routers
    routers_on: dict[str, dict[str, str]] = {}
    for name, node in nodes.items():
        if node.role in ROUTING_ROLES:
            for itf in ifaces[name]:
                if itf.address:
                    routers_on.setdefault(itf.subnet, {})[itf.address] = name
    if routers_on:
        for sub_name, sub in t.subnets.items():
            if sub.gateway and sub.gateway not in routers_on.get(sub_name, {}):
                here = routers_on.get(sub_name)
                out.append(p(("subnets", sub_name, "gateway"),
                             f"gateway {sub.gateway} is not the address of a router on subnet '{sub_name}'",
                             ("routers here: " + ", ".join(f"{n} {a}" for a, n in here.items())) if here
                             else "link a router to this subnet, or remove 'gateway'"))
    if topo is not None:
        topo.subnets = subnets
        topo.interfaces = ifaces
    if out:
        return out

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
        if md.public is not None:
            ref = md.public.dns
            if ref not in nodes:
                out.append(p(where + ("public", "dns"), f"unknown node '{ref}'", suggest(ref, list(nodes))))
            elif nodes[ref].role != "dns":
                out.append(p(where + ("public", "dns"), f"node '{ref}' has role '{nodes[ref].role}', not 'dns'"))
            elif ref == md.dns:
                out.append(p(where + ("public", "dns"), "the public copy must live on another DNS server than the inside one"))
        for user in md.users:
            if not USER_RE.match(user):
                out.append(p(where + ("users", user), f"'{user}' is not a valid mailbox name",
                             "lower-case letters, digits, '.', '_' or '-'"))
    out.extend(_check_routing(t, ifaces, subnets, src))
    out.extend(_check_firewalls(t, ifaces, subnets, src))
    return out
