"""Check phases of the proxies and the VPNs: the nodes and subnets they name exist and fit."""

from __future__ import annotations

import ipaddress

from lab.errors import Problem
from lab.model.checks.context import Ctx
from lab.model.policy import ROUTING_ROLES
from lab.model.proxyvpn import Vpn
from lab.model.schema import suggest
from lab.model.yamlload import PathKey


def proxies(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    for name, pol in t.proxies.items():
        where: PathKey = ("proxies", name)
        if name not in t.nodes:
            out += c.unknown_node(where, name, [n for n, v in t.nodes.items() if v.role == "proxy"])
        elif t.nodes[name].role != "proxy":
            out.append(c.p(where, f"node '{name}' has role '{t.nodes[name].role}', not 'proxy'"))
        for j, sub in enumerate(pol.clients):
            if sub not in c.w.subnets:
                out.append(c.p(where + ("clients", j), f"unknown subnet '{sub}'", suggest(sub, list(c.w.subnets))))
    for name, node in t.nodes.items():
        if node.role == "proxy" and name not in t.proxies:
            out.append(
                c.p(
                    ("nodes", name, "role"),
                    f"proxy node '{name}' has no entry under proxies",
                    f"add proxies: {{{name}: {{clients: [<subnet>]}}}}: who may use it",
                )
            )
    return out


def vpns(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    tunnels: list[tuple[str, ipaddress.IPv4Network]] = []
    for name, v in t.vpns.items():
        where: PathKey = ("vpns", name)
        out += _vpn_nodes(c, name, v, where)
        net = ipaddress.IPv4Network(v.subnet)
        for sub_name, sub in c.w.subnets.items():
            if net.overlaps(sub.network):
                out.append(c.p(where + ("subnet",), f"{v.subnet} overlaps subnet '{sub_name}' ({sub.cidr})"))
        for other, onet in tunnels:
            if net.overlaps(onet):
                out.append(c.p(where + ("subnet",), f"{v.subnet} overlaps the tunnel of vpn '{other}'"))
        tunnels.append((name, net))
        ends = [v.server, *v.clients]
        for node, subs in v.networks.items():
            if node not in ends:
                out.append(
                    c.p(where + ("networks", node), f"'{node}' is not an end of this tunnel", suggest(node, ends))
                )
            for j, net_name in enumerate(subs):
                if net_name not in c.w.subnets:
                    out.append(
                        c.p(
                            where + ("networks", node, j),
                            f"unknown subnet '{net_name}'",
                            suggest(net_name, list(c.w.subnets)),
                        )
                    )
                elif node in c.w.interfaces and not any(i.subnet == net_name for i in c.w.interfaces[node]):
                    out.append(
                        c.p(
                            where + ("networks", node, j),
                            f"'{node}' is not on subnet '{net_name}': an end offers the networks it is on",
                        )
                    )
        if not v.networks:
            out.append(c.p(where + ("networks",), "the tunnel leads nowhere: name the subnets behind an end"))
    return out


def _vpn_nodes(c: Ctx, name: str, v: Vpn, where: PathKey) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    server, kind = v.server, v.type
    refs: list[tuple[PathKey, str]] = [(where + ("server",), server)]
    refs += [(where + ("clients", j), ref) for j, ref in enumerate(v.clients)]
    for path, ref in refs:
        if ref not in t.nodes:
            out += c.unknown_node(path, ref)
            continue
        role = t.nodes[ref].role
        gateway = ref == server or kind == "site-to-site"
        if gateway and role not in ROUTING_ROLES:
            out.append(c.p(path, f"'{ref}' is a {role}: a tunnel's gateway is a router or firewall"))
        elif not gateway and role != "host":
            out.append(c.p(path, f"'{ref}' is a {role}: a road warrior is a host"))
        elif t.nodes[ref].address == "dhcp":
            out.append(c.p(path, f"'{ref}' takes its address by DHCP: a tunnel end needs a fixed one"))
    return out
