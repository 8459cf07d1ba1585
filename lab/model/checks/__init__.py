"""The cross-checks of a topology, as named phases that return problems and change nothing.

Each phase looks at one concern (names, nodes, links, switch loops, interfaces,
overlapping subnets, addresses, gateways, DHCP, mail domains, routing, firewalls, proxies,
VPNs, aliases) and
returns located problems.  All phases run, so a file's independent problems come in
one round; a phase leaves alone what an earlier phase already found broken (a node
whose links are wrong gets no address errors, a node the schema refused is not
"unknown").  The wiring they look at is derived once (``lab.model.wiring``).
"""

from __future__ import annotations

from dataclasses import replace

from lab.errors import Problem
from lab.model.checks.addressing import addresses, dhcp, gateways, overlaps
from lab.model.checks.context import Ctx, Phase
from lab.model.checks.policy import domains, firewalls, routing, security
from lab.model.checks.proxyvpn import aliases, proxies, vpns
from lab.model.checks.services import services
from lab.model.checks.wiring import interfaces, links, names, nodes, switch_loops
from lab.model.topology import TopologyFile
from lab.model.wiring import Wiring, wire
from lab.model.yamlload import Located

#: the phases, in order: names and nodes on their own, then the wiring (whose problems
#: name the nodes the later phases leave alone), then everything that rests on it
FIRST: tuple[Phase, ...] = (names, nodes)
WIRING: tuple[Phase, ...] = (links, switch_loops, interfaces)
LATER: tuple[Phase, ...] = (
    overlaps,
    addresses,
    gateways,
    dhcp,
    domains,
    routing,
    firewalls,
    security,
    proxies,
    vpns,
    services,
    aliases,
)

__all__ = ["FIRST", "LATER", "WIRING", "Ctx", "check"]


def check(t: TopologyFile, src: Located, broken: set[str] | None = None, w: Wiring | None = None) -> list[Problem]:
    """Every phase, in order; the wiring phases name the nodes later phases leave alone."""
    c = Ctx(t, src, w if w is not None else wire(t), frozenset(broken or ()))
    out: list[Problem] = []
    for phase in FIRST:
        out += phase(c)
    wiring_problems = [p for phase in WIRING for p in phase(c)]
    c = replace(c, suspect=frozenset(_nodes_named(c, wiring_problems)))
    out += wiring_problems
    for phase in LATER:
        out += phase(c)
    return out


def _nodes_named(c: Ctx, problems: list[Problem]) -> set[str]:
    found = set()
    for pr in problems:
        f = pr.field
        if f.startswith("nodes."):
            found.add(f.split(".")[1])
        elif f.startswith("links["):
            i = int(f[6 : f.index("]")])
            if i < len(c.t.links):
                found |= {c.t.links[i].a, c.t.links[i].b}
    return found
