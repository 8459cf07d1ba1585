"""Which flows the report shows layer by layer, and the views built for them.

Only the flows the report already shows get a layer view (``lab.capture.layers``), each
on one link: the proxy's two connections and the VPN tunnel's outer and inner flows
(from their wire checks), the same connection on each link of a wire path check (the
MACs change at each router, the TTL drops), every mail and web connection of the mail
trace and the handshake table (on its client's link), and the first DNS and DHCP
exchanges.  A flow shown by two of these gets one view, in the first group that names it.
The views go to ``layers.json`` beside summary.json; the summary keeps only their index.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from lab.capture.analyse import flow_key
from lab.capture.layers import CAP, ViewSpec, build
from lab.capture.packets import Key
from lab.model.plan import Plan
from lab.report.results import RunResult

log = logging.getLogger(__name__)

FILE = "layers.json"
#: views per group, in the order a flow is claimed: a flow named twice stays in the first
LIMITS = {"vpn": 8, "proxy": 8, "path": 8, "mail": 16, "web": 8, "dns": 8, "dhcp": 8}
PORT_NAMES = {
    25: "SMTP (relay)",
    587: "SMTP submission",
    465: "SMTP submission over TLS",
    143: "IMAP",
    993: "IMAP over TLS",
    110: "POP3",
    995: "POP3 over TLS",
    80: "HTTP",
    443: "HTTPS",
    3128: "HTTP proxy",
    53: "DNS",
}


class _Picker:
    """Collects view specs group by group, one per (link, flows), within each group's limit."""

    def __init__(self, plan: Plan, result: RunResult, links: list[dict[str, Any]]):
        self.specs: list[ViewSpec] = []
        self.seen: set[tuple[str, tuple[Key, ...]]] = set()
        self.left_out: dict[str, int] = {}
        self.ends = {lk["link"]: set(lk.get("ends") or []) for lk in links}
        self.subnet = {lk["link"]: str(lk.get("subnet") or "") for lk in links}
        self.zones = {str(r.get("zone", "")).rstrip(".") for r in result.dns_records if r.get("zone")}
        self.names: dict[str, str] = {}
        for n in plan.nodes.values():
            for i in n.interfaces:
                if i.ip:
                    self.names.setdefault(i.ip, n.name)
        for v in plan.vpns.values():  # an address inside a tunnel is its end's
            for e in v.ends:
                self.names.setdefault(e.address, e.node)
        for lease in result.leases:
            if lease.get("address"):
                self.names.setdefault(str(lease["address"]), str(lease.get("node", "")))

    def who(self, ip: str) -> str:
        return self.names.get(ip, ip)

    def near(self, ip: str, links: list[str]) -> str:
        """Of ``links``, the one at the node that owns ``ip`` (its own link), else the first."""
        node = self.names.get(ip)
        return next((lk for lk in links if node and node in self.ends.get(lk, set())), links[0])

    def add(self, group: str, link: str, keys: tuple[Key, ...], title: str, **kw: Any) -> None:
        if (link, keys) in self.seen or any((link, (k,)) in self.seen for k in keys):
            return
        if sum(1 for s in self.specs if s.group == group) >= LIMITS[group]:
            self.left_out[group] = self.left_out.get(group, 0) + 1
            return
        self.seen.add((link, keys))
        self.specs.append(ViewSpec(f"ly-{len(self.specs) + 1:02d}", link, keys, group, title, **kw))

    def flow_title(self, k: Key, link: str) -> str:
        p, c, cp, s, sp = k
        what = "ICMP echo (ping)" if p == "icmp" else PORT_NAMES.get(sp, f"{p}/{sp}")
        return f"{what}: {self.who(c)} → {self.who(s)} ({p} {c}:{cp} > {s}:{sp}) on {link}"


def _steps(result: RunResult, pick: _Picker) -> None:
    """The flows of the wire checks: tunnels, proxies, paths."""
    for s in result.steps:
        d = s.details or {}
        if s.kind != "wire":
            continue
        if isinstance(d.get("tunnel"), list):
            _tunnel(s.index, d, pick)
        if isinstance(d.get("client_to_proxy"), list):
            _proxy(s.index, d, pick)
        if isinstance(d.get("links"), list) and d.get("flow"):
            _path(s.index, d["links"], pick)


def _path(index: int, links: list[dict[str, Any]], pick: _Picker) -> None:
    """A path's connection once per subnet it crossed (two captures of one subnet see the
    same frames): new MACs on each, one TTL less behind each router, NAT's new addresses."""
    note = "the same connection on each subnet it crossed: new MACs on every one, one TTL less per router"
    subnets: set[str] = set()
    for e in links:
        sub = pick.subnet.get(str(e.get("link")), "") or str(e.get("link"))
        if e.get("c2s_packets", 0) <= 0 or sub in subnets:
            continue
        subnets.add(sub)
        k = flow_key(e["flow"])
        ttl = max(e.get("ttl_c2s") or [0]) or "?"
        title = f"{pick.flow_title(k, e['link'])}, subnet {sub}, TTL {ttl}"
        pick.add("path", e["link"], (k,), title, step=index, notes=(note,))


def _first_links(entries: list[dict[str, Any]], pick: _Picker) -> list[tuple[Key, str]]:
    """Each flow of a check's list once, on the link nearest its client."""
    links: dict[str, list[str]] = {}
    for e in entries:
        links.setdefault(str(e["flow"]), []).append(str(e["link"]))
    out = []
    for name, lks in links.items():
        k = flow_key(name)
        out.append((k, pick.near(k[1], lks)))
    return out


def _tunnel(index: int, d: dict[str, Any], pick: _Picker) -> None:
    outer = (
        "the tunnel itself: each inner packet travels encrypted in one of these datagrams (no inner address, no SMTP)"
    )
    for k, link in _first_links(d["tunnel"], pick)[:2]:
        pick.add(
            "vpn",
            link,
            (k,),
            f"the tunnel: {pick.flow_title(k, link)}",
            hint="openvpn",
            step=index,
            notes=(outer,),
        )
    inner = "inside the tunnel: the packets as the TUN device sees them, before OpenVPN encrypts them"
    flows = _first_links(d.get("inside") or [], pick)
    flows.sort(key=lambda x: x[0][0] != "tcp")  # a mail connection first: it shows the most layers
    for k, link in flows[:4]:
        pick.add(
            "vpn",
            link,
            (k,),
            f"inside: {pick.flow_title(k, link)}",
            step=index,
            notes=(inner,),
        )


def _proxy(index: int, d: dict[str, Any], pick: _Picker) -> None:
    for side, note in (
        ("client_to_proxy", "the client's connection ends at the proxy: it asks the proxy, not the server"),
        (
            "proxy_to_server",
            "the proxy's own connection to the server: a second TCP connection, from the proxy's address",
        ),
    ):
        for k, link in _first_links(d.get(side) or [], pick)[:4]:
            pick.add("proxy", link, (k,), pick.flow_title(k, link), step=index, notes=(note,))


def _mail(result: RunResult, pick: _Picker) -> None:
    """Each mail and web connection on its client's link: first one per client, server
    and port (ten refused relay attempts are one lesson), then the repeats, room allowing."""
    firsts: list[tuple[Key, str, Any]] = []
    repeats: list[tuple[Key, str, Any]] = []
    seen: set[tuple[str, str, int]] = set()
    for f in result.wire.get("mail_flows") or []:
        if not f.get("path"):
            continue
        link = f["path"][0]["link"]
        k = flow_key(f["path"][0]["flow"])
        who = (pick.who(k[1]), pick.who(k[3]), k[4])
        (repeats if who in seen else firsts).append((k, link, f.get("protocol")))
        seen.add(who)
    for k, link, protocol in firsts + repeats:
        group = "mail" if protocol in ("smtp", "imap", "pop3") else "web"
        pick.add(group, link, (k,), pick.flow_title(k, link))


def _dns(analysis: dict[str, Any], pick: _Picker) -> None:
    where: dict[Key, list[str]] = {}
    first: dict[Key, dict[str, Any]] = {}
    for link, v in analysis["links"].items():
        for t in v.get("dns") or []:
            if t.get("client_port") is None:
                continue
            k: Key = ("udp", str(t["client"]), int(t["client_port"]), str(t["server"]), 53)
            where.setdefault(k, []).append(link)
            if k not in first or (t.get("ts") or 0) < (first[k].get("ts") or 0):
                first[k] = t

    def rank(k: Key) -> tuple[int, int, float]:
        # the MX lookups of the mail trace first, then names of the lab's own zones, then the rest
        t = first[k]
        name = str(t.get("qname") or "").rstrip(".")
        mine = any(name == z or name.endswith("." + z) for z in pick.zones)
        return (t.get("qtype") != "MX", not mine, float(t.get("ts") or 0))

    asked: set[tuple[str, str, str]] = set()
    for k in sorted(where, key=rank):
        t = first[k]
        question = (pick.who(k[1]), str(t.get("qname")), str(t.get("qtype")))
        if question in asked:  # the same question again (another socket, a retry): once is enough
            continue
        asked.add(question)
        link = pick.near(k[1], where[k])
        title = f"DNS {t.get('qname')} {t.get('qtype')}: {pick.who(k[1])} asks {pick.who(k[3])} on {link}"
        pick.add("dns", link, (k,), title)


def _dhcp(analysis: dict[str, Any], macs: dict[str, str], pick: _Picker) -> None:
    node_of = {m.lower(): n for n, m in macs.items() if m}
    where: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for link, v in analysis["links"].items():
        for mac, c in ((v.get("dhcp") or {}).get("clients") or {}).items():
            where.setdefault(mac.lower(), []).append((link, c))
    for mac, seen in where.items():
        node = node_of.get(mac, "")
        link, c = next(((lk, c) for lk, c in seen if node and node in pick.ends.get(lk, set())), seen[0])
        keys: list[Key] = []
        for m in c.get("messages") or []:
            if m.get("op") == "request":
                k: Key = ("udp", str(m["src"]), 68, str(m["dst"]), 67)
            else:
                k = ("udp", str(m["dst"]), 68, str(m["src"]), 67)
            if k not in keys:
                keys.append(k)
        packets = frozenset(int(m["packet"]) for m in c.get("messages") or [])
        title = f"DHCP {node or mac}: {', '.join(c.get('sequence') or [])} on {link}"
        pick.add("dhcp", link, tuple(keys), title, only=packets)


def choose(
    result: RunResult, analysis: dict[str, Any], plan: Plan, links: list[dict[str, Any]], macs: dict[str, str]
) -> tuple[list[ViewSpec], dict[str, int]]:
    """The views of this run, in the order the report lists them, and what each group left out."""
    pick = _Picker(plan, result, links)
    _steps(result, pick)
    _mail(result, pick)
    _dns(analysis, pick)
    _dhcp(analysis, macs, pick)
    return pick.specs, pick.left_out


def write(
    result: RunResult,
    analysis: dict[str, Any],
    parsed: dict[str, Any],
    plan: Plan,
    links: list[dict[str, Any]],
    macs: dict[str, str],
    report_dir: Path,
) -> None:
    """Build the views, write layers.json, put their index into ``result.wire["layers"]``."""
    t0 = time.monotonic()
    specs, left_out = choose(result, analysis, plan, links, macs)
    views = build(parsed, specs)
    base = Path(report_dir)
    for v in views:
        v["file"] = str(Path(v["file"]).relative_to(base)) if Path(v["file"]).is_relative_to(base) else v["file"]
    (base / FILE).write_text(json.dumps({"schema": "mail-lab/layers/v1", "cap": CAP, "views": views}, default=str))
    index_keys = ("id", "group", "title", "link", "flows", "step", "total", "shown", "cut")
    result.wire["layers"] = {
        "file": FILE,
        "cap": CAP,
        "views": [{k: v[k] for k in index_keys} for v in views],
        "left_out": left_out,
        "seconds": round(time.monotonic() - t0, 3),
    }
