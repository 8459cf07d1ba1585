"""The topology as an SVG diagram, computed from the plan in pure Python.

The layout is a small layered ("Sugiyama") drawing: routers and firewalls form the top
row (a labelled backbone), every other node sits one row below the nearest node that
leads to it (breadth first), rows are ordered by the barycentre of their neighbours to
keep crossings down, and x positions are the least-squares fit to the neighbours'
positions under a minimum spacing (isotonic regression).  Everything is sorted by the
topology's own order, so the same topology always gives the same picture.

Leaves (hosts on a switch) are stacked in columns under their switch when a row would
be too wide, so a generated tree of ~60 nodes stays readable.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from lab.model.plan import Plan

ROLES = ("switch", "router", "firewall", "host", "mail", "dns", "dhcp")
#: stroke and fill of each role's glyph
COLOURS = {
    "switch": ("#4a5a6a", "#dde4ec"),
    "router": ("#1f5fa8", "#d6e6f8"),
    "firewall": ("#b03a2e", "#f6d9d5"),
    "host": ("#555f69", "#eef0f2"),
    "mail": ("#c2700f", "#fbe6c8"),
    "dns": ("#1e8073", "#d2efeb"),
    "dhcp": ("#6f44a0", "#e6dcf3"),
}
ICON_W, ICON_H = 44, 34          # glyph box
TEXT_H = 30                      # name and sub-line under the glyph
ROW_GAP = 118                    # from the bottom of one row's text to the next row's glyph
NODE_GAP = 34                    # minimum free space between two nodes of a row
STACK_PITCH = 40                 # vertical distance of stacked leaves
MAX_ROW = 14                     # nodes in a row before leaves are stacked
MARGIN = 24
SPINE = 8                        # from a leaf column's spine to its glyphs
CHAR_W = {12: 7.0, 10: 5.9}      # rough advance per character (sans-serif) for sizing


def _text_w(text: str, size: int = 10) -> float:
    return len(text) * CHAR_W.get(size, size * 0.6)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class _Node:
    name: str
    role: str
    sub: str                     # second line: role, or the subnet of a switch
    order: int
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    stacked: bool = False        # drawn in a column under its parent (compact form)
    stack_parent: str | None = None
    stack_index: int = 0


@dataclass
class _Edge:
    a: str
    b: str
    subnet: str                  # subnet name
    cidr: str
    label_a: str                 # "eth1 10.0.1.1" on a's side; "" for a switch
    label_b: str
    up: bool = True
    p2p: bool = False            # no switch: the link is the subnet


@dataclass
class _Graph:
    nodes: dict[str, _Node] = field(default_factory=dict)
    edges: list[_Edge] = field(default_factory=list)

    def neighbours(self, name: str) -> list[str]:
        out = []
        for e in self.edges:
            if e.a == name:
                out.append(e.b)
            elif e.b == name:
                out.append(e.a)
        return out


def _graph(plan: Plan, leases: dict[str, str] | None) -> _Graph:
    g = _Graph()
    subnets = plan.subnets
    for k, (name, n) in enumerate(plan.nodes.items()):
        if n.role == "switch":
            cidr = str(subnets[n.subnet]) if n.subnet in subnets else ""
            sub = f"{n.subnet} {cidr}".strip()
        else:
            sub = n.role
        g.nodes[name] = _Node(name, n.role, sub, k)
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
        g.edges.append(_Edge(link.a, link.b, subnet, cidr, labels[0], labels[1], link.up, p2p))
    return g


def _layers(g: _Graph) -> list[list[str]]:
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


def _order(g: _Graph, rows: list[list[str]]) -> None:
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


def _stack_leaves(g: _Graph, rows: list[list[str]]) -> None:
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
                    continue              # only the first leaf of a column takes a slot
            kept.append(n)
        rows[i] = kept


def _node_width(n: _Node) -> float:
    if n.stacked:
        return ICON_W + 6 + max(_text_w(n.name, 12), _text_w(n.sub, 10), 56)
    return max(ICON_W, _text_w(n.name, 12), _text_w(n.sub, 10))


def _isotonic(desired: list[float], seps: list[float]) -> list[float]:
    """Positions closest to ``desired`` (least squares) keeping x[i+1] - x[i] >= seps[i]."""
    offs = [0.0]
    for s in seps:
        offs.append(offs[-1] + s)
    target = [d - o for d, o in zip(desired, offs)]
    blocks: list[list[float]] = []          # [sum, count]
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


def _place(g: _Graph, rows: list[list[str]]) -> None:
    adj = {n: g.neighbours(n) for n in g.nodes}
    for n in g.nodes.values():
        n.width = _node_width(n)

    # two nodes of a row joined by a link carry its labels between them: leave room
    between: dict[frozenset[str], float] = {}
    for e in g.edges:
        between[frozenset((e.a, e.b))] = _text_w(e.label_a) + _text_w(e.label_b) + 24

    # a node's link label sits just above it: neighbours in a row must leave room for both
    above: dict[str, float] = {}
    for e in g.edges:
        na, nb = g.nodes[e.a], g.nodes[e.b]
        if na.layer != nb.layer and not (na.stacked or nb.stacked):
            lower, upper_label, lower_label = (nb, e.label_a, e.label_b) if na.layer < nb.layer else (na, e.label_b, e.label_a)
            widest = max(_text_w(lower_label), 0 if e.p2p else _text_w(upper_label))
            above[lower.name] = max(above.get(lower.name, 0.0), widest)

    def seps(row: list[str]) -> list[float]:
        out = []
        for a, b in zip(row, row[1:]):
            na, nb = g.nodes[a], g.nodes[b]
            gap = NODE_GAP / 2 if na.stacked and nb.stacked else NODE_GAP
            out.append(max((na.width + nb.width) / 2 + gap,
                           (above.get(a, 0.0) + above.get(b, 0.0)) / 2 + 16,
                           ICON_W + between.get(frozenset((a, b)), 0.0)))
        return out

    for row in rows:
        xs = _isotonic([0.0] * len(row), seps(row))
        for n, x in zip(row, xs):
            g.nodes[n].x = x

    def relax(i: int, ref: set[int]) -> None:
        row = rows[i]
        desired = []
        for n in row:
            node = g.nodes[n]
            if node.stacked and node.stack_parent:
                # the column's spine runs straight down from its switch
                desired.append(g.nodes[node.stack_parent].x + node.width / 2 + SPINE)
                continue
            ps = [g.nodes[m].x - (g.nodes[m].width / 2 + SPINE if g.nodes[m].stacked else 0)
                  for m in adj[n] if g.nodes[m].layer in ref and g.nodes[m].stack_index == 0]
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
    # rows: y from the tallest stack above
    y = 0.0
    for row in rows:
        depth = max((1 + sum(1 for m in g.nodes.values() if m.stacked and m.stack_parent == g.nodes[n].stack_parent)
                     if g.nodes[n].stacked else 1) for n in row)
        for n in row:
            g.nodes[n].y = y
        y += ICON_H + TEXT_H + ROW_GAP + (depth - 1) * STACK_PITCH
    for n in g.nodes.values():
        if n.stacked and n.stack_index:
            first = next(m for m in g.nodes.values() if m.stacked and m.stack_parent == n.stack_parent
                         and m.stack_index == 0)
            n.x, n.y = first.x, first.y + n.stack_index * STACK_PITCH


# ---------------------------------------------------------------------------- drawing

def _glyph(role: str, x: float, y: float) -> str:
    """The role's shape, centred on (x, y)."""
    stroke, fill = COLOURS.get(role, COLOURS["host"])
    w, h = ICON_W, ICON_H
    l, t = x - w / 2, y - h / 2
    st = f'fill="{fill}" stroke="{stroke}" stroke-width="2"'
    if role == "switch":
        ports = "".join(f'<rect x="{l + 7 + k * 8:.1f}" y="{y + 3:.1f}" width="5" height="4" fill="{stroke}"/>'
                        for k in range(4))
        return (f'<rect x="{l:.1f}" y="{y - 11:.1f}" width="{w}" height="22" rx="3" {st}/>'
                f'<path d="M{l + 9:.1f} {y - 4:.1f} h26 m-5 -3 l5 3 l-5 3" fill="none" stroke="{stroke}" stroke-width="1.5"/>'
                + ports)
    if role == "router":
        r = h / 2
        return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" {st}/>'
                f'<path d="M{x - 10:.1f} {y:.1f} h20 M{x:.1f} {y - 10:.1f} v20 M{x + 6:.1f} {y - 4:.1f} l4 4 l-4 4 '
                f'M{x - 6:.1f} {y - 4:.1f} l-4 4 l4 4" fill="none" stroke="{stroke}" stroke-width="1.8"/>')
    if role == "firewall":
        bricks = "".join(f'<line x1="{l:.1f}" y1="{t + k * h / 4:.1f}" x2="{l + w:.1f}" y2="{t + k * h / 4:.1f}" stroke="{stroke}" stroke-width="1"/>'
                         for k in (1, 2, 3))
        for k in range(4):
            off = 11 if k % 2 else 22
            bricks += "".join(f'<line x1="{l + c:.1f}" y1="{t + k * h / 4:.1f}" x2="{l + c:.1f}" y2="{t + (k + 1) * h / 4:.1f}" stroke="{stroke}" stroke-width="1"/>'
                              for c in range(off, int(w), 22))
        return f'<rect x="{l:.1f}" y="{t:.1f}" width="{w}" height="{h}" {st}/>' + bricks
    if role == "mail":
        return (f'<rect x="{l:.1f}" y="{t + 3:.1f}" width="{w}" height="{h - 6}" rx="2" {st}/>'
                f'<path d="M{l:.1f} {t + 3:.1f} L{x:.1f} {y + 3:.1f} L{l + w:.1f} {t + 3:.1f}" fill="none" stroke="{stroke}" stroke-width="2"/>')
    if role == "dns":
        pts = " ".join(f"{x + (w / 2) * math.cos(math.radians(a)):.1f},{y + (h / 2 + 2) * math.sin(math.radians(a)):.1f}"
                       for a in range(0, 360, 60))
        return (f'<polygon points="{pts}" {st}/>'
                f'<text x="{x:.1f}" y="{y + 3.5:.1f}" class="t-in" fill="{stroke}">DNS</text>')
    if role == "dhcp":
        pts = f"{x:.1f},{t - 2:.1f} {x + w / 2 + 2:.1f},{y:.1f} {x:.1f},{t + h + 2:.1f} {x - w / 2 - 2:.1f},{y:.1f}"
        return (f'<polygon points="{pts}" {st}/>'
                f'<text x="{x:.1f}" y="{y + 3.5:.1f}" class="t-in" fill="{stroke}">DHCP</text>')
    # host: a monitor on a stand
    return (f'<rect x="{l + 4:.1f}" y="{t:.1f}" width="{w - 8}" height="{h - 9}" rx="2" {st}/>'
            f'<path d="M{x:.1f} {t + h - 9:.1f} v5 M{x - 9:.1f} {t + h - 3:.1f} h18" stroke="{stroke}" stroke-width="2"/>')


@dataclass
class _Label:
    text: str
    cls: str
    anchor: str
    spots: list[tuple[float, float]]     # where it may go, best first

    def box(self, x: float, y: float) -> tuple[float, float, float, float]:
        w = _text_w(self.text, 10) + 4
        left = x - w / 2 if self.anchor == "middle" else x - w if self.anchor == "end" else x
        return left, y - 10, left + w, y + 3

    def svg(self, x: float, y: float) -> str:
        return f'<text x="{x:.1f}" y="{y:.1f}" class="{self.cls}" text-anchor="{self.anchor}">{_e(self.text)}</text>'


def _label(x: float, y: float, text: str, cls: str = "t-if", anchor: str = "middle",
           more: list[tuple[float, float]] | None = None) -> list[_Label]:
    return [_Label(text, cls, anchor, [(x, y), *(more or [])])] if text else []


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_labels(labels: list[_Label], nodes: list[_Node]) -> str:
    """Put each label on its first spot that hits no node and no label placed before it."""
    taken = []
    for n in nodes:
        if n.stacked:
            taken.append((n.x - n.width / 2, n.y - ICON_H / 2, n.x + n.width / 2, n.y + ICON_H / 2))
        else:
            w = max(ICON_W, n.width)
            taken.append((n.x - w / 2, n.y - ICON_H / 2 - 2, n.x + w / 2, n.y + ICON_H / 2 + TEXT_H - 2))
    out = []
    for lab in labels:
        spot = next((p for p in lab.spots if not any(_overlap(lab.box(*p), t) for t in taken)), lab.spots[0])
        taken.append(lab.box(*spot))
        out.append(lab.svg(*spot))
    return "".join(out)


def _attach(n: _Node, towards: _Node) -> tuple[float, float]:
    """Where an edge leaves ``n``'s drawing in the direction of ``towards``."""
    if n.stacked:
        return n.x - n.width / 2 + ICON_W / 2, n.y - ICON_H / 2
    if towards.y > n.y + 1:
        return n.x, n.y + ICON_H / 2 + TEXT_H - 4       # below the name
    if towards.y < n.y - 1:
        return n.x, n.y - ICON_H / 2 - 2
    return (n.x + (ICON_W / 2 + 2) * (1 if towards.x > n.x else -1)), n.y


def _edge(g: _Graph, e: _Edge, rows: list[list[str]]) -> tuple[str, list[_Label]]:
    """The link's line and, apart (drawn above the nodes), its labels."""
    a, b = g.nodes[e.a], g.nodes[e.b]
    cls = "t-link" + ("" if e.up else " t-down") + (" t-p2p" if e.p2p else "")
    title = f"<title>{_e(e.a)} — {_e(e.b)}: {_e(e.subnet)} {_e(e.cidr)}{'' if e.up else ' (down)'}</title>"
    out: list[str] = []
    lab: list[_Label] = []
    if b.stacked or a.stacked:
        parent, leaf, leaf_label = (a, b, e.label_b) if b.stacked else (b, a, e.label_a)
        px, py = _attach(parent, leaf)
        spine = leaf.x - leaf.width / 2 - SPINE
        ly = leaf.y
        out.append(f'<path class="{cls}" d="M{px:.1f} {py:.1f} V{py + 24:.1f} H{spine:.1f} V{ly:.1f} H{leaf.x - leaf.width / 2:.1f}" fill="none">{title}</path>')
        tx = leaf.x - leaf.width / 2 + ICON_W + 6
        lab.extend(_label(tx, ly + 13, leaf_label, anchor="start"))
        return "".join(out), lab
    if abs(a.y - b.y) < 1:                                  # same row
        left, right = (a, b) if a.x < b.x else (b, a)
        l_label, r_label = (e.label_a, e.label_b) if left is a else (e.label_b, e.label_a)
        row = rows[left.layer] if left.layer < len(rows) else []
        adjacent = (left.name in row and right.name in row and abs(row.index(left.name) - row.index(right.name)) == 1)
        if adjacent:
            x1, y1 = _attach(left, right)
            x2, y2 = _attach(right, left)
            out.append(f'<line class="{cls}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}">{title}</line>')
            lab.extend(_label(x1 + 4, y1 - 6, l_label, anchor="start"))
            lab.extend(_label(x2 - 4, y2 - 6, r_label, anchor="end"))
            lab.extend(_label((x1 + x2) / 2, y1 + 15, e.cidr, "t-net"))
        else:
            span = abs(row.index(left.name) - row.index(right.name)) if left.name in row and right.name in row else 2
            inset = max(2.0, 14 - 4 * (span - 2))       # longer arcs leave nearer the centre
            x1, y1 = left.x + inset, left.y - ICON_H / 2 - 2
            x2, y2 = right.x - inset, right.y - ICON_H / 2 - 2
            lift = 34 + 22 * span
            cy = y1 - lift * 2
            out.append(f'<path class="{cls}" d="M{x1:.1f} {y1:.1f} C{x1:.1f} {cy:.1f} {x2:.1f} {cy:.1f} {x2:.1f} {y2:.1f}" fill="none">{title}</path>')

            def bez(t: float) -> tuple[float, float]:
                u = 1 - t
                return (u ** 3 * x1 + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t ** 3 * x2,
                        u ** 3 * y1 + 3 * u * u * t * cy + 3 * u * t * t * cy + t ** 3 * y2)
            ts = (0.06, 0.12, 0.18, 0.24, 0.3)
            lab.extend(_label(*[(px + 4, py) for px, py in (bez(t) for t in ts)][0], l_label, anchor="start",
                              more=[(px + 4, py) for px, py in (bez(t) for t in ts[1:])]))
            lab.extend(_label(*[(px - 4, py) for px, py in (bez(1 - t) for t in ts)][0], r_label, anchor="end",
                              more=[(px - 4, py) for px, py in (bez(1 - t) for t in ts[1:])]))
            lab.extend(_label(bez(0.5)[0], bez(0.5)[1] - 4, e.cidr, "t-net", more=[(bez(0.5)[0], bez(0.5)[1] + 12)]))
        return "".join(out), lab
    upper, lower = (a, b) if a.y < b.y else (b, a)
    up_label, low_label = (e.label_a, e.label_b) if upper is a else (e.label_b, e.label_a)
    x1, y1 = _attach(upper, lower)
    x2, y2 = _attach(lower, upper)
    out.append(f'<line class="{cls}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}">{title}</line>')

    def at(t: float) -> tuple[float, float]:
        return x1 + (x2 - x1) * t, y1 + (y2 - y1) * t
    def spots(*ts: float) -> list[tuple[float, float]]:
        return [(px, py + 4) for px, py in (at(t) for t in ts)]
    if e.p2p:
        lab.extend(_label(*spots(0.5)[0], e.cidr, "t-net", spots(0.4, 0.6)))
        lab.extend(_label(*spots(0.22)[0], up_label, more=spots(0.3, 0.14, 0.36)))
    elif up_label:
        # a router's leg to a switch: its address near the switch, where legs fan out
        lab.extend(_label(*spots(0.7)[0], up_label, more=spots(0.56, 0.84, 0.44, 0.32, 0.2)))
    if low_label:
        first, *more = spots(0.8, 0.66, 0.9, 0.52, 0.4) if e.p2p else spots(0.74, 0.6, 0.86, 0.46, 0.34)
        lab.extend(_label(*first, low_label, more=more))
    return "".join(out), lab


def _node(n: _Node) -> str:
    title = f"<title>{_e(n.name)} ({_e(n.role)})</title>"
    if n.stacked:
        gx = n.x - n.width / 2 + ICON_W / 2
        return (f'<g class="t-node t-{_e(n.role)}" data-node="{_e(n.name)}">{title}{_glyph(n.role, gx, n.y)}'
                f'<text x="{gx + ICON_W / 2 + 6:.1f}" y="{n.y:.1f}" class="t-name" text-anchor="start">{_e(n.name)}</text></g>')
    return (f'<g class="t-node t-{_e(n.role)}" data-node="{_e(n.name)}">{title}{_glyph(n.role, n.x, n.y)}'
            f'<text x="{n.x:.1f}" y="{n.y + ICON_H / 2 + 13:.1f}" class="t-name">{_e(n.name)}</text>'
            f'<text x="{n.x:.1f}" y="{n.y + ICON_H / 2 + 25:.1f}" class="t-sub">{_e(n.sub)}</text></g>')


def _legend(roles: list[str], y: float, x0: float) -> tuple[str, float]:
    parts, x = [], x0
    for role in roles:
        parts.append(f'<g transform="translate({x + ICON_W / 2:.1f} {y:.1f}) scale(0.6) translate({-x - ICON_W / 2:.1f} {-y:.1f})">'
                     f'{_glyph(role, x + ICON_W / 2, y)}</g>')
        parts.append(f'<text x="{x + ICON_W * 0.8 + 6:.1f}" y="{y + 4:.1f}" class="t-leg">{_e(role)}</text>')
        x += ICON_W * 0.8 + 22 + _text_w(role, 10)
    return "".join(parts), x - x0


STYLE = """
.t-link{stroke:#7d8a96;stroke-width:2}
.t-p2p{stroke:#1f5fa8}
.t-down{stroke-dasharray:6 5;stroke:#b8bfc6}
.t-name{font:bold 12px sans-serif;fill:#1d2329;text-anchor:middle}
.t-sub{font:10px sans-serif;fill:#5d6770;text-anchor:middle}
.t-if{font:10px monospace;fill:#24313d;paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}
.t-net{font:bold 10px monospace;fill:#1f5fa8;text-anchor:middle;paint-order:stroke;stroke:#fff;stroke-width:4px}
.t-in{font:bold 8px sans-serif;text-anchor:middle}
.t-leg{font:11px sans-serif;fill:#444}
.t-title{font:bold 13px sans-serif;fill:#1d2329}
"""


def topology_svg(plan: Plan, *, leases: dict[str, str] | None = None, title: str | None = None) -> str:
    """An SVG drawing of ``plan``'s network: one glyph per node by role, every link with
    its subnet and interface addresses.  ``leases`` (node -> address) fills in the
    addresses DHCP handed out; ``title`` is drawn at the top left."""
    g = _graph(plan, leases)
    rows = _layers(g)
    _order(g, rows)
    _stack_leaves(g, rows)
    _place(g, rows)
    nodes = list(g.nodes.values())
    if not nodes:
        return '<svg xmlns="http://www.w3.org/2000/svg" class="topology" width="200" height="40"><text x="10" y="24">empty topology</text></svg>'
    min_x = min(n.x - n.width / 2 for n in nodes)
    max_x = max(n.x + n.width / 2 for n in nodes)
    # same-row arcs rise above the top row
    arcs = [e for e in g.edges if abs(g.nodes[e.a].y - g.nodes[e.b].y) < 1 and not (g.nodes[e.a].stacked or g.nodes[e.b].stacked)]
    top_extra = 0.0
    for e in arcs:
        row = rows[g.nodes[e.a].layer]
        span = abs(row.index(e.a) - row.index(e.b)) if e.a in row and e.b in row else 2
        if span > 1:
            top_extra = max(top_extra, (34 + 22 * span) * 1.5 + 16)
    head = 28 if title else 0
    ox = MARGIN - min_x
    oy = MARGIN + head + ICON_H / 2 + 4 + top_extra
    for n in nodes:
        n.x += ox
        n.y += oy
    bottom = max(n.y + ICON_H / 2 + (TEXT_H if not n.stacked else 4) for n in nodes)
    roles = [r for r in ROLES if any(n.role == r for n in nodes)]
    legend, legend_w = _legend(roles, bottom + 34, MARGIN)
    width = max(max_x - min_x + 2 * MARGIN, legend_w + 2 * MARGIN, _text_w(title or "", 12) + 2 * MARGIN)
    height = bottom + 34 + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="topology" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="topology {_e(plan.topology.name)}">',
           f"<style>{STYLE}</style>",
           '<rect width="100%" height="100%" fill="#fff"/>']
    if title:
        out.append(f'<text x="{MARGIN}" y="{MARGIN + 10}" class="t-title">{_e(title)}</text>')
    drawn = [_edge(g, e, rows) for e in g.edges]
    out.append('<g class="t-links">' + "".join(d[0] for d in drawn) + "</g>")
    out.append('<g class="t-nodes">' + "".join(_node(n) for n in sorted(nodes, key=lambda n: n.order)) + "</g>")
    labels = [lab for d in drawn for lab in d[1]]
    out.append('<g class="t-labels">' + _place_labels(labels, nodes) + "</g>")
    out.append(f'<g class="t-legend">{legend}</g>')
    out.append("</svg>")
    return "\n".join(out)
