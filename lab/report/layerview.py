"""The layer view of report.html: each shown flow packet by packet, one column group per layer.

The views are computed once, when the run's captures are analysed, and kept in
``layers.json`` beside summary.json (``summary.wire.layers`` is their index); this module
only turns them into cells.  Each layer's columns carry its OSI number and its TCP/IP
name, so a student reads a row left to right from the outside (the Ethernet frame) in
(the application's bytes).  Plain values only; the template lays them out.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LIMIT = 16 * 1024 * 1024  # bytes of layers.json read (the run caps its views well below)
#: the layers, outermost first: (css class, OSI, TCP/IP model, protocols, the columns);
#: the application's messages are too long for a column: they get a row under their packet
LAYERS = [
    ("l2", "2 · data link", "link", "Ethernet", ["source MAC", "destination MAC", "EtherType"]),
    ("l3", "3 · network", "internet", "IPv4", ["source", "destination", "TTL", "protocol", "ID", "length"]),
    (
        "l4",
        "4 · transport",
        "transport",
        "TCP, UDP",
        ["source port", "destination port", "flags", "seq", "ack", "window", "payload"],
    ),
    (
        "l7",
        "5–7 · session, presentation, application",
        "application",
        "TLS, SMTP, IMAP, POP3, HTTP, DNS, DHCP",
        [],  # no columns: a row of its own under its packet, as wide as the table
    ),
]
GROUPS = {
    "vpn": (
        "VPN tunnel: outside and inside",
        "On the outside links only UDP datagrams between the two tunnel ends; inside the tunnel the same mail connection as on a LAN, but with no Ethernet header.",
    ),
    "proxy": (
        "Proxy: two connections",
        "The client talks TCP to the proxy; the proxy opens its own TCP connection to the web server. Compare the addresses and ports of the two.",
    ),
    "path": (
        "A connection, link by link",
        "The same packets on each link they crossed: a router writes a new Ethernet header (other MACs) and lowers the TTL by one; the layers above stay the same (unless NAT rewrites the addresses).",
    ),
    "mail": (
        "Mail connections",
        "SMTP, IMAP and POP3 in clear until STARTTLS (or from the first byte with implicit TLS), then TLS records whose content no one on the path can read.",
    ),
    "web": (
        "Web connections",
        "HTTP in clear, HTTPS as TLS records; through a proxy, a CONNECT request in clear and then TLS.",
    ),
    "dns": ("DNS exchanges", "A query and its response in one UDP datagram each, port 53."),
    "dhcp": (
        "DHCP exchanges",
        "DISCOVER, OFFER, REQUEST, ACK: the client has no address yet, so it sends from 0.0.0.0 to the broadcast address (and the broadcast MAC).",
    ),
}


def _num(v: Any) -> str:
    return "" if v is None else str(v)


def _tcp_cells(l4: dict[str, Any]) -> tuple[list[str], str]:
    said = []
    if l4.get("options"):
        said.append(f"SYN options: {l4['options']}")
    if l4.get("win_bytes") is not None:
        said.append(f"window {l4['win']} × the scale both SYNs agreed on = {l4['win_bytes']} bytes")
    if not l4.get("relative", True):
        said.append("absolute sequence numbers: the SYN was not captured")
    cells = [
        _num(l4.get("sport")),
        _num(l4.get("dport")),
        str(l4.get("flags", "")) + (" +options" if l4.get("options") else ""),
        _num(l4.get("seq")),
        _num(l4.get("ack")),
        _num(l4.get("win")),
        _num(l4.get("payload")),
    ]
    return cells, "; ".join(said)


def _row(r: dict[str, Any]) -> dict[str, Any]:
    """One packet's cells, layer by layer (``None`` for a layer the packet lacks)."""
    l2, l3, l4 = r.get("l2"), r.get("l3"), r.get("l4") or {}
    c2s = r.get("dir") == "c2s"
    out: dict[str, Any] = {
        "n": r.get("n"),
        "t": f"{float(r.get('t_ms') or 0):.3f}",
        "dir": "→" if c2s else "←",
        "dir_title": "client to server" if c2s else "server to client",
        "cls": "c2s" if c2s else "s2c",
        "l2": [l2.get("src", ""), l2.get("dst", ""), l2.get("type", "")] if l2 else None,
        "l2_title": f"EtherType {l2.get('ethertype', '')}" if l2 else "",
        "l3": None,
        "l3_title": f"IP flags {l3.get('flags')}" if l3 and l3.get("flags") else "",
        "l4": None,
        "l4_title": "",
        "l7": [
            {
                "proto": str(m.get("proto", "")),
                "text": str(m.get("text", "")),
                "cls": "p-" + str(m.get("proto", "")).lower(),
            }
            for m in r.get("l7") or []
            if isinstance(m, dict)
        ],
    }
    if l3:
        keys = ("src", "dst", "ttl", "proto", "id", "len")
        out["l3"] = [_num(l3.get(k)) for k in keys]
    if l4.get("proto") == "TCP":
        out["l4"], out["l4_title"] = _tcp_cells(l4)
    elif l4.get("proto") == "UDP":
        out["l4"] = [_num(l4.get("sport")), _num(l4.get("dport")), "", "", "", "", _num(l4.get("payload"))]
    elif l4.get("proto") == "ICMP":
        what = f"ICMP {l4.get('type', '')} id {l4.get('id')} seq {l4.get('seq')}"
        out["l4"] = ["", "", what, "", "", "", _num(l4.get("payload"))]
        out["l4_title"] = "ICMP is part of layer 3 (carried in IP); it has no ports"
    return out


def _view(v: dict[str, Any]) -> dict[str, Any]:
    rows = [_row(r) for r in v.get("rows") or [] if isinstance(r, dict)]
    return {
        "id": str(v.get("id", "")),
        "title": str(v.get("title", "")),
        "link": str(v.get("link", "")),
        "file": str(v.get("file", "")),
        "step": f"{int(v['step']):02d}" if isinstance(v.get("step"), int) else "",
        "notes": [str(n) for n in v.get("notes") or []],
        "summary": f"{v.get('shown', len(rows))} of {v.get('total', len(rows))} packets"
        if v.get("cut")
        else f"{len(rows)} packets",
        "cut": bool(v.get("cut")),
        "rows": rows,
        "no_l2": bool(rows) and all(r["l2"] is None for r in rows),
    }


def load(summary: dict[str, Any], report_dir: Path) -> dict[str, Any]:
    """The layer section: groups of views, the layers' headings, and anchors by flow."""
    index = (summary.get("wire") or {}).get("layers") if isinstance(summary.get("wire"), dict) else None
    empty: dict[str, Any] = {
        "groups": [],
        "layers": [],
        "anchors": {},
        "by_flow": {},
        "by_step": {},
        "left_out": [],
        "cap": 0,
    }
    if not isinstance(index, dict):
        return empty
    path = Path(report_dir) / str(index.get("file") or "layers.json")
    try:
        if path.stat().st_size > LIMIT:
            raise ValueError(f"{path.stat().st_size} bytes, more than {LIMIT}")
        views = json.loads(path.read_text())["views"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("layer views not shown: %s: %s", path, exc)
        return {**empty, "error": f"{path.name}: {exc}"}
    shown = [_view(v) for v in views if isinstance(v, dict)]
    groups = []
    for name, (title, intro) in GROUPS.items():
        mine = [sv for sv, v in zip(shown, views) if v.get("group") == name]
        if mine:
            groups.append({"name": name, "title": title, "intro": intro, "views": mine})
    anchors: dict[str, str] = {}
    by_flow: dict[str, str] = {}
    by_step: dict[str, list[dict[str, str]]] = {}
    for sv, v in zip(shown, views):
        for f in v.get("flows") or []:
            anchors.setdefault(f"{v.get('link')}|{f}", sv["id"])
            by_flow.setdefault(str(f), sv["id"])
        if sv["step"]:
            by_step.setdefault(sv["step"], []).append({"id": sv["id"], "title": sv["title"]})
    left = index.get("left_out") or {}
    return {
        "groups": groups,
        "layers": [{"cls": c, "osi": o, "tcpip": t, "protocols": p, "columns": cols} for c, o, t, p, cols in LAYERS],
        "anchors": anchors,
        "by_flow": by_flow,
        "by_step": by_step,
        "left_out": [f"{n} more {GROUPS[g][0].lower()}" for g, n in left.items() if g in GROUPS and n],
        "cap": index.get("cap") or 0,
    }


def anchor(layers: dict[str, Any], flow: str, link: str = "") -> str:
    """The id of the view of ``flow`` (on ``link`` if there is one there), or ""."""
    return layers["anchors"].get(f"{link}|{flow}") or layers["by_flow"].get(flow, "")
