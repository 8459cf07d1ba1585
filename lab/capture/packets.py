"""The packets of a few chosen flows, one pass over a pcap: numbers, times, directions.

The fast reader (``lab.capture.pcap``) keeps per flow only what every analysis needs;
the views that go packet by packet (the handshake timings, the layer view) need every
packet of the few flows the report shows.  ``flow_packets`` finds them in one pass,
decoding only the Ethernet, IPv4 and TCP/UDP headers, and stops keeping a flow's
packets at ``cap``.  Pure: a pcap in, plain values out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from lab.capture.flow import C2S, S2C, fmt_addr
from lab.capture.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, Parsed, iter_records

Key = tuple[str, str, int, str, int]  # (proto, client, client port, server, server port)
_PROTO = {6: "tcp", 17: "udp", 1: "icmp"}


@dataclass(frozen=True)
class Packet:
    number: int  # 1-based, as Wireshark counts
    ts: float
    direction: int  # C2S or S2C
    record: int  # offset of the record header in the file
    caplen: int
    flags: int  # TCP flags (0 for UDP and ICMP)
    payload: int  # TCP/UDP payload length (ICMP: after its 8-byte header)
    payload_at: int  # offset of the payload in the file


def _ip_offset(linktype: int, data: bytes, at: int, caplen: int) -> int | None:
    if linktype == LINKTYPE_RAW:
        return at
    if linktype != LINKTYPE_ETHERNET or caplen < 14:
        return None
    etype = struct.unpack_from("!H", data, at + 12)[0]
    if etype == 0x8100 and caplen >= 18:
        return at + 18 if struct.unpack_from("!H", data, at + 16)[0] == 0x0800 else None
    return at + 14 if etype == 0x0800 else None


def flow_packets(parsed: Parsed, keys: Iterable[Key], cap: int = 200) -> dict[Key, list[Packet]]:
    """Up to ``cap`` packets of each flow in ``keys`` (either direction), in capture order.

    TCP, UDP and ICMP echo flows (keyed as ``Flow.key`` has them: an echo's identifier
    stands for both ports).
    """
    want: dict[tuple[str, str, int, str, int], tuple[Key, int]] = {}
    for k in keys:
        p, c, cp, s, sp = k
        want[(p, c, cp, s, sp)] = (k, C2S)
        want[(p, s, sp, c, cp)] = (k, S2C)
    out: dict[Key, list[Packet]] = {k: [] for k, _ in want.values()}
    pf = parsed.pcap
    data = pf.data
    for num, rec, at, caplen in iter_records(pf):
        ip = _ip_offset(pf.linktype, data, at, caplen)
        if ip is None or ip + 20 > at + caplen or data[ip] >> 4 != 4:
            continue
        ihl = (data[ip] & 0x0F) * 4
        total = struct.unpack_from("!H", data, ip + 2)[0]
        proto = data[ip + 9]
        name = _PROTO.get(proto)
        l4 = ip + ihl
        if name is None or l4 + 8 > at + caplen:
            continue
        if name == "icmp":  # an echo request or reply: its identifier is both "ports", as in pcap.parse
            if data[l4] not in (0, 8):
                continue
            sport = dport = struct.unpack_from("!H", data, l4 + 4)[0]
        else:
            sport, dport = struct.unpack_from("!HH", data, l4)
        hit = want.get((name, fmt_addr(data[ip + 12 : ip + 16]), sport, fmt_addr(data[ip + 16 : ip + 20]), dport))
        if hit is None:
            continue
        key, direction = hit
        got = out[key]
        if len(got) >= cap:
            continue
        if name == "tcp":
            off = (data[l4 + 12] >> 4) * 4
            flags = data[l4 + 13]
        else:
            off, flags = 8, 0
        payload_at = l4 + off
        payload = max(0, min(ip + total, at + caplen) - payload_at)
        got.append(Packet(num, pf.ts_at(rec), direction, rec, caplen, flags, payload, payload_at))
    return out
