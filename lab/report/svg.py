"""The topology as an SVG diagram, computed from the plan in pure Python.

Where each node goes is ``lab.report.svglayout``'s job (a layered drawing, leaves stacked
under their switch in wide rows); this module draws the result: a glyph per role, every
link with its subnet and interface addresses, labels put where they hit nothing already
drawn, and a legend.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

from lab.model.plan import Plan
from lab.report.svglayout import ICON_H, ICON_W, SPINE, TEXT_H, Edge, Graph, Node, layout, text_width

ROLES = ("switch", "router", "firewall", "host", "mail", "dns", "dhcp", "proxy", "web", "webmail", "acme")
#: stroke and fill of each role's glyph
COLOURS = {
    "switch": ("#4a5a6a", "#dde4ec"),
    "router": ("#1f5fa8", "#d6e6f8"),
    "firewall": ("#b03a2e", "#f6d9d5"),
    "host": ("#555f69", "#eef0f2"),
    "mail": ("#c2700f", "#fbe6c8"),
    "dns": ("#1e8073", "#d2efeb"),
    "dhcp": ("#6f44a0", "#e6dcf3"),
    "proxy": ("#7a5a12", "#f3ead2"),
    "web": ("#2d6b2d", "#dcefd9"),
    "webmail": ("#2b7bb9", "#dcecf8"),
    "acme": ("#2e7d32", "#dff0df"),
}
MARGIN = 24


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _glyph(role: str, x: float, y: float) -> str:
    """The role's shape, centred on (x, y)."""
    stroke, fill = COLOURS.get(role, COLOURS["host"])
    w, h = ICON_W, ICON_H
    left, t = x - w / 2, y - h / 2
    st = f'fill="{fill}" stroke="{stroke}" stroke-width="2"'
    if role == "switch":
        ports = "".join(
            f'<rect x="{left + 7 + k * 8:.1f}" y="{y + 3:.1f}" width="5" height="4" fill="{stroke}"/>' for k in range(4)
        )
        return (
            f'<rect x="{left:.1f}" y="{y - 11:.1f}" width="{w}" height="22" rx="3" {st}/>'
            f'<path d="M{left + 9:.1f} {y - 4:.1f} h26 m-5 -3 l5 3 l-5 3" fill="none" stroke="{stroke}" stroke-width="1.5"/>'
            + ports
        )
    if role == "router":
        r = h / 2
        return (
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" {st}/>'
            f'<path d="M{x - 10:.1f} {y:.1f} h20 M{x:.1f} {y - 10:.1f} v20 M{x + 6:.1f} {y - 4:.1f} l4 4 l-4 4 '
            f'M{x - 6:.1f} {y - 4:.1f} l-4 4 l4 4" fill="none" stroke="{stroke}" stroke-width="1.8"/>'
        )
    if role == "firewall":
        bricks = "".join(
            f'<line x1="{left:.1f}" y1="{t + k * h / 4:.1f}" x2="{left + w:.1f}" y2="{t + k * h / 4:.1f}" stroke="{stroke}" stroke-width="1"/>'
            for k in (1, 2, 3)
        )
        for k in range(4):
            off = 11 if k % 2 else 22
            bricks += "".join(
                f'<line x1="{left + c:.1f}" y1="{t + k * h / 4:.1f}" x2="{left + c:.1f}" y2="{t + (k + 1) * h / 4:.1f}" stroke="{stroke}" stroke-width="1"/>'
                for c in range(off, int(w), 22)
            )
        return f'<rect x="{left:.1f}" y="{t:.1f}" width="{w}" height="{h}" {st}/>' + bricks
    if role == "mail":
        return (
            f'<rect x="{left:.1f}" y="{t + 3:.1f}" width="{w}" height="{h - 6}" rx="2" {st}/>'
            f'<path d="M{left:.1f} {t + 3:.1f} L{x:.1f} {y + 3:.1f} L{left + w:.1f} {t + 3:.1f}" fill="none" stroke="{stroke}" stroke-width="2"/>'
        )
    if role == "dns":
        pts = " ".join(
            f"{x + (w / 2) * math.cos(math.radians(a)):.1f},{y + (h / 2 + 2) * math.sin(math.radians(a)):.1f}"
            for a in range(0, 360, 60)
        )
        return (
            f'<polygon points="{pts}" {st}/><text x="{x:.1f}" y="{y + 3.5:.1f}" class="t-in" fill="{stroke}">DNS</text>'
        )
    if role == "dhcp":
        pts = f"{x:.1f},{t - 2:.1f} {x + w / 2 + 2:.1f},{y:.1f} {x:.1f},{t + h + 2:.1f} {x - w / 2 - 2:.1f},{y:.1f}"
        return (
            f'<polygon points="{pts}" {st}/>'
            f'<text x="{x:.1f}" y="{y + 3.5:.1f}" class="t-in" fill="{stroke}">DHCP</text>'
        )
    if role in ("proxy", "web"):
        word = "PROXY" if role == "proxy" else "WEB"
        return (
            f'<rect x="{left:.1f}" y="{t:.1f}" width="{w}" height="{h}" rx="9" {st}/>'
            f'<text x="{x:.1f}" y="{y + 3.5:.1f}" class="t-in" fill="{stroke}">{word}</text>'
        )
    if role in ("webmail", "acme"):
        # webmail: a browser window; acme: a certificate with its seal
        label = "WWW" if role == "webmail" else "CA"
        return (
            f'<rect x="{left:.1f}" y="{t + 2:.1f}" width="{w}" height="{h - 4}" rx="3" {st}/>'
            f'<line x1="{left:.1f}" y1="{t + 9:.1f}" x2="{left + w:.1f}" y2="{t + 9:.1f}" stroke="{stroke}" stroke-width="1.5"/>'
            f'<text x="{x:.1f}" y="{y + 7:.1f}" class="t-in" fill="{stroke}">{label}</text>'
        )
    # host: a monitor on a stand
    return (
        f'<rect x="{left + 4:.1f}" y="{t:.1f}" width="{w - 8}" height="{h - 9}" rx="2" {st}/>'
        f'<path d="M{x:.1f} {t + h - 9:.1f} v5 M{x - 9:.1f} {t + h - 3:.1f} h18" stroke="{stroke}" stroke-width="2"/>'
    )


@dataclass
class _Label:
    text: str
    cls: str
    anchor: str
    spots: list[tuple[float, float]]  # where it may go, best first

    def box(self, x: float, y: float) -> tuple[float, float, float, float]:
        w = text_width(self.text, 10) + 4
        left = x - w / 2 if self.anchor == "middle" else x - w if self.anchor == "end" else x
        return left, y - 10, left + w, y + 3

    def svg(self, x: float, y: float) -> str:
        return f'<text x="{x:.1f}" y="{y:.1f}" class="{self.cls}" text-anchor="{self.anchor}">{_e(self.text)}</text>'


def _label(
    x: float,
    y: float,
    text: str,
    cls: str = "t-if",
    anchor: str = "middle",
    more: list[tuple[float, float]] | None = None,
) -> list[_Label]:
    return [_Label(text, cls, anchor, [(x, y), *(more or [])])] if text else []


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_labels(labels: list[_Label], nodes: list[Node]) -> str:
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


def _attach(n: Node, towards: Node) -> tuple[float, float]:
    """Where an edge leaves ``n``'s drawing in the direction of ``towards``."""
    if n.stacked:
        return n.x - n.width / 2 + ICON_W / 2, n.y - ICON_H / 2
    if towards.y > n.y + 1:
        return n.x, n.y + ICON_H / 2 + TEXT_H - 4  # below the name
    if towards.y < n.y - 1:
        return n.x, n.y - ICON_H / 2 - 2
    return (n.x + (ICON_W / 2 + 2) * (1 if towards.x > n.x else -1)), n.y


def _edge(g: Graph, e: Edge, rows: list[list[str]], cut: dict[int, str]) -> tuple[str, list[_Label]]:
    """The link's line and, apart (drawn above the nodes), its labels.

    A link the run cut (``cut``: link index -> when) is drawn red and dashed, with the
    note in its title; every line carries ``data-link`` (its index in the topology) so
    the report can light up the links of one flow.
    """
    a, b = g.nodes[e.a], g.nodes[e.b]
    cls = "t-link" + ("" if e.up else " t-down") + (" t-p2p" if e.p2p else "") + (" t-cut" if e.index in cut else "")
    note = f" (cut: {cut[e.index]})" if e.index in cut else "" if e.up else " (down)"
    title = f"<title>{_e(e.a)} — {_e(e.b)}: {_e(e.subnet)} {_e(e.cidr)}{_e(note)}</title>"
    if b.stacked or a.stacked:
        line, labels = _leaf_edge(e, a, b, cls, title)
    elif abs(a.y - b.y) < 1:  # same row
        line, labels = _row_edge(e, a, b, rows, cls, title)
    else:
        line, labels = _cross_edge(e, a, b, cls, title)
    tag = line.index(" ", 1)
    return line[:tag] + f' data-link="{e.index}"' + line[tag:], labels


def _leaf_edge(e: Edge, a: Node, b: Node, cls: str, title: str) -> tuple[str, list[_Label]]:
    """A stacked leaf's link: down its column's spine, then across to the leaf.

    Stacked leaves share one spine from their switch, so the leaf's label goes beside
    the leaf (not on the line), where the column leaves room for it.
    """
    parent, leaf, leaf_label = (a, b, e.label_b) if b.stacked else (b, a, e.label_a)
    px, py = _attach(parent, leaf)
    spine = leaf.x - leaf.width / 2 - SPINE
    ly = leaf.y
    line = f'<path class="{cls}" d="M{px:.1f} {py:.1f} V{py + 24:.1f} H{spine:.1f} V{ly:.1f} H{leaf.x - leaf.width / 2:.1f}" fill="none">{title}</path>'
    tx = leaf.x - leaf.width / 2 + ICON_W + 6
    return line, _label(tx, ly + 13, leaf_label, anchor="start")


def _row_edge(e: Edge, a: Node, b: Node, rows: list[list[str]], cls: str, title: str) -> tuple[str, list[_Label]]:
    """A link within one row: a straight line between neighbours, else an arc over the row.

    A straight line to a node further along the row would run through the nodes in
    between, so those links rise above the row, the longer ones higher.
    """
    left, right = (a, b) if a.x < b.x else (b, a)
    l_label, r_label = (e.label_a, e.label_b) if left is a else (e.label_b, e.label_a)
    row = rows[left.layer] if left.layer < len(rows) else []
    adjacent = left.name in row and right.name in row and abs(row.index(left.name) - row.index(right.name)) == 1
    if not adjacent:
        span = abs(row.index(left.name) - row.index(right.name)) if left.name in row and right.name in row else 2
        return _arc_edge(e, left, right, l_label, r_label, span, cls, title)
    lab: list[_Label] = []
    x1, y1 = _attach(left, right)
    x2, y2 = _attach(right, left)
    line = f'<line class="{cls}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}">{title}</line>'
    # on a short link both ends' labels may meet above it: the right one then goes below
    lab.extend(_label(x1 + 4, y1 - 6, l_label, anchor="start", more=[(x1 + 4, y1 - 18)]))
    lab.extend(_label(x2 - 4, y2 - 6, r_label, anchor="end", more=[(x2 - 4, y2 + 28), (x2 - 4, y2 - 18)]))
    lab.extend(_label((x1 + x2) / 2, y1 + 15, e.cidr, "t-net", more=[((x1 + x2) / 2, y1 + 40)]))
    return line, lab


def _arc_edge(
    e: Edge, left: Node, right: Node, l_label: str, r_label: str, span: int, cls: str, title: str
) -> tuple[str, list[_Label]]:
    """The arc of a same-row link over ``span`` nodes, with its labels along the curve.

    Several arcs may leave one node: each label gets a few spots along its own curve,
    near its end, and the label placer takes the first one that is free.
    """
    lab: list[_Label] = []
    inset = max(2.0, 14 - 4 * (span - 2))  # longer arcs leave nearer the centre
    x1, y1 = left.x + inset, left.y - ICON_H / 2 - 2
    x2, y2 = right.x - inset, right.y - ICON_H / 2 - 2
    lift = 34 + 22 * span
    cy = y1 - lift * 2
    line = f'<path class="{cls}" d="M{x1:.1f} {y1:.1f} C{x1:.1f} {cy:.1f} {x2:.1f} {cy:.1f} {x2:.1f} {y2:.1f}" fill="none">{title}</path>'

    def bez(t: float) -> tuple[float, float]:
        u = 1 - t
        return (
            u**3 * x1 + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t**3 * x2,
            u**3 * y1 + 3 * u * u * t * cy + 3 * u * t * t * cy + t**3 * y2,
        )

    ts = (0.06, 0.12, 0.18, 0.24, 0.3)
    lab.extend(
        _label(
            *[(px + 4, py) for px, py in (bez(t) for t in ts)][0],
            l_label,
            anchor="start",
            more=[(px + 4, py) for px, py in (bez(t) for t in ts[1:])],
        )
    )
    lab.extend(
        _label(
            *[(px - 4, py) for px, py in (bez(1 - t) for t in ts)][0],
            r_label,
            anchor="end",
            more=[(px - 4, py) for px, py in (bez(1 - t) for t in ts[1:])],
        )
    )
    lab.extend(_label(bez(0.5)[0], bez(0.5)[1] - 4, e.cidr, "t-net", more=[(bez(0.5)[0], bez(0.5)[1] + 12)]))
    return line, lab


def _cross_edge(e: Edge, a: Node, b: Node, cls: str, title: str) -> tuple[str, list[_Label]]:
    """A link between two rows: a straight line, labels at spots along it.

    A router's legs fan out towards its switches, so the spots differ for a
    point-to-point link and a leg to a switch, and each label has fallbacks.
    """
    lab: list[_Label] = []
    upper, lower = (a, b) if a.y < b.y else (b, a)
    up_label, low_label = (e.label_a, e.label_b) if upper is a else (e.label_b, e.label_a)
    x1, y1 = _attach(upper, lower)
    x2, y2 = _attach(lower, upper)
    line = f'<line class="{cls}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}">{title}</line>'

    def at(t: float) -> tuple[float, float]:
        return x1 + (x2 - x1) * t, y1 + (y2 - y1) * t

    def spots(*ts: float) -> list[tuple[float, float]]:
        return [(px, py + 4) for px, py in (at(t) for t in ts)]

    if e.p2p:
        lab.extend(_label(*spots(0.5)[0], e.cidr, "t-net", more=spots(0.4, 0.6)))
        lab.extend(_label(*spots(0.22)[0], up_label, more=spots(0.3, 0.14, 0.36)))
    elif up_label:
        # a router's leg to a switch: its address near the switch, where legs fan out
        lab.extend(_label(*spots(0.7)[0], up_label, more=spots(0.56, 0.84, 0.44, 0.32, 0.2)))
    if low_label:
        first, *more = spots(0.8, 0.66, 0.9, 0.52, 0.4) if e.p2p else spots(0.74, 0.6, 0.86, 0.46, 0.34)
        lab.extend(_label(*first, low_label, more=more))
    return line, lab


def _node(n: Node) -> str:
    title = f"<title>{_e(n.name)} ({_e(n.role)})</title>"
    if n.stacked:
        gx = n.x - n.width / 2 + ICON_W / 2
        return (
            f'<g class="t-node t-{_e(n.role)}" data-node="{_e(n.name)}">{title}{_glyph(n.role, gx, n.y)}'
            f'<text x="{gx + ICON_W / 2 + 6:.1f}" y="{n.y:.1f}" class="t-name" text-anchor="start">{_e(n.name)}</text></g>'
        )
    return (
        f'<g class="t-node t-{_e(n.role)}" data-node="{_e(n.name)}">{title}{_glyph(n.role, n.x, n.y)}'
        f'<text x="{n.x:.1f}" y="{n.y + ICON_H / 2 + 13:.1f}" class="t-name">{_e(n.name)}</text>'
        f'<text x="{n.x:.1f}" y="{n.y + ICON_H / 2 + 25:.1f}" class="t-sub">{_e(n.sub)}</text></g>'
    )


def _legend(roles: list[str], y: float, x0: float) -> tuple[str, float]:
    parts, x = [], x0
    for role in roles:
        parts.append(
            f'<g transform="translate({x + ICON_W / 2:.1f} {y:.1f}) scale(0.6) translate({-x - ICON_W / 2:.1f} {-y:.1f})">'
            f"{_glyph(role, x + ICON_W / 2, y)}</g>"
        )
        parts.append(f'<text x="{x + ICON_W * 0.8 + 6:.1f}" y="{y + 4:.1f}" class="t-leg">{_e(role)}</text>')
        x += ICON_W * 0.8 + 22 + text_width(role, 10)
    return "".join(parts), x - x0


STYLE = """
.t-link{stroke:#7d8a96;stroke-width:2}
.t-p2p{stroke:#1f5fa8}
.t-down{stroke-dasharray:6 5;stroke:#b8bfc6}
.t-cut{stroke-dasharray:7 4;stroke:#c62828;stroke-width:3}
.t-link.t-hl{stroke:#e07b00;stroke-width:5}
.t-node.t-hl .t-name{fill:#b35f00}
.t-name{font:bold 12px sans-serif;fill:#1d2329;text-anchor:middle}
.t-sub{font:10px sans-serif;fill:#5d6770;text-anchor:middle}
.t-if{font:10px monospace;fill:#24313d;paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}
.t-net{font:bold 10px monospace;fill:#1f5fa8;text-anchor:middle;paint-order:stroke;stroke:#fff;stroke-width:4px}
.t-in{font:bold 8px sans-serif;text-anchor:middle}
.t-leg{font:11px sans-serif;fill:#444}
.t-title{font:bold 13px sans-serif;fill:#1d2329}
"""


def topology_svg(
    plan: Plan,
    *,
    leases: dict[str, str] | None = None,
    title: str | None = None,
    cut: dict[int, str] | None = None,
) -> str:
    """An SVG drawing of ``plan``'s network: one glyph per node by role, every link with
    its subnet and interface addresses.  ``leases`` (node -> address) fills in the
    addresses DHCP handed out; ``title`` is drawn at the top left; ``cut`` (link index
    -> a note such as "down at step 04") marks the links a run took down."""
    g, rows = layout(plan, leases)
    nodes = list(g.nodes.values())
    if not nodes:
        return '<svg xmlns="http://www.w3.org/2000/svg" class="topology" width="200" height="40"><text x="10" y="24">empty topology</text></svg>'
    min_x = min(n.x - n.width / 2 for n in nodes)
    max_x = max(n.x + n.width / 2 for n in nodes)
    # same-row arcs rise above the top row
    arcs = [
        e
        for e in g.edges
        if abs(g.nodes[e.a].y - g.nodes[e.b].y) < 1 and not (g.nodes[e.a].stacked or g.nodes[e.b].stacked)
    ]
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
    width = max(max_x - min_x + 2 * MARGIN, legend_w + 2 * MARGIN, text_width(title or "", 12) + 2 * MARGIN)
    height = bottom + 34 + 24
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="topology" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="topology {_e(plan.topology.name)}">',
        f"<style>{STYLE}</style>",
        '<rect width="100%" height="100%" fill="#fff"/>',
    ]
    if title:
        out.append(f'<text x="{MARGIN}" y="{MARGIN + 10}" class="t-title">{_e(title)}</text>')
    drawn = [_edge(g, e, rows, cut or {}) for e in g.edges]
    out.append('<g class="t-links">' + "".join(d[0] for d in drawn) + "</g>")
    out.append('<g class="t-nodes">' + "".join(_node(n) for n in sorted(nodes, key=lambda n: n.order)) + "</g>")
    labels = [lab for d in drawn for lab in d[1]]
    out.append('<g class="t-labels">' + _place_labels(labels, nodes) + "</g>")
    out.append(f'<g class="t-legend">{legend}</g>')
    out.append("</svg>")
    return "\n".join(out)
