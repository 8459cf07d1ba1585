"""DHCP and DNS as seen on the wire, from the UDP datagrams ``pcap.parse`` kept.

DHCP is decoded here (BOOTP's fixed header and a handful of options); DNS with
dnspython, which the lab already uses for its resolver client.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from lab.capture.pcap import Datagram, Parsed, parse

DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}
DHCP_MAGIC = b"\x63\x82\x53\x63"


def _parsed(pcap: str | Path | Parsed) -> Parsed:
    return pcap if isinstance(pcap, Parsed) else parse(pcap)


def _ip(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw))


def parse_dhcp(payload: bytes) -> dict[str, Any] | None:
    """One DHCP message, or None if the payload is not one."""
    if len(payload) < 240 or payload[236:240] != DHCP_MAGIC:
        return None
    hlen = min(payload[2], 16)
    msg: dict[str, Any] = {
        "op": "request" if payload[0] == 1 else "reply",
        "xid": f"0x{int.from_bytes(payload[4:8], 'big'):08x}",
        "chaddr": payload[28 : 28 + hlen].hex(":"),
        "ciaddr": _ip(payload[12:16]),
        "yiaddr": _ip(payload[16:20]),
    }
    off = 240
    while off < len(payload):
        code = payload[off]
        if code == 255:
            break
        if code == 0:
            off += 1
            continue
        if off + 2 > len(payload):
            break
        ln = payload[off + 1]
        val = payload[off + 2 : off + 2 + ln]
        off += 2 + ln
        if code == 53 and val:
            msg["type"] = DHCP_TYPES.get(val[0], str(val[0]))
        elif code == 50 and ln == 4:
            msg["requested_ip"] = _ip(val)
        elif code == 54 and ln == 4:
            msg["server_id"] = _ip(val)
        elif code == 51 and ln == 4:
            msg["lease_time"] = int.from_bytes(val, "big")
        elif code == 1 and ln == 4:
            msg["subnet_mask"] = _ip(val)
        elif code == 3 and ln >= 4:
            msg["router"] = [_ip(val[i : i + 4]) for i in range(0, ln - ln % 4, 4)]
        elif code == 6 and ln >= 4:
            msg["dns"] = [_ip(val[i : i + 4]) for i in range(0, ln - ln % 4, 4)]
        elif code == 12:
            msg["hostname"] = val.decode(errors="replace")
        elif code == 15:
            msg["domain"] = val.decode(errors="replace").rstrip("\0")
    return msg


def dhcp(pcap: str | Path | Parsed) -> dict[str, Any]:
    """DHCP messages grouped per client MAC, with whether a full DORA happened.

    ``{"clients": {mac: {"messages": [...], "sequence": [...], "dora": bool,
    "address": ip, "server": ip}}, "messages": N}``
    """
    p = _parsed(pcap)
    clients: dict[str, dict[str, Any]] = {}
    n = 0
    for d in p.datagrams:
        if not ({d.sport, d.dport} & {67, 68}):
            continue
        msg = parse_dhcp(d.payload)
        if msg is None or "type" not in msg:
            continue
        n += 1
        entry = {"packet": d.packet, "ts": round(d.ts, 6), "src": d.src, "dst": d.dst, **msg}
        c = clients.setdefault(msg["chaddr"], {"messages": []})
        c["messages"].append(entry)
    for c in clients.values():
        seq = [m["type"] for m in c["messages"]]
        c["sequence"] = seq
        c["dora"] = _subsequence(["DISCOVER", "OFFER", "REQUEST", "ACK"], seq)
        acks = [m for m in c["messages"] if m["type"] == "ACK"]
        c["address"] = acks[-1]["yiaddr"] if acks else None
        c["server"] = acks[-1].get("server_id") if acks else None
    return {"clients": clients, "messages": n}


def _subsequence(want: list[str], seq: list[str]) -> bool:
    it = iter(seq)
    return all(any(x == w for x in it) for w in want)


def _dns_message(d: Datagram) -> Any:
    import dns.exception
    import dns.message

    try:
        return dns.message.from_wire(d.payload, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError, IndexError):
        return None


def dns(pcap: str | Path | Parsed) -> list[dict[str, Any]]:
    """DNS over UDP as transactions: query, its response (if any), rcode and answers.

    ``[{"client", "server", "id", "qname", "qtype", "query_packet", "response_packet",
    "rcode", "answers": ["10 mail.projet.dz.", ...], "latency_ms"}]``
    """
    import dns.flags
    import dns.rcode
    import dns.rdatatype

    p = _parsed(pcap)
    pending: dict[tuple[str, int, str, int], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    t: dict[str, Any] | None
    for d in p.datagrams:
        if 53 not in (d.sport, d.dport):
            continue
        m = _dns_message(d)
        if m is None:
            continue
        q = m.question[0] if m.question else None
        qname = q.name.to_text() if q is not None else None
        qtype = dns.rdatatype.to_text(q.rdtype) if q is not None else None
        if not m.flags & dns.flags.QR:
            t = {
                "client": d.src,
                "client_port": d.sport,
                "server": d.dst,
                "id": m.id,
                "qname": qname,
                "qtype": qtype,
                "query_packet": d.packet,
                "ts": round(d.ts, 6),
                "response_packet": None,
                "rcode": None,
                "answers": [],
                "latency_ms": None,
            }
            pending[(d.src, d.sport, qname or "", m.id)] = t
            out.append(t)
            continue
        t = pending.pop((d.dst, d.dport, qname or "", m.id), None)
        if t is None:  # a response whose query was not captured
            t = {
                "client": d.dst,
                "client_port": d.dport,
                "server": d.src,
                "id": m.id,
                "qname": qname,
                "qtype": qtype,
                "query_packet": None,
                "ts": round(d.ts, 6),
            }
            out.append(t)
        else:
            t["latency_ms"] = round((d.ts - t["ts"]) * 1000, 3)
        t["response_packet"] = d.packet
        t["rcode"] = dns.rcode.to_text(m.rcode())
        t["authoritative"] = bool(m.flags & dns.flags.AA)
        t["answers"] = [r.to_text() for rrset in m.answer for r in rrset]
        t["answer_types"] = sorted({dns.rdatatype.to_text(rrset.rdtype) for rrset in m.answer})
    return out
