"""Check phases about the address plan: overlapping subnets, addresses, gateways, DHCP."""

from __future__ import annotations

import ipaddress

from lab.errors import Problem
from lab.model.checks.context import Ctx
from lab.model.policy import ROUTING_ROLES
from lab.model.topology import TopologyFile
from lab.model.wiring import by_interface, static_address
from lab.model.yamlload import PathKey


def overlaps(c: Ctx) -> list[Problem]:
    """Subnets sorted by their first address: one sweep finds every overlap (n log n)."""
    spans = sorted(
        (int(s.network.network_address), int(s.network.broadcast_address), name) for name, s in c.w.subnets.items()
    )
    out = []
    widest: tuple[int, str] | None = None  # the furthest end seen so far, and whose
    for start, end, name in spans:
        if widest is not None and start <= widest[0]:
            a = widest[1]
            where: PathKey = ("subnets", name, "cidr") if name in c.t.subnets else ("links", c.w.inline[name], "subnet")
            out.append(
                c.p(
                    where,
                    f"{c.w.subnets[name].cidr} overlaps subnet '{a}' ({c.w.subnets[a].cidr})",
                    "give every subnet its own address range",
                )
            )
        if widest is None or end > widest[0]:
            widest = (end, name)
    return out


def addresses(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    owners: dict[str, str] = {}
    for name, node in t.nodes.items():
        if node.role == "switch" or name in c.suspect:
            continue
        for itf in c.w.interfaces[name]:
            sub = c.w.subnets[itf.subnet]
            per_iface = by_interface(t, name)
            here: PathKey = ("nodes", name, "interfaces", itf.subnet) if per_iface else ("nodes", name, "address")
            addr = static_address(t, itf)
            if addr is None:
                if per_iface and itf.subnet in t.subnets:
                    out.append(
                        c.p(
                            ("nodes", name, "interfaces") if node.interfaces is not None else ("nodes", name),
                            f"no address for '{name}' on subnet '{itf.subnet}'",
                            f"add interfaces: {{{itf.subnet}: <an address in {sub.cidr}>}}",
                        )
                    )
                continue
            if addr == "dhcp":
                if sub.dhcp is None:
                    out.append(
                        c.p(
                            here,
                            f"subnet '{itf.subnet}' has no DHCP server",
                            f"add subnets.{itf.subnet}.dhcp or give '{name}' a static address",
                        )
                    )
                continue
            problem = _address_problem(c, name, itf.subnet, itf.peer, itf.link, addr, owners)
            if problem:
                out.append(c.p(here, *problem))
            else:
                owners[addr] = name
    return out


def _address_problem(
    c: Ctx, name: str, subnet: str, peer: str, link: int, addr: str, owners: dict[str, str]
) -> tuple[str, str | None] | None:
    sub = c.w.subnets[subnet]
    ip = ipaddress.IPv4Address(addr)
    if ip not in sub.network:
        hint = (
            f"'{name}' is linked to switch '{peer}'"
            if c.t.nodes[peer].role == "switch"
            else f"links[{link}] joins it to subnet {sub.cidr}"
        )
        return f"{ip} is not in subnet '{subnet}' ({sub.cidr})", hint
    if ip in (sub.network.network_address, sub.network.broadcast_address):
        return f"{ip} is the network or broadcast address of {sub.cidr}", None
    if sub.gateway and str(ip) == sub.gateway and c.t.nodes[name].role not in ROUTING_ROLES:
        return f"{ip} is the gateway of subnet '{subnet}'", None
    if sub.dhcp:
        lo, hi = sub.dhcp.bounds
        if lo <= ip <= hi:
            return f"{ip} is inside the DHCP pool {sub.dhcp.pool}", "static addresses must stay outside the pool"
    if str(ip) in owners:
        return f"{ip} is already the address of '{owners[str(ip)]}'", "every node needs its own address"
    return None


def gateways(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    routers_on: dict[str, dict[str, str]] = {}
    for name, node in t.nodes.items():
        if node.role in ROUTING_ROLES:
            for itf in c.w.interfaces[name]:
                addr = static_address(t, itf)
                if addr and addr != "dhcp":
                    routers_on.setdefault(itf.subnet, {})[addr] = name
    for sub_name, sub in t.subnets.items():
        if not sub.gateway:
            continue
        where: PathKey = ("subnets", sub_name, "gateway")
        gw = ipaddress.IPv4Address(sub.gateway)
        if gw not in sub.network:
            out.append(c.p(where, f"gateway {sub.gateway} is outside {sub.cidr}"))
            continue
        if gw in (sub.network.network_address, sub.network.broadcast_address):
            out.append(
                c.p(
                    where,
                    f"gateway {sub.gateway} is the network or broadcast address of {sub.cidr}",
                    f"a router's address on it, e.g. {next(sub.network.hosts())}",
                )
            )
            continue
        if sub.dhcp:
            lo, hi = sub.dhcp.bounds
            if lo <= gw <= hi:
                out.append(
                    c.p(
                        where,
                        f"gateway {sub.gateway} is inside the DHCP pool {sub.dhcp.pool}",
                        "a client could be leased the router's address: keep the gateway outside the pool",
                    )
                )
        if routers_on and sub.gateway not in routers_on.get(sub_name, {}) and not (c.suspect & _routers(t)):
            here = routers_on.get(sub_name)
            out.append(
                c.p(
                    where,
                    f"gateway {sub.gateway} is not the address of a router on subnet '{sub_name}'",
                    ("routers here: " + ", ".join(f"{n} {a}" for a, n in here.items()))
                    if here
                    else "link a router to this subnet, or remove 'gateway'",
                )
            )
    return out


def _routers(t: TopologyFile) -> set[str]:
    return {n for n, v in t.nodes.items() if v.role in ROUTING_ROLES}


def dhcp(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    served: dict[str, list[str]] = {}
    for name, sub in t.subnets.items():
        if sub.dhcp is None:
            continue
        where: PathKey = ("subnets", name, "dhcp")
        lo, hi = sub.dhcp.bounds
        if (
            lo not in sub.network
            or hi not in sub.network
            or lo == sub.network.network_address
            or hi == sub.network.broadcast_address
        ):
            out.append(c.p(where + ("pool",), f"pool {sub.dhcp.pool} is not inside the usable hosts of {sub.cidr}"))
        srv = t.nodes.get(sub.dhcp.server)
        if srv is None:
            out += c.unknown_node(where + ("server",), sub.dhcp.server)
        elif srv.role != "dhcp":
            out.append(c.p(where + ("server",), f"node '{sub.dhcp.server}' has role '{srv.role}', not 'dhcp'"))
        else:
            served.setdefault(sub.dhcp.server, []).append(name)
            mine = c.w.interfaces.get(sub.dhcp.server) or []
            if mine and mine[0].subnet != name and sub.dhcp.server not in c.suspect:
                out.append(
                    c.p(
                        where + ("server",),
                        f"DHCP server '{sub.dhcp.server}' is not on subnet '{name}'",
                        "this version has no DHCP relay: put the server on the subnet it serves",
                    )
                )
    unsure = any(b.startswith("subnets.") for b in c.broken)  # the subnet it serves may be the broken one
    for name, node in t.nodes.items():
        if node.role != "dhcp" or name in served or name in c.suspect or unsure:
            continue
        mine = c.w.interfaces.get(name) or []
        lan = mine[0].subnet if mine else None
        other = t.subnets[lan].dhcp if lan in t.subnets else None
        if other is not None and (other.server not in t.nodes or t.nodes[other.server].role != "dhcp"):
            continue  # the subnet names a wrong server: that is the problem reported
        hint = (
            f"subnet '{lan}' is already served by '{other.server}': two DHCP servers on one LAN hand out "
            "conflicting leases; make this node a host"
            if other is not None
            else f"give subnets.{lan}.dhcp {{server: {name}, pool: ...}}"
            if lan
            else None
        )
        out.append(c.p(("nodes", name), f"DHCP server '{name}' serves no subnet", hint))
    return out
