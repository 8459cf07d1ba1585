"""Where each node of the topology diagram goes: the layout half of ``lab.report.svg``.

The layout is a small layered ("Sugiyama") drawing: routers and firewalls form the top
row (a labelled backbone), every other node sits one row below the nearest node that
leads to it (breadth first), rows are ordered by the barycentre of their neighbours to
keep crossings down, and x positions are the least-squares fit to the neighbours'
positions under a minimum spacing (isotonic regression).  Everything is sorted by the
topology's own order, so the same topology always gives the same picture.

Leaves (hosts on a switch) are stacked in columns under their switch when a row would
be too wide, so a generated tree of ~60 nodes stays readable.

Only geometry lives here (no SVG markup): ``layout()`` turns a plan into positioned
nodes and edges, and ``lab.report.svg`` draws them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.model.plan import Plan

ICON_W, ICON_H = 44, 34  # glyph box
TEXT_H = 30  # name and sub-line under the glyph
ROW_GAP = 118  # from the bottom of one row's text to the next row's glyph
NODE_GAP = 34  # minimum free space between two nodes of a row
STACK_PITCH = 40  # vertical distance of stacked leaves
MAX_ROW = 14  # nodes in a row before leaves are stacked
SPINE = 8  # from a leaf column's spine to its glyphs
CHAR_W = {12: 7.0, 10: 5.9}  # rough advance per character (sans-serif) for sizing


def text_width(text: str, size: int = 10) -> float:
    """A text's width from its length: pure Python has no font metrics, and the layout only needs room to spare."""
    return len(text) * CHAR_W.get(size, size * 0.6)


@dataclass
class Node:
    name: str
    role: str
    sub: str  # second line: role, or the subnet of a switch
    order: int
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    stacked: bool = False  # drawn in a column under its parent (compact form)
    stack_parent: str | None = None
    stack_index: int = 0


@dataclass
class Edge:
    a: str
    b: str
    subnet: str  # subnet name
    cidr: str
    label_a: str  # "eth1 10.0.1.1" on a's side; "" for a switch
    label_b: str
    up: bool = True
    p2p: bool = False  # no switch: the link is the subnet
    index: int = -1  # in the topology's links


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def neighbours(self, name: str) -> list[str]:
        out = []
        for e in self.edges:
            if e.a == name:
                out.append(e.b)
            elif e.b == name:
                out.append(e.a)
        return out


def _graph(plan: Plan, leases: dict[str, str] | None) -> Graph:
    g = Graph()
    subnets = plan.subnets
    for k, (name, n) in enumerate(plan.nodes.items()):
        if n.role == "switch":
            cidr = str(subnets[n.subnet]) if n.subnet in subnets else ""
            sub = f"{n.subnet} {cidr}".strip()
        else:
            sub = n.role
        g.nodes[name] = Node(name, n.role, sub, k)
    for k, link in enumerate(plan.topology.data.links):
        labels, subnet = [], ""
        for end in (link.a, link.b):
            node = plan.nodes[end]
            itf = next((i for i in node.interfaces if i.link == k), None)
            if itf is None:
                labels.append("")
                if node.role == "switch":
                    subnet = subnet or (node.subnet or "")
                continue
            subnet = itf.subnet
            addr = itf.ip or ((leases or {}).get(end, "") + " dhcp").strip()
            labels.append(f"{itf.name} {addr}")
        p2p = all(plan.nodes[e].role != "switch" for e in (link.a, link.b))
        cidr = str(subnets[subnet]) if subnet in subnets else ""
        g.edges.append(Edge(link.a, link.b, subnet, cidr, labels[0], labels[1], link.up, p2p, k))
    return g


def _layers(g: Graph) -> list[list[str]]:
    """Rows of node names: routers first, then breadth first from them (or from the centre)."""
    order = sorted(g.nodes, key=lambda n: g.nodes[n].order)
    adj = {n: g.neighbours(n) for n in order}
    routers = [n for n in order if g.nodes[n].role in ("router", "firewall")]
    layer: dict[str, int] = {}

    def bfs(sources: list[str]) -> None:
        queue = list(sources)
        for s in sources:
            layer[s] = 0
        while queue:
            cur = queue.pop(0)
            for nb in sorted(adj[cur], key=lambda n: g.nodes[n].order):
                if nb not in layer:
                    layer[nb] = layer[cur] + 1
                    queue.append(nb)

    if routers:
        bfs(routers)
    while len(layer) < len(order):
        # no router (a LAN) or a part the routers do not reach: start from its centre
        rest = [n for n in order if n not in layer]
        root = min(rest, key=lambda n: (_eccentricity(n, adj), g.nodes[n].order))
        bfs([root])
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for n in order:
        g.nodes[n].layer = layer[n]
        rows[layer[n]].append(n)
    return [r for r in rows if r]


def _eccentricity(start: str, adj: dict[str, list[str]]) -> int:
    dist = {start: 0}
    queue = [start]
    while queue:
        cur = queue.pop(0)
        for nb in adj[cur]:
            if nb not in dist:
                dist[nb] = dist[cur] + 1
                queue.append(nb)
    # an unreachable node must not make a bad root look good
    return max(dist.values()) - len(dist) * 1000


def _order(g: Graph, rows: list[list[str]]) -> None:
    """Reorder rows by the barycentre of their neighbours in the row above (then below)."""
    adj = {n: g.neighbours(n) for n in g.nodes}

    def sweep(src: list[str], dst: list[str]) -> list[str]:
        pos = {n: i for i, n in enumerate(src)}

        def key(n: str) -> tuple[float, int]:
            ps = [pos[m] for m in adj[n] if m in pos]
            return (sum(ps) / len(ps) if ps else math.inf, g.nodes[n].order)

        placed = sorted((n for n in dst if key(n)[0] != math.inf), key=key)
        # nodes without a neighbour there keep their relative place at the end
        return placed + [n for n in dst if key(n)[0] == math.inf]

    for _ in range(2):
        for i in range(1, len(rows)):
            rows[i] = sweep(rows[i - 1], rows[i])
        for i in range(len(rows) - 2, 0, -1):
            rows[i] = sweep(rows[i + 1], rows[i])
    for i in range(1, len(rows)):
        rows[i] = sweep(rows[i - 1], rows[i])


def _stack_leaves(g: Graph, rows: list[list[str]]) -> None:
    """In a too-wide row, put each switch's leaves in a column under it."""
    adj = {n: g.neighbours(n) for n in g.nodes}
    for i in range(1, len(rows)):
        if len(rows[i]) <= MAX_ROW:
            continue
        kept: list[str] = []
        for n in rows[i]:
            nbs = adj[n]
            parent = nbs[0] if len(nbs) == 1 else None
            if parent is not None and g.nodes[parent].layer == i - 1:
                siblings = [m for m in kept if g.nodes[m].stack_parent == parent]
                node = g.nodes[n]
                node.stacked, node.stack_parent = True, parent
                node.stack_index = len(siblings)
                if siblings:
                    continue  # only the first leaf of a column takes a slot
            kept.append(n)
        rows[i] = kept


def _node_width(n: Node) -> float:
    if n.stacked:
        return ICON_W + 6 + max(text_width(n.name, 12), text_width(n.sub, 10), 56)
    return max(ICON_W, text_width(n.name, 12), text_width(n.sub, 10))


def _isotonic(desired: list[float], seps: list[float]) -> list[float]:
    """Positions closest to ``desired`` (least squares) keeping x[i+1] - x[i] >= seps[i]."""
    offs = [0.0]
    for s in seps:
        offs.append(offs[-1] + s)
    target = [d - o for d, o in zip(desired, offs)]
    blocks: list[list[float]] = []  # [sum, count]
    for t in target:
        blocks.append([t, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    ys: list[float] = []
    for s, c in blocks:
        ys.extend([s / c] * int(c))
    return [y + o for y, o in zip(ys, offs)]


def _place(g: Graph, rows: list[list[str]]) -> None:
    """Give every node its x and y: rows packed first, then relaxed towards their neighbours."""
    for node in g.nodes.values():
        node.width = _node_width(node)
    seps = _spacing(g)
    for row in rows:
        xs = _isotonic([0.0] * len(row), seps(row))
        for n, x in zip(row, xs):
            g.nodes[n].x = x
    _relax(g, rows, seps)
    _place_rows(g, rows)


def _spacing(g: Graph) -> Callable[[list[str]], list[float]]:
    """The minimum distances between the neighbours of a row, as a function of the row.

    A gap depends on more than the two glyphs: the link labels drawn between or just
    above two nodes need room too.  Those label widths are measured once here, since
    the relaxation below asks for the same rows' gaps again and again.
    """
    # two nodes of a row joined by a link carry its labels between them: leave room
    between: dict[frozenset[str], float] = {}
    for e in g.edges:
        between[frozenset((e.a, e.b))] = text_width(e.label_a) + text_width(e.label_b) + 24

    # a node's link label sits just above it: neighbours in a row must leave room for both
    above: dict[str, float] = {}
    for e in g.edges:
        na, nb = g.nodes[e.a], g.nodes[e.b]
        if na.layer != nb.layer and not (na.stacked or nb.stacked):
            lower, upper_label, lower_label = (
                (nb, e.label_a, e.label_b) if na.layer < nb.layer else (na, e.label_b, e.label_a)
            )
            widest = max(text_width(lower_label), 0 if e.p2p else text_width(upper_label))
            above[lower.name] = max(above.get(lower.name, 0.0), widest)

    def seps(row: list[str]) -> list[float]:
        out = []
        for a, b in zip(row, row[1:]):
            na, nb = g.nodes[a], g.nodes[b]
            gap = NODE_GAP / 2 if na.stacked and nb.stacked else NODE_GAP
            out.append(
                max(
                    (na.width + nb.width) / 2 + gap,
                    (above.get(a, 0.0) + above.get(b, 0.0)) / 2 + 16,
                    ICON_W + between.get(frozenset((a, b)), 0.0),
                )
            )
        return out

    return seps


def _relax(g: Graph, rows: list[list[str]], seps: Callable[[list[str]], list[float]]) -> None:
    """Move each row towards the nodes it links to, keeping its minimum spacing.

    Sweeps go down and up several times (each row follows the one just placed), then
    once more with both neighbouring rows, so a link is drawn as straight as it can be.
    """
    adj = {n: g.neighbours(n) for n in g.nodes}

    def relax(i: int, ref: set[int]) -> None:
        row = rows[i]
        desired = []
        for n in row:
            node = g.nodes[n]
            if node.stacked and node.stack_parent:
                # the column's spine runs straight down from its switch
                desired.append(g.nodes[node.stack_parent].x + node.width / 2 + SPINE)
                continue
            ps = [
                g.nodes[m].x - (g.nodes[m].width / 2 + SPINE if g.nodes[m].stacked else 0)
                for m in adj[n]
                if g.nodes[m].layer in ref and g.nodes[m].stack_index == 0
            ]
            desired.append(sum(ps) / len(ps) if ps else node.x)
        for n, x in zip(row, _isotonic(desired, seps(row))):
            g.nodes[n].x = x

    for _ in range(6):
        for i in range(1, len(rows)):
            relax(i, {i - 1})
        for i in range(len(rows) - 2, -1, -1):
            relax(i, {i + 1})
    for i in range(1, len(rows)):
        relax(i, {i - 1, i + 1})


def _place_rows(g: Graph, rows: list[list[str]]) -> None:
    """y of every row, then the stacked leaves under the first of their column.

    A row's height depends on its tallest stack of leaves, and a stacked leaf's place
    on its column's head, so this runs once x is final.
    """
    # rows: y from the tallest stack above
    y = 0.0
    for row in rows:
        depth = max(
            (
                1 + sum(1 for m in g.nodes.values() if m.stacked and m.stack_parent == g.nodes[n].stack_parent)
                if g.nodes[n].stacked
                else 1
            )
            for n in row
        )
        for n in row:
            g.nodes[n].y = y
        y += ICON_H + TEXT_H + ROW_GAP + (depth - 1) * STACK_PITCH
    for node in g.nodes.values():
        if node.stacked and node.stack_index:
            first = next(
                m for m in g.nodes.values() if m.stacked and m.stack_parent == node.stack_parent and m.stack_index == 0
            )
            node.x, node.y = first.x, first.y + node.stack_index * STACK_PITCH


def layout(plan: Plan, leases: dict[str, str] | None) -> tuple[Graph, list[list[str]]]:
    """The plan's nodes and links with their positions, and the rows (node names, left to right).

    ``leases`` (node -> address) fills in the interface labels of DHCP clients.  The
    rows are returned too: the drawing tells links within a row from links between rows.
    """
    g = _graph(plan, leases)
    rows = _layers(g)
    _order(g, rows)
    _stack_leaves(g, rows)
    _place(g, rows)
    return g, rows
