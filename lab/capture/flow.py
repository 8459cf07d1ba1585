"""A conversation in one pcap and its reassembled TCP streams (built by ``lab.capture.pcap``)."""

from __future__ import annotations

import builtins
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.capture.pcapfile import PcapFile

STREAM_LIMIT = 64 * 1024  # bytes reassembled per direction
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}
C2S, S2C = 0, 1
# fields of Flow.sides[direction]
S_PK, S_BY, S_FL, S_TTL, S_SEGS, S_KB, S_ISN, S_IPID, S_LAST = range(9)
_FLAGSTR = ["", "F", "S", "SF", "R", "FR", "SR", "SFR"]

# TCP flag bits
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def fmt_addr(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntoa(raw)
    return str(ipaddress.ip_address(raw))


@dataclass
class Stream:
    """One direction of a TCP connection, reassembled (up to ``STREAM_LIMIT`` bytes)."""

    data: bytes = b""
    # (stream offset, packet number) at the start of each segment that added bytes
    marks: list[tuple[int, int]] = field(default_factory=list)
    gap_at: int | None = None  # stream offset of the first missing byte, if any
    truncated: bool = False  # the limit cut the stream
    retransmitted: int = 0  # segments that brought nothing new

    def offset_after(self, packet: int | None) -> int:
        """Stream offset of the first byte carried by a packet numbered above ``packet``."""
        if packet is None:
            return 0
        for off, n in self.marks:
            if n > packet:
                return off
        return len(self.data)

    def packet_at(self, offset: int) -> int | None:
        """Packet number that carried the byte at ``offset`` of this stream."""
        lo, hi, best = 0, len(self.marks) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.marks[mid][0] <= offset:
                best = self.marks[mid][1]
                lo = mid + 1
            else:
                hi = mid - 1
        return best


class Flow:
    """One TCP/UDP/ICMP conversation seen in one pcap.

    The client is the side that sent the first SYN (TCP), else the side on the higher,
    non-service port, else the first sender.
    """

    __slots__ = (
        "_pf",
        "_streams",
        "client",
        "cport",
        "first_off",
        "first_packet",
        "first_ts",
        "keep",
        "last_ts",
        "link",
        "memo",
        "proto",
        "server",
        "sides",
        "sport",
    )

    def __init__(
        self,
        proto: int,
        client: bytes,
        cport: int,
        server: bytes,
        sport: int,
        first_off: int,
        first_packet: int,
        keep: bool,
    ):
        self.proto = proto
        self.client, self.cport, self.server, self.sport = client, cport, server, sport
        # one mutable list per direction, indexed by the S_* constants: the parse loop
        # updates these with subscripts, the cheapest store CPython has
        self.sides: list[list[Any]] = [
            [0, 0, 0, set(), [] if keep else None, 0, None, None, first_off],
            [0, 0, 0, set(), [] if keep else None, 0, None, None, first_off],
        ]
        self.first_off = first_off
        self.first_packet = first_packet
        self.keep = keep
        self._pf: PcapFile | None = None
        self.link = ""
        self._streams: list[Stream] | None = None
        self.first_ts = self.last_ts = 0.0
        self.memo: dict[str, Any] = {}  # analysers cache per-flow results here (e.g. STARTTLS)

    # -- per direction (index with C2S / S2C) ---------------------------------------------
    @property
    def pk(self) -> tuple[int, int]:
        return (self.sides[0][S_PK], self.sides[1][S_PK])

    @property
    def by(self) -> tuple[int, int]:
        return (self.sides[0][S_BY], self.sides[1][S_BY])

    @property
    def fl(self) -> tuple[int, int]:
        return (self.sides[0][S_FL], self.sides[1][S_FL])

    @property
    def ttl(self) -> tuple[set[int], set[int]]:
        return (self.sides[0][S_TTL], self.sides[1][S_TTL])

    @property
    def isn(self) -> tuple[int | None, int | None]:
        return (self.sides[0][S_ISN], self.sides[1][S_ISN])

    @property
    def ipid(self) -> tuple[int | None, int | None]:
        """IP id of the first packet each way (NAT keeps it)."""
        return (self.sides[0][S_IPID], self.sides[1][S_IPID])

    @property
    def last_off(self) -> int:
        return max(self.sides[0][S_LAST], self.sides[1][S_LAST])

    # -- identity ------------------------------------------------------------------
    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, str(self.proto))

    @property
    def key(self) -> tuple[str, str, int, str, int]:
        k = self.memo.get("key")
        if k is None:
            k = self.memo["key"] = (
                self.proto_name,
                fmt_addr(self.client),
                self.cport,
                fmt_addr(self.server),
                self.sport,
            )
        return k

    @property
    def name(self) -> str:
        p, c, cp, s, sp = self.key
        return f"{p} {_hp(c, cp)} > {_hp(s, sp)}"

    @property
    def packets(self) -> int:
        return self.pk[0] + self.pk[1]

    @property
    def bytes(self) -> int:
        return self.by[0] + self.by[1]

    # -- streams -------------------------------------------------------------------
    @property
    def kept(self) -> bool:
        return self.keep

    def stream(self, direction: int, limit: int = STREAM_LIMIT) -> Stream:
        """The reassembled payload of one direction (``C2S`` or ``S2C``)."""
        if self._streams is None:
            self._streams = [self._assemble(C2S, limit), self._assemble(S2C, limit)]
        return self._streams[direction]

    # ``bytes`` here would name the property above, hence ``builtins.bytes``
    @property
    def c2s(self) -> builtins.bytes:
        return self.stream(C2S).data

    @property
    def s2c(self) -> builtins.bytes:
        return self.stream(S2C).data

    def _assemble(self, d: int, limit: int) -> Stream:
        st = Stream()
        segs = self.sides[d][S_SEGS]
        if not segs or self._pf is None:
            return st
        isn = self.sides[d][S_ISN]
        base = (isn + 1) & 0xFFFFFFFF if isn is not None else segs[0][0]
        buf = self._pf.data
        parts: list[bytes] = []
        marks = st.marks
        have = 0
        # fast path: segments in capture order, each starting where the previous ended
        ordered = True
        for s, n, a, ln in segs:
            if ((s - base) & 0xFFFFFFFF) != have:
                ordered = False
                break
            marks.append((have, n))
            if have + ln > limit:
                parts.append(buf[a : a + limit - have])
                have = limit
                st.truncated = True
                break
            parts.append(buf[a : a + ln])
            have += ln
        if not ordered:
            parts, have = [], 0
            marks.clear()
            rel = sorted((((s - base) & 0xFFFFFFFF), n, a, ln) for s, n, a, ln in segs)
            for r, n, a, ln in rel:
                if r >= 0x80000000:  # before the base: a retransmitted SYN payload, ignore
                    st.retransmitted += 1
                    continue
                if r > have:
                    st.gap_at = have
                    break
                if r + ln <= have:
                    st.retransmitted += 1
                    continue
                skip = have - r
                take = min(ln - skip, limit - have)
                marks.append((have, n))
                parts.append(buf[a + skip : a + skip + take])
                have += take
                if have >= limit:
                    st.truncated = True
                    break
        st.data = b"".join(parts)
        return st

    def to_dict(self) -> dict[str, Any]:
        p, c, cp, s, sp = self.key
        out: dict[str, Any] = {
            "flow": self.name,
            "link": self.link,
            "proto": p,
            "client": c,
            "client_port": cp,
            "server": s,
            "server_port": sp,
            "first": round(self.first_ts, 6),
            "last": round(self.last_ts, 6),
            "first_packet": self.first_packet,
            "packets": self.packets,
            "bytes": self.bytes,
        }
        tcp = self.proto == 6
        for d, label in ((C2S, "c2s"), (S2C, "s2c")):
            side = self.sides[d]
            o: dict[str, Any] = {"packets": side[S_PK], "bytes": side[S_BY], "ttls": sorted(side[S_TTL])}
            if tcp:
                fl = side[S_FL]
                o["flags"] = _FLAGSTR[fl & 7]
                if self.keep:
                    stv = self.stream(d)
                    o["stream_bytes"] = len(stv.data)
                    if stv.gap_at is not None:
                        o["gap_at"] = stv.gap_at
                    if stv.truncated:
                        o["truncated"] = True
            out[label] = o
        return out


def _hp(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Datagram:
    """A UDP datagram kept for DNS/DHCP decoding (payload sliced on demand)."""

    packet: int
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes
    src_mac: str = ""
