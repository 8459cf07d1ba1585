"""A fast, pure-Python pcap reader that builds TCP/UDP/ICMP flows in one pass.

Why hand-written: scapy decodes about 3.4k packets/s and dpkt 65k/s on this machine
(docs/architecture.md, "Facts measured on this machine"); a whole run's captures must be analysed in seconds.  This
reader unpacks the pcap record header and, for the common case (Ethernet, IPv4 without
options, not a fragment), the Ethernet+IPv4+TCP/UDP headers with a single
``struct.unpack_from`` straight from the file's bytes.  Everything else (802.1Q,
IPv6, IP options, ICMP, fragments, other link types) takes a slower general path.
Payload is never copied during the pass: a kept TCP segment is recorded as an
offset into the file buffer and only the streams that matter are assembled after it.

Packet numbers are 1-based, like Wireshark's frame numbers, so a finding can be
opened with ``tshark -r FILE -Y frame.number==N``.
"""

from __future__ import annotations

import contextlib
import gc
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.capture.flow import (
    ACK,
    C2S,
    PROTO_NAMES,
    S2C,
    S_BY,
    S_FL,
    S_IPID,
    S_ISN,
    S_KB,
    S_LAST,
    S_PK,
    S_SEGS,
    S_TTL,
    STREAM_LIMIT,
    SYN,
    Datagram,
    Flow,
    Stream,
    fmt_addr,
)
from lab.capture.pcapfile import _REC, PcapFile

__all__ = [
    "C2S",
    "MAIL_PORTS",
    "S2C",
    "UDP_KEEP_PORTS",
    "Datagram",
    "Flow",
    "Parsed",
    "PcapError",
    "PcapFile",
    "Stream",
    "flows",
    "iter_records",
    "open_pcap",
    "parse",
    "paused_gc",
]

#: TCP ports whose streams are kept (reassembled): mail, HTTPS, HTTP, a proxy's, SSH,
#: CalDAV (Radicale) and the lab's ACME CA (Pebble)
MAIL_PORTS = frozenset({25, 465, 587, 110, 995, 143, 993, 443, 80, 3128, 22, 5232, 14000})
UDP_KEEP_PORTS = frozenset({53, 67, 68})  # datagrams kept for dns() and dhcp()

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276

# Ethernet type, IPv4 (ver/ihl, total length, id, frag, ttl, proto, src, dst), then the
# first 14 bytes of TCP (ports, seq, ack, data offset, flags) or of UDP + payload
_FAST = struct.Struct("!12xHBxHHHBB2x4s4sHHIIBB")
_FAST_LEN = _FAST.size  # 48
_IP4 = struct.Struct("!BxHHHBB2x4s4s")
_IP6 = struct.Struct("!4xHBB16s16s")
_TCP = struct.Struct("!HHIIBB")
_UDP = struct.Struct("!HHH")
_ICMP = struct.Struct("!BBxxHH")
_ECHO = {1: (8, 0), 58: (128, 129)}  # ICMP and ICMPv6 echo request and reply types


class PcapError(ValueError):
    """The file is not a pcap this reader understands."""


def open_pcap(path: str | Path) -> PcapFile:
    data = Path(path).read_bytes()
    if len(data) < 24:
        raise PcapError(f"{path}: {len(data)} bytes, shorter than a pcap header")
    magic = data[:4]
    table = {
        b"\xd4\xc3\xb2\xa1": (True, False),
        b"\xa1\xb2\xc3\xd4": (False, False),
        b"\x4d\x3c\xb2\xa1": (True, True),
        b"\xa1\xb2\x3c\x4d": (False, True),
    }
    if magic == b"\x0a\x0d\x0d\x0a":
        raise PcapError(
            f"{path}: pcapng is not supported; tcpdump -w writes classic pcap (convert with: editcap -F pcap IN OUT)"
        )
    if magic not in table:
        raise PcapError(f"{path}: not a pcap file (magic {magic.hex()})")
    le, nano = table[magic]
    _, _, _, _, snaplen, linktype = struct.unpack_from("<HHiIII" if le else ">HHiIII", data, 4)
    return PcapFile(str(path), data, le, nano, linktype & 0x0FFFFFFF, snaplen)


def iter_records(pf: PcapFile) -> Iterator[tuple[int, int, int, int]]:
    """(packet number, record offset, data offset, captured length) for every record."""
    rec = _REC[pf.little_endian]
    data, off, end, num = pf.data, 24, len(pf.data), 0
    while off + 16 <= end:
        _, _, caplen, _ = rec.unpack_from(data, off)
        if off + 16 + caplen > end:
            break
        num += 1
        yield num, off, off + 16, caplen
        off += 16 + caplen


@dataclass
class Parsed:
    """The result of one pass over one pcap."""

    path: str
    link: str
    pcap: PcapFile
    flows: list[Flow]
    datagrams: list[Datagram]
    packets: int
    counts: dict[str, int]  # by kind: tcp, udp, icmp, arp, other, ...
    truncated: bool  # the file ended inside a record (a capture still running, or killed)
    first_ts: float | None
    last_ts: float | None

    def find(self, key: Iterable[Any]) -> Flow | None:
        """The flow with this key (either direction), as given by ``Flow.key``."""
        k = tuple(key)
        for f in self.flows:
            fk = f.key
            if fk == k or (fk[0], fk[3], fk[4], fk[1], fk[2]) == k:
                return f
        return None


def _new_flow(
    table: dict[Any, Any],
    flows: list[Flow],
    proto: int,
    src: bytes,
    sp: int,
    dst: bytes,
    dp: int,
    flags: int,
    off: int,
    num: int,
    keep_ports: frozenset[int],
) -> tuple[Flow, list[Any]]:
    """Create a flow on its first packet, decide who is the client, return the sender's side."""
    if proto == 6 and flags & SYN:
        swap = bool(flags & ACK)  # a SYN-ACK comes from the server
    elif proto == 1 or proto == 58:
        swap = sp in (0, 129)  # ICMP echo reply (type in sp): the sender is the server
    else:
        swap = _is_service(sp) and not _is_service(dp)
    if swap:
        f = Flow(proto, dst, dp, src, sp, off, num, proto == 6 and sp in keep_ports)
    else:
        f = Flow(proto, src, sp, dst, dp, off, num, proto == 6 and dp in keep_ports)
    if proto == 1 or proto == 58:
        f.cport = f.sport = dp  # ICMP: the echo identifier is the "port"
    c, s = f.sides
    table[(proto, f.client, f.cport, f.server, f.sport)] = (f, c)
    table[(proto, f.server, f.sport, f.client, f.cport)] = (f, s)
    flows.append(f)
    return f, (s if swap else c)


def _is_service(port: int) -> bool:
    return port < 1024 or port in (3306, 5432, 8080, 8443, 5353)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects.

    A 1M-packet pcap makes ~50k flows with their lists and sets; each automatic
    collection walks all of them, which made the pass 30% slower.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse(
    path: str | Path,
    *,
    keep_ports: Iterable[int] = MAIL_PORTS,
    udp_ports: Iterable[int] = UDP_KEEP_PORTS,
    link: str | None = None,
) -> Parsed:
    """One pass over ``path``: flows, kept TCP segments, kept UDP datagrams, counts."""
    with paused_gc():
        return _parse(path, frozenset(keep_ports), frozenset(udp_ports), link)


def _parse(path: str | Path, keep: frozenset[int], ukeep: frozenset[int], link: str | None) -> Parsed:
    pf = open_pcap(path)
    data = pf.data
    end = len(data)
    unpack_rec = _REC[pf.little_endian].unpack_from
    unpack_fast = _FAST.unpack_from
    fastlen = _FAST_LEN if pf.linktype == LINKTYPE_ETHERNET else 1 << 62
    table: dict[Any, tuple[Flow, list[Any]]] = {}
    flows: list[Flow] = []
    udp_kept: list[tuple[int, int, int, int, int]] = []  # packet, record offset, L3, payload start, end
    counts: dict[str, int] = {}
    get = table.get
    limit = STREAM_LIMIT * 2  # retransmissions may repeat bytes: record a little more
    off, num = 24, 0
    truncated = False
    while off + 16 <= end:
        _, _, caplen, wirelen = unpack_rec(data, off)
        p = off + 16
        nxt = p + caplen
        if nxt > end:
            truncated = True
            break
        num += 1
        if caplen >= fastlen:
            (et, vihl, tlen, ipid, frag, ttl, proto, src, dst, sp, dp, seq, _ack, doff, flags) = unpack_fast(data, p)
            if et == 0x0800 and vihl == 0x45 and not frag & 0x3FFF:
                if proto == 6:
                    e = get((6, src, sp, dst, dp))
                    if e is None:
                        e = _new_flow(table, flows, 6, src, sp, dst, dp, flags, off, num, keep)
                        e[1][7] = ipid
                    side = e[1]
                    side[0] += 1  # S_PK
                    side[1] += wirelen  # S_BY
                    side[3].add(ttl)  # S_TTL
                    side[8] = off  # S_LAST
                    if flags & 7:  # FIN, SYN or RST
                        side[2] |= flags  # S_FL
                        if flags & SYN:
                            side[6] = seq  # S_ISN
                    segs = side[4]  # S_SEGS: None unless the flow is kept
                    if segs is not None:
                        hl = (doff >> 4) << 2
                        plen = tlen - 20 - hl
                        if plen > 0 and side[5] < limit:
                            side[5] += plen
                            segs.append((seq, num, p + 34 + hl, min(plen, nxt - p - 34 - hl)))
                    off = nxt
                    continue
                if proto == 17:
                    e = get((17, src, sp, dst, dp))
                    if e is None:
                        e = _new_flow(table, flows, 17, src, sp, dst, dp, 0, off, num, keep)
                    side = e[1]
                    side[0] += 1
                    side[1] += wirelen
                    side[3].add(ttl)
                    side[8] = off
                    if side[7] is None:
                        side[7] = ipid
                    if sp in ukeep or dp in ukeep:
                        udp_kept.append((num, off, p + 14, p + 42, min(p + 14 + tlen, nxt)))
                    off = nxt
                    continue
        _slow(pf, table, flows, udp_kept, counts, keep, ukeep, off, p, caplen, wirelen, num)
        off = nxt
    return _finish(path, link, pf, flows, udp_kept, counts, num, truncated)


def _finish(
    path: str | Path,
    link: str | None,
    pf: PcapFile,
    flows: list[Flow],
    udp_kept: list[tuple[int, int, int, int, int]],
    counts: dict[str, int],
    num: int,
    truncated: bool,
) -> Parsed:
    """Work done once per flow or kept datagram rather than once per packet.

    The per-packet loop only records offsets and tallies; timestamps, link names,
    protocol counts and datagram payloads are filled in here, after the pass, so the
    loop stays as short as possible.
    """
    for f in flows:  # the fast path counts nothing itself: its packets are in the flows
        name = PROTO_NAMES.get(f.proto, "other")
        counts[name] = counts.get(name, 0) + f.packets
    lk = link if link is not None else Path(path).stem
    data = pf.data
    rec = _REC[pf.little_endian]
    div = pf.ts_div
    for f in flows:
        f._pf = pf
        f.link = lk
        ts, fr, _, _ = rec.unpack_from(data, f.first_off)
        f.first_ts = ts + fr / div
        ts, fr, _, _ = rec.unpack_from(data, f.last_off)
        f.last_ts = ts + fr / div
    datagrams = [_datagram(pf, n, roff, l3, a, b) for n, roff, l3, a, b in udp_kept]
    first_ts = pf.ts_at(24) if num else None
    last_ts = max((f.last_ts for f in flows), default=first_ts) if num else None
    return Parsed(str(path), lk, pf, flows, datagrams, num, counts, truncated, first_ts, last_ts)


def _l3_offset(pf: PcapFile, p: int, caplen: int) -> tuple[int, int]:
    """(ethertype, offset of the network header) for a packet at ``p``; ethertype 0 if unknown."""
    data, lt = pf.data, pf.linktype
    if lt == LINKTYPE_ETHERNET:
        if caplen < 14:
            return 0, 0
        et = int.from_bytes(data[p + 12 : p + 14], "big")
        o = p + 14
        while et in (0x8100, 0x88A8, 0x9100) and o + 4 <= p + caplen:  # 802.1Q / QinQ
            et = int.from_bytes(data[o + 2 : o + 4], "big")
            o += 4
        return et, o
    if lt == LINKTYPE_LINUX_SLL:
        return int.from_bytes(data[p + 14 : p + 16], "big"), p + 16
    if lt == LINKTYPE_LINUX_SLL2:
        return int.from_bytes(data[p : p + 2], "big"), p + 20
    if lt in (LINKTYPE_RAW, LINKTYPE_IPV4):
        v = data[p] >> 4 if caplen else 0
        return (0x0800 if v == 4 else 0x86DD if v == 6 else 0), p
    return 0, 0


def _slow(
    pf: PcapFile,
    table: dict[Any, tuple[Flow, list[Any]]],
    flows: list[Flow],
    udp_kept: list[Any],
    counts: dict[str, int],
    keep: frozenset[int],
    ukeep: frozenset[int],
    off: int,
    p: int,
    caplen: int,
    wirelen: int,
    num: int,
) -> None:
    """Every packet the fast path does not handle: VLAN, IPv6, IP options, ICMP, ARP, fragments."""
    data = pf.data
    stop = p + caplen
    et, o = _l3_offset(pf, p, caplen)
    ipid: int | None
    if et == 0x0800 and o + 20 <= stop:
        vihl, tlen, ipid, frag, ttl, proto, src, dst = _IP4.unpack_from(data, o)
        l4 = o + (vihl & 15) * 4
        l4end = min(o + tlen, stop) if tlen else stop
        if frag & 0x1FFF:  # not the first fragment: no L4 header here
            counts["ip-fragment"] = counts.get("ip-fragment", 0) + 1
            return
    elif et == 0x86DD and o + 40 <= stop:
        plen6, proto, ttl, src, dst = _IP6.unpack_from(data, o)
        ipid = None
        l4 = o + 40
        l4end = min(l4 + plen6, stop)
        while proto in (0, 43, 60) and l4 + 8 <= l4end:  # hop-by-hop, routing, destination options
            proto, hlen = data[l4], (data[l4 + 1] + 1) * 8
            l4 += hlen
    else:  # ARP, or a network layer this reader does not decode (or cut short)
        kind = "arp" if et == 0x0806 else "other"
        counts[kind] = counts.get(kind, 0) + 1
        return
    flags = seq = doff = 0
    if proto == 6 and l4 + 14 <= l4end:
        sp, dp, seq, _ack, doff, flags = _TCP.unpack_from(data, l4)
        key = (6, src, sp, dst, dp)
    elif proto == 17 and l4 + 8 <= l4end:
        sp, dp, _ = _UDP.unpack_from(data, l4)
        key = (17, src, sp, dst, dp)
    elif proto in (1, 58) and l4 + 8 <= l4end and data[l4] in _ECHO[proto]:
        # echo request/reply: the identifier is both "ports"; the type tells the direction
        sp, _code, dp, _seq = _ICMP.unpack_from(data, l4)
        key = (proto, src, dp, dst, dp)
    else:  # another transport, an ICMP message other than echo, or a header cut short: no flow
        name = PROTO_NAMES.get(proto, "other")
        counts[name] = counts.get(name, 0) + 1
        return
    e = table.get(key)
    if e is None:
        e = _new_flow(table, flows, proto, src, sp, dst, dp, flags, off, num, keep)
    side = e[1]
    side[S_PK] += 1
    side[S_BY] += wirelen
    side[S_TTL].add(ttl)
    side[S_LAST] = off
    if side[S_IPID] is None:
        side[S_IPID] = ipid
    if proto == 6:
        side[S_FL] |= flags
        if flags & SYN:
            side[S_ISN] = seq
        segs = side[S_SEGS]
        if segs is not None:
            hl = (doff >> 4) << 2
            plen = l4end - l4 - hl
            if plen > 0 and side[S_KB] < STREAM_LIMIT * 2:
                side[S_KB] += plen
                segs.append((seq, num, l4 + hl, plen))
    elif proto == 17 and (sp in ukeep or dp in ukeep):
        udp_kept.append((num, off, o, l4 + 8, l4end))


def _datagram(pf: PcapFile, num: int, roff: int, l3: int, a: int, b: int) -> Datagram:
    data = pf.data
    if data[l3] >> 4 == 4:
        src, dst = fmt_addr(data[l3 + 12 : l3 + 16]), fmt_addr(data[l3 + 16 : l3 + 20])
    else:
        src, dst = fmt_addr(data[l3 + 8 : l3 + 24]), fmt_addr(data[l3 + 24 : l3 + 40])
    sp, dp = struct.unpack_from("!HH", data, a - 8)
    mac = ""
    if pf.linktype == LINKTYPE_ETHERNET:
        mac = data[roff + 16 + 6 : roff + 16 + 12].hex(":")
    return Datagram(num, pf.ts_at(roff), src, dst, sp, dp, data[a:b], mac)


def flows(pcap: str | Path | Parsed, **kw: Any) -> list[Flow]:
    """Every TCP/UDP/ICMP-echo flow of a pcap (see ``Flow``; ``Flow.to_dict()`` for JSON)."""
    return (pcap if isinstance(pcap, Parsed) else parse(pcap, **kw)).flows
