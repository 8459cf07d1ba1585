"""Routing derived from a topology: static routes by shortest path, and what FRR needs.

In 'static' mode the derived routes are installed; in 'ospf'/'rip' mode they are
computed too, as the expectation routers must converge to.  Hand-written routes
replace the derived ones of their router.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.model.nodeplan import NodePlan, Route
from lab.model.policy import Routing


@dataclass(frozen=True)
class RouterIface:
    name: str
    address: str
    prefixlen: int
    passive: bool  # only hosts on it: advertised, no adjacency formed


@dataclass(frozen=True)
class RoutingPlan:
    """One router's FRR settings."""

    node: str
    mode: str  # ospf or rip
    router_id: str
    interfaces: tuple[RouterIface, ...]
    hello: int = 1
    dead: int = 4
    area: int = 0
    retransmit: int = 1
    spf: tuple[int, int, int] = (0, 50, 1000)  # ms: first SPF at once, then hold 50 ms growing to 1 s
    lsa: tuple[int, int] = (100, 50)  # ms: least interval between own LSAs, least arrival interval
    rip_timers: tuple[int, int, int] = (5, 15, 10)  # s: update, timeout, garbage (5 is ripd's least)

    @property
    def adjacencies(self) -> int:
        """How many OSPF neighbours this router should reach Full with."""
        return sum(1 for i in self.interfaces if not i.passive)


def static_routes(routing: Routing, subnets: dict[str, str], routers: dict[str, NodePlan]) -> dict[str, list[Route]]:
    """Shortest-path routes (BFS over routers) for every router to every subnet it does not join."""
    on_subnet: dict[str, list[tuple[str, str]]] = {}
    for r in routers.values():
        for i in r.interfaces:
            if i.ip:
                on_subnet.setdefault(i.subnet, []).append((r.name, i.ip))
    out: dict[str, list[Route]] = {}
    for r in routers.values():
        if r.name in routing.routes:
            out[r.name] = [Route(x.to, x.via) for x in routing.routes[r.name]]
            continue
        if routing.mode == "static" and not routing.derive:
            out[r.name] = []
            continue
        first_hop = _first_hops(r.name, routers, on_subnet)
        order = {name: k for k, name in enumerate([r.name, *first_hop])}
        own = {i.subnet for i in r.interfaces}
        routes = []
        for sub_name, cidr in sorted(subnets.items()):
            holders = [nb for nb, _ in on_subnet.get(sub_name, []) if nb in first_hop]
            if sub_name in own or not holders:
                continue
            best = min(holders, key=lambda h: order[h])
            routes.append(Route(cidr, first_hop[best]))
        out[r.name] = routes
    return out


def _first_hops(
    start: str, routers: dict[str, NodePlan], on_subnet: dict[str, list[tuple[str, str]]]
) -> dict[str, str]:
    """BFS over routers: for each one reached, the neighbour address of the first hop towards it."""
    first_hop: dict[str, str] = {}
    queue = [start]
    seen = {start}
    while queue:
        cur = queue.pop(0)
        for i in routers[cur].interfaces:
            for nb, nb_ip in on_subnet.get(i.subnet, []):
                if nb in seen:
                    continue
                seen.add(nb)
                first_hop[nb] = first_hop.get(cur, nb_ip) if cur != start else nb_ip
                queue.append(nb)
    return first_hop


def routing_plans(routing: Routing, routers: dict[str, NodePlan]) -> dict[str, RoutingPlan]:
    """Each router's FRR settings (ospf and rip modes only); an interface is passive when
    no other router shares its subnet."""
    if routing.mode not in ("ospf", "rip"):
        return {}
    members: dict[str, set[str]] = {}
    for r in routers.values():
        for i in r.interfaces:
            members.setdefault(i.subnet, set()).add(r.name)
    out = {}
    for r in routers.values():
        ifaces = tuple(
            RouterIface(i.name, i.ip, i.prefixlen, len(members.get(i.subnet, set())) < 2) for i in r.interfaces if i.ip
        )
        out[r.name] = RoutingPlan(r.name, routing.mode, str(r.ip), ifaces, routing.hello, routing.dead)
    return out
