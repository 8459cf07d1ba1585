"""Wiring: which link gives which node which interface on which subnet, and its address.

Pure derivations from a schema-valid ``TopologyFile``.  ``wire`` is tolerant: a link it
cannot place (an unknown node, a subnet it cannot resolve) is left out and the reason
recorded in ``Wiring.issues``, which the ``links`` check phase turns into located
problems.  ``assign`` runs once the checks passed: static addresses from the file,
and the ends of a link written as a CIDR numbered from the bottom of the range.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from lab.model.policy import ROUTING_ROLES
from lab.model.topology import Iface, Link, Subnet, TopologyFile, parse_cidr


@dataclass(frozen=True)
class LinkIssue:
    """Why a link could not be placed: ``kind`` names the check, ``detail`` fills the message."""

    link: int
    kind: str  # unknown-node, self, duplicate, switch-subnets, switch-impair, switch-subnet-given,
    # needs-subnet, bad-cidr, unknown-subnet
    detail: dict[str, str] = field(default_factory=dict)


@dataclass
class Wiring:
    subnets: dict[str, Subnet]  # every subnet, with those written as a CIDR on a link
    interfaces: dict[str, list[Iface]]  # every non-switch node's interfaces, in link order
    link_subnet: dict[int, str]  # links that were placed -> their subnet
    switch_links: list[tuple[int, str, str]]  # switch-to-switch links (index, a, b)
    inline: dict[str, int]  # subnets written as a CIDR -> the link that wrote it
    issues: list[LinkIssue] = field(default_factory=list)


def wire(t: TopologyFile) -> Wiring:
    nodes = t.nodes
    subnets: dict[str, Subnet] = dict(t.subnets)
    ifaces: dict[str, list[Iface]] = {n: [] for n, v in nodes.items() if v.role != "switch"}
    w = Wiring(subnets, ifaces, {}, [], {})
    seen_pairs: dict[frozenset[str], int] = {}
    for i, link in enumerate(t.links):
        unknown = [end for end in (link.a, link.b) if end not in nodes]
        if unknown:
            w.issues.extend(
                LinkIssue(i, "unknown-node", {"end": "a" if u == link.a else "b", "node": u}) for u in unknown
            )
            continue
        if link.a == link.b:
            w.issues.append(LinkIssue(i, "self", {"node": link.a}))
            continue
        pair = frozenset((link.a, link.b))
        if pair in seen_pairs:
            w.issues.append(LinkIssue(i, "duplicate", {"first": str(seen_pairs[pair])}))
            continue
        seen_pairs[pair] = i
        na, nb = nodes[link.a], nodes[link.b]
        if na.role == nb.role == "switch":
            if na.subnet != nb.subnet:
                w.issues.append(LinkIssue(i, "switch-subnets", {"sa": str(na.subnet), "sb": str(nb.subnet)}))
            if link.loss or link.delay:
                w.issues.append(LinkIssue(i, "switch-impair"))
            w.switch_links.append((i, link.a, link.b))
            continue
        sub = _link_subnet(t, link, i, w)
        if sub is None:
            continue
        w.link_subnet[i] = sub
        for end, other in ((link.a, link.b), (link.b, link.a)):
            if nodes[end].role != "switch":
                ifaces[end].append(Iface(end, f"eth{len(ifaces[end])}", sub, None, False, i, other))
    return w


def _link_subnet(t: TopologyFile, link: Link, i: int, w: Wiring) -> str | None:
    """The subnet of a link: its switch's, or the one named (or written as a CIDR) on it."""
    na, nb = t.nodes[link.a], t.nodes[link.b]
    if na.role == "switch" or nb.role == "switch":
        if link.subnet is not None:
            w.issues.append(LinkIssue(i, "switch-subnet-given"))
        sw = na if na.role == "switch" else nb
        return sw.subnet if sw.subnet in t.subnets else None
    if link.subnet is None:
        w.issues.append(LinkIssue(i, "needs-subnet", {"a": link.a, "b": link.b}))
        return None
    if link.subnet in w.subnets:
        return link.subnet
    if "/" in link.subnet:
        try:
            cidr = parse_cidr(link.subnet)
        except ValueError as exc:
            msg, _, hint = str(exc).partition("\n  hint: ")
            w.issues.append(LinkIssue(i, "bad-cidr", {"message": msg, "hint": hint}))
            return None
        name = f"{link.a}-{link.b}"
        w.subnets[name] = Subnet(cidr=cidr)
        w.inline[name] = i
        return name
    w.issues.append(LinkIssue(i, "unknown-subnet", {"subnet": link.subnet}))
    return None


def by_interface(t: TopologyFile, name: str) -> bool:
    """Does this node give its addresses per subnet (``interfaces:``) rather than one ``address``?"""
    node = t.nodes[name]
    return node.interfaces is not None or (node.role in ROUTING_ROLES and node.address is None)


def static_address(t: TopologyFile, itf: Iface) -> str | None:
    """The address the file gives this interface ('dhcp', an address, or None: none given)."""
    node = t.nodes[itf.node]
    if by_interface(t, itf.node):
        return (node.interfaces or {}).get(itf.subnet)
    return node.address


def assign(t: TopologyFile, w: Wiring) -> dict[str, list[Iface]]:
    """Every interface with its address: the file's, DHCP, or numbered (links written as a CIDR)."""
    out: dict[str, list[Iface]] = {}
    taken = {a for its in w.interfaces.values() for i in its if (a := static_address(t, i)) not in (None, "dhcp")}
    for name, its in w.interfaces.items():
        mine = []
        for itf in its:
            addr = static_address(t, itf)
            if addr == "dhcp":
                mine.append(replace(itf, dhcp=True))
            elif addr is not None:
                mine.append(replace(itf, address=addr))
            elif itf.subnet in w.inline:
                free = _first_free(w.subnets[itf.subnet].cidr, taken)
                taken.add(free)
                mine.append(replace(itf, address=free))
            else:
                mine.append(itf)
        out[name] = mine
    return out


def _first_free(cidr: str, taken: set[str]) -> str:
    """The lowest host address of ``cidr`` nobody has (a /30 has two: one per end)."""
    net = ipaddress.IPv4Network(cidr)
    first = int(net.network_address) + 1
    for k in range(net.num_addresses - 2):
        addr = str(ipaddress.IPv4Address(first + k))
        if addr not in taken:
            return addr
    raise ValueError(f"{cidr} has no free address")  # the checks make this impossible (two ends, /30 or wider)
