"""Packets layer by layer: the view a student reads a flow in, from Ethernet up to TLS.

For a few chosen flows (a ``ViewSpec`` each: a link and the flow keys to show), every
packet is one row with a part per layer, outermost first, as tcpdump saw it on that link:

- OSI 2, data link (TCP/IP: link): Ethernet source and destination MAC, EtherType
  (none on a TUN device: a tunnel carries IP packets, not frames);
- OSI 3, network (TCP/IP: internet): IPv4 source, destination, TTL, protocol, ID, length;
- OSI 4, transport (TCP/IP: transport): ports, then TCP flags, relative sequence and
  acknowledgement numbers, window (scaled when the SYNs said so), payload length; or UDP's
  length; or ICMP's type;
- OSI 5-7 (TCP/IP: application): what ``lab.capture.appmsgs`` reads in the TCP streams
  (SMTP lines, TLS records...), or DNS, DHCP and OpenVPN in a datagram.

scapy decodes the headers and DNS/DHCP (the project's design names it for packets); it
is slow (about 3.4k packets/s, docs/architecture.md, "Facts measured on this machine"),
so it sees only the packets of the flows shown, at most ``cap`` per flow, found in one
pass of the fast reader (``lab.capture.packets.flow_packets``).  Pure: parsed pcaps in,
JSON-ready dicts out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.capture.appmsgs import by_packet, stream_messages
from lab.capture.flow import C2S, Flow
from lab.capture.packets import Key, Packet, flow_packets
from lab.capture.pcap import Parsed
from lab.capture.udpapps import datagram_messages

CAP = 60  # packets shown per flow view
ETHERTYPES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "802.1Q VLAN"}
IP_PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6"}
TCP_FLAGS = (("S", "SYN"), ("F", "FIN"), ("R", "RST"), ("P", "PSH"), ("A", "ACK"), ("U", "URG"))
LINKTYPES = {1: "Ethernet", 101: "raw IP", 228: "raw IP", 113: "Linux cooked", 276: "Linux cooked"}


@dataclass(frozen=True)
class ViewSpec:
    """One flow view: which packets of which link, and how the report names it."""

    id: str
    link: str
    keys: tuple[Key, ...]  # each oriented client first, so its packets' direction reads c2s/s2c
    group: str = ""
    title: str = ""
    only: frozenset[int] | None = None  # keep just these packet numbers (a DHCP client's messages)
    hint: str = ""  # "openvpn": the datagrams are OpenVPN's
    step: int | None = None  # the scenario step (or wire check) that showed this flow
    notes: tuple[str, ...] = field(default=())


def _scapy() -> dict[str, Any]:
    """scapy's layers, imported once on first use (about a second: never for a report
    that has no view to build)."""
    if not _SCAPY:
        logging.getLogger("scapy").setLevel(logging.ERROR)
        from scapy.config import conf
        from scapy.layers import dhcp, dns, inet, l2  # noqa: F401  (binds DNS and DHCP to their ports)
        from scapy.packet import Raw

        _SCAPY.update(conf=conf, Ether=l2.Ether, IP=inet.IP, TCP=inet.TCP, UDP=inet.UDP, ICMP=inet.ICMP, Raw=Raw)
        _SCAPY["icmptypes"] = inet.icmptypes
    return _SCAPY


_SCAPY: dict[str, Any] = {}


def build(parsed: Mapping[str, Parsed], specs: Sequence[ViewSpec], cap: int = CAP) -> list[dict[str, Any]]:
    """Every view of ``specs`` whose link was captured, in the order given."""
    by_link: dict[str, list[ViewSpec]] = {}
    for sp in specs:
        if sp.link in parsed:
            by_link.setdefault(sp.link, []).append(sp)
    built: dict[str, dict[str, Any]] = {}
    for link, mine in by_link.items():
        p = parsed[link]
        capped = {k for sp in mine if sp.only is None for k in sp.keys}
        whole = {k for sp in mine if sp.only is not None for k in sp.keys}
        found = flow_packets(p, capped, cap=cap) if capped else {}
        if whole:
            found.update({k: v for k, v in flow_packets(p, whole, cap=1 << 20).items() if k not in found})
        for sp in mine:
            built[sp.id] = _view(p, sp, found, cap)
    return [built[sp.id] for sp in specs if sp.id in built]


def _view(p: Parsed, sp: ViewSpec, found: dict[Key, list[Packet]], cap: int) -> dict[str, Any]:
    seen: dict[int, Packet] = {}
    flows: list[Flow] = []
    for k in sp.keys:
        for pk in found.get(k, []):
            seen.setdefault(pk.number, pk)
        f = p.find(k)
        if f is not None:
            flows.append(f)
    packets = sorted(seen.values(), key=lambda x: x.number)
    if sp.only is not None:
        packets = [pk for pk in packets if pk.number in sp.only]
        total = len(packets)
    else:
        total = sum(f.packets for f in flows)
    shown = packets[:cap]
    app: dict[int, list[dict[str, Any]]] = {}
    tcp = [f for f in flows if f.proto == 6]
    for f in tcp:
        if f.kept:
            app.update(by_packet(f, stream_messages(f)))
    rows = _rows(p, shown, tcp[0] if len(tcp) == 1 else None, app, sp.hint)
    notes = list(sp.notes)
    if sp.hint == "openvpn" and _flip_openvpn(rows):
        notes.append("→ is the OpenVPN client (the end that sent the first client reset)")
    linktype = LINKTYPES.get(p.pcap.linktype, f"link type {p.pcap.linktype}")
    if linktype == "raw IP":
        notes.append(
            "captured on a TUN device: the tunnel carries IP packets, so there is no Ethernet header (no layer 2)"
        )
    if total > len(shown):
        notes.append(f"the first {len(shown)} of {total} packets; the pcap has them all")
    if tcp and not all(f.kept for f in tcp):
        notes.append("a port whose streams the analysis does not reassemble: the application column shows raw bytes")
    return {
        "id": sp.id,
        "group": sp.group,
        "title": sp.title,
        "link": p.link,
        "file": p.path,
        "flows": [f"{k[0]} {k[1]}:{k[2]} > {k[3]}:{k[4]}" for k in sp.keys],
        "step": sp.step,
        "linktype": linktype,
        "total": total,
        "shown": len(shown),
        "cut": total > len(shown),
        "notes": notes,
        "rows": rows,
    }


def _flip_openvpn(rows: list[dict[str, Any]]) -> bool:
    """Both ends of a tunnel use the same port, so the capture cannot tell the client:
    OpenVPN's own opcodes can.  Turn the rows around when the client reset came as s2c."""
    first = next((r for r in rows for m in r["l7"] if "HARD_RESET_CLIENT" in str(m.get("what"))), None)
    if first is None or first["dir"] == "c2s":
        return False
    for r in rows:
        r["dir"] = "c2s" if r["dir"] == "s2c" else "s2c"
    return True


def _rows(
    p: Parsed, packets: list[Packet], flow: Flow | None, app: dict[int, list[dict[str, Any]]], hint: str
) -> list[dict[str, Any]]:
    sc = _scapy()
    cls = sc["conf"].l2types.get(p.pcap.linktype) or sc["Raw"]
    data = p.pcap.data
    t0 = packets[0].ts if packets else 0.0
    isn: list[int | None] = [None, None]
    if flow is not None:
        isn = list(flow.isn)
    scale: list[int | None] = [None, None]
    out = []
    for pk in packets:
        raw = data[pk.record + 16 : pk.record + 16 + pk.caplen]
        row: dict[str, Any] = {
            "n": pk.number,
            "t_ms": round((pk.ts - t0) * 1000, 3),
            "dir": "c2s" if pk.direction == C2S else "s2c",
            "bytes": pk.caplen,
            "l2": None,
            "l3": None,
            "l4": None,
            "l7": [],
        }
        try:
            frame = cls(raw)
            _fill(sc, frame, row, pk, isn, scale)
        except Exception as exc:  # a packet scapy cannot take apart still gets its row
            row["l7"] = [{"proto": "?", "what": "", "text": f"could not decode: {type(exc).__name__}: {exc}"}]
            out.append(row)
            continue
        row["l7"] = _app(sc, frame, pk, app, hint, row)
        out.append(row)
    return out


def _fill(
    sc: dict[str, Any], frame: Any, row: dict[str, Any], pk: Packet, isn: list[int | None], scale: list[int | None]
) -> None:
    if frame.haslayer(sc["Ether"]):
        e = frame[sc["Ether"]]
        row["l2"] = {
            "src": e.src,
            "dst": e.dst,
            "type": ETHERTYPES.get(e.type, f"0x{e.type:04x}"),
            "ethertype": f"0x{e.type:04x}",
        }
    if not frame.haslayer(sc["IP"]):
        return
    ip = frame[sc["IP"]]
    flags = str(ip.flags) if ip.flags else ""
    row["l3"] = {
        "version": 4,
        "src": ip.src,
        "dst": ip.dst,
        "ttl": ip.ttl,
        "proto": IP_PROTOCOLS.get(ip.proto, str(ip.proto)),
        "id": ip.id,
        "len": ip.len,
        "flags": flags,
    }
    if ip.haslayer(sc["TCP"]):
        row["l4"] = _tcp(ip[sc["TCP"]], pk, isn, scale)
    elif ip.haslayer(sc["UDP"]):
        u = ip[sc["UDP"]]
        row["l4"] = {"proto": "UDP", "sport": u.sport, "dport": u.dport, "len": u.len, "payload": max(0, u.len - 8)}
    elif ip.haslayer(sc["ICMP"]):
        ic = ip[sc["ICMP"]]
        kind = sc["icmptypes"].get(ic.type, f"type {ic.type}")
        row["l4"] = {"proto": "ICMP", "type": kind, "id": ic.id, "seq": ic.seq, "payload": pk.payload}


def _tcp(t: Any, pk: Packet, isn: list[int | None], scale: list[int | None]) -> dict[str, Any]:
    d = pk.direction
    fl = str(t.flags)
    names = [name for letter, name in TCP_FLAGS if letter in fl]
    opts = {name: value for name, value in t.options if isinstance(name, str)}
    if "S" in fl:
        isn[d] = t.seq
        if "WScale" in opts:
            scale[d] = int(opts["WScale"])
    base, other = isn[d], isn[1 - d]
    out: dict[str, Any] = {
        "proto": "TCP",
        "sport": t.sport,
        "dport": t.dport,
        "flags": " ".join(names),
        "seq": (t.seq - base) & 0xFFFFFFFF if base is not None else t.seq,
        "relative": base is not None,
        "ack": ((t.ack - other) & 0xFFFFFFFF if other is not None else t.ack) if "A" in fl else None,
        "raw_seq": t.seq,
        "win": t.window,
        "payload": pk.payload,
    }
    if "S" not in fl and scale[0] is not None and scale[1] is not None:
        out["win_bytes"] = t.window << (scale[d] or 0)
    if "S" in fl:
        said = []
        if "MSS" in opts:
            said.append(f"MSS {opts['MSS']}")
        if "WScale" in opts:
            said.append(f"window scale {opts['WScale']}")
        if "SAckOK" in opts:
            said.append("SACK")
        if "Timestamp" in opts:
            said.append("timestamps")
        out["options"] = ", ".join(said)
    return out


def _app(
    sc: dict[str, Any], frame: Any, pk: Packet, app: dict[int, list[dict[str, Any]]], hint: str, row: dict[str, Any]
) -> list[dict[str, Any]]:
    l4 = row.get("l4") or {}
    if l4.get("proto") == "TCP":
        if pk.number in app:
            return app[pk.number]
        if pk.payload == 0:
            return []
        if app:  # the stream was read, yet no byte of it came from this packet
            return [
                {
                    "proto": "TCP",
                    "what": "",
                    "text": f"{pk.payload} bytes already sent (a retransmission), or past the reassembled part",
                }
            ]
        return [_raw_text(frame, sc, pk.payload)]
    if l4.get("proto") == "UDP":
        return datagram_messages(frame, hint)
    return []


def _raw_text(frame: Any, sc: dict[str, Any], n: int) -> dict[str, Any]:
    payload = bytes(frame[sc["Raw"]].load) if frame.haslayer(sc["Raw"]) else b""
    head = payload[:80]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        text = head.decode("ascii").splitlines()[0] if head.strip() else ""
        return {"proto": "data", "what": "", "text": f"{n} bytes: {text}"}
    return {"proto": "data", "what": "", "text": f"{n} bytes"}
