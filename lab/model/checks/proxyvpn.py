"""Check phases of the proxies, the VPNs and the web names: what they name exists and fits.

An alias is one more name of a node in its domain (a DNS A record, a web server's
``server_name``, a name in its certificate): it may not be a name another node already
answers to, or the lab's DNS would lead one name to two machines.
"""

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
            proxies = [n for n, v in t.nodes.items() if v.role == "proxy"]
            hint = f"the proxy nodes: {', '.join(proxies)}" if proxies else "give the node role 'proxy'"
            out.append(c.p(where, f"node '{name}' has role '{t.nodes[name].role}', not 'proxy'", hint))
        for j, sub in enumerate(pol.clients):
            if sub not in c.w.subnets:
                out.append(c.p(where + ("clients", j), f"unknown subnet '{sub}'", _subnet_hint(c, sub)))
    for name, node in t.nodes.items():
        if f"proxies.{name}" in c.broken or "proxies" in c.broken:
            continue  # its entry is there, and already reported wrong
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
        apart = "the addresses inside a tunnel are a network of their own: pick one no subnet uses, e.g. 10.8.0.0/24"
        for sub_name, sub in c.w.subnets.items():
            if net.overlaps(sub.network):
                out.append(c.p(where + ("subnet",), f"{v.subnet} overlaps subnet '{sub_name}' ({sub.cidr})", apart))
        for other, onet in tunnels:
            if net.overlaps(onet):
                out.append(c.p(where + ("subnet",), f"{v.subnet} overlaps the tunnel of vpn '{other}'", apart))
        tunnels.append((name, net))
        ends = [v.server, *v.clients]
        for node, subs in v.networks.items():
            if node not in ends and all(c.known(e) for e in ends):  # an unknown end is reported already
                hint = suggest(node, ends) or f"its ends: {', '.join(ends)}"
                out.append(c.p(where + ("networks", node), f"'{node}' is not an end of this tunnel", hint))
            for j, net_name in enumerate(subs):
                if net_name not in c.w.subnets:
                    out.append(
                        c.p(where + ("networks", node, j), f"unknown subnet '{net_name}'", _subnet_hint(c, net_name))
                    )
                elif node in c.w.interfaces and not any(i.subnet == net_name for i in c.w.interfaces[node]):
                    on = sorted({i.subnet for i in c.w.interfaces[node] if i.subnet})
                    out.append(
                        c.p(
                            where + ("networks", node, j),
                            f"'{node}' is not on subnet '{net_name}': an end offers the networks it is on",
                            f"'{node}' is on: {', '.join(on)}" if on else None,
                        )
                    )
        if not v.networks:
            out.append(
                c.p(
                    where + ("networks",),
                    "the tunnel leads nowhere: name the subnets behind an end",
                    f"e.g. networks: {{{v.server}: [<a subnet it is on>]}}",
                )
            )
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
            gateways = [n for n, x in t.nodes.items() if x.role in ROUTING_ROLES]
            hint = f"the routers and firewalls: {', '.join(gateways)}" if gateways else "add a router to be the gateway"
            out.append(c.p(path, f"'{ref}' is a {role}: a tunnel's gateway is a router or firewall", hint))
        elif not gateway and role != "host":
            out.append(c.p(path, f"'{ref}' is a {role}: a road warrior is a host", "name a host of role 'host'"))
        elif t.nodes[ref].address == "dhcp":
            out.append(
                c.p(
                    path,
                    f"'{ref}' takes its address by DHCP: a tunnel end needs a fixed one",
                    "give it a static address",
                )
            )
    return out


def _subnet_hint(c: Ctx, name: str) -> str:
    subnets = list(c.w.subnets)
    return suggest(name, subnets) or "the subnets: " + ", ".join(subnets[:12]) + (" ..." if len(subnets) > 12 else "")


def aliases(c: Ctx) -> list[Problem]:
    """Each alias a name of its own: not its node's, not another node's, not given twice."""
    t = c.t
    holder: dict[str, str] = {}  # a full name -> who answers to it
    for name, node in t.nodes.items():
        if node.role != "switch":
            holder[f"{name}.{node.domain or t.domain}"] = f"node '{name}'"
    out: list[Problem] = []
    for name, node in t.nodes.items():
        domain = node.domain or t.domain
        for j, alias in enumerate(node.aliases):
            full, where = f"{alias}.{domain}", ("nodes", name, "aliases", j)
            who = holder.get(full)
            if who == f"node '{name}'" and alias == name:
                out.append(
                    c.p(where, f"'{alias}' is the node's own name", "leave it out: the node has that name already")
                )
            elif who is not None:
                out.append(
                    c.p(
                        where,
                        f"'{full}' is already the name of {who}",
                        "choose another alias: a name leads to one node",
                    )
                )
            else:
                holder[full] = f"node '{name}' (an alias)"
    return out
