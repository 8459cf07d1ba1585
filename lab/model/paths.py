"""Paths through the topology's graph: the links between two nodes, and what they add up to.

A traced path (``path`` and ``rtt`` steps, the report's flows) names the nodes a
packet crossed: hosts and routers.  Between two of them lie links and switches; the
links are found here, shortest first, through switches only, so the delays the
topology gives them can be added up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from lab.model.plan import Plan
from lab.model.topology import delay_seconds


def links_between(plan: Plan, a: str, b: str) -> list[int]:
    """The links from node ``a`` to node ``b`` through switches only (shortest), or []."""
    adj: dict[str, list[tuple[str, int]]] = {}
    for k, link in enumerate(plan.topology.data.links):
        adj.setdefault(link.a, []).append((link.b, k))
        adj.setdefault(link.b, []).append((link.a, k))
    seen: dict[str, list[int]] = {a: []}
    queue: deque[str] = deque([a])
    while queue:
        cur = queue.popleft()
        for nxt, k in adj.get(cur, []):
            if nxt in seen:
                continue
            path = [*seen[cur], k]
            if nxt == b:
                return path
            if plan.nodes[nxt].role == "switch":
                seen[nxt] = path
                queue.append(nxt)
    return []


@dataclass(frozen=True)
class PathDelay:
    """The links a path of nodes crosses and the delay the topology gives them."""

    nodes: tuple[str, ...]
    links: tuple[int, ...]
    one_way: float  # seconds, the sum of the links' delays
    jitter: float  # seconds, the sum of their jitters (the widest spread)
    complete: bool  # every pair of consecutive nodes was joined by links

    @property
    def rtt(self) -> float:
        """There and back again: every link delays both directions by its delay."""
        return 2 * self.one_way


def path_delay(plan: Plan, nodes: list[str]) -> PathDelay:
    links: list[int] = []
    complete = True
    for a, b in zip(nodes, nodes[1:]):
        between = links_between(plan, a, b)
        complete = complete and bool(between)
        links += between
    t = plan.topology.data.links
    one_way = sum((delay_seconds(t[k].delay or "0s") for k in links), 0.0)
    jitter = sum((delay_seconds(t[k].jitter or "0s") for k in links), 0.0)
    return PathDelay(tuple(nodes), tuple(links), one_way, jitter, complete)
