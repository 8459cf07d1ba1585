"""How long each phase of a TCP connection took, as its own link saw it.

For a connection seen on one of its links: the TCP handshake (SYN to the client's ACK
is one round trip, on whichever link it is seen), the server's first bytes (an SMTP or IMAP
greeting, or a TLS ServerHello), the TLS handshake (the ClientHello to the client's
next flight, its Finished), and the whole connection, also counted in round trips.
A WAN's delay shows here as every phase growing by a multiple of the round trip.
Pure: a ``Parsed`` pcap and the TLS facts of ``lab.capture.analyse.tls_facts`` in.
"""

from __future__ import annotations

from typing import Any

from lab.capture.flow import ACK, C2S, S2C, SYN
from lab.capture.packets import Key, Packet, flow_packets
from lab.capture.pcap import Parsed


def _ms(a: Packet | None, b: Packet | None) -> float | None:
    return None if a is None or b is None else round((b.ts - a.ts) * 1000, 3)


def phases(packets: list[Packet], tls_packet: int | None = None) -> dict[str, Any]:
    """The phases of one TCP connection from its packets (as ``flow_packets`` gives them)."""
    syn = next((p for p in packets if p.direction == C2S and p.flags & SYN and not p.flags & ACK), None)
    synack = next((p for p in packets if p.direction == S2C and p.flags & SYN and p.flags & ACK), None)
    ack = (
        next((p for p in packets if p.direction == C2S and p.number > synack.number and not p.flags & SYN), None)
        if synack
        else None
    )
    first_data = next((p for p in packets if p.direction == S2C and p.payload), None)
    out: dict[str, Any] = {
        "packets": len(packets),
        # SYN to SYN-ACK is the round trip beyond the capture point, SYN-ACK to ACK the
        # one before it: SYN to ACK is one whole round trip, wherever the link lies
        "rtt_ms": _ms(syn, ack),
        "syn_synack_ms": _ms(syn, synack),
        "greeting_ms": _ms(syn, first_data),
        "total_ms": _ms(syn, packets[-1]) if packets else None,
    }
    if tls_packet is not None:
        hello = next((p for p in packets if p.number == tls_packet), None)
        answer = next((p for p in packets if p.direction == S2C and p.payload and p.number > tls_packet), None)
        finished = (
            next((p for p in packets if p.direction == C2S and p.payload and p.number > answer.number), None)
            if answer
            else None
        )
        out["tls_start_ms"] = _ms(syn, hello)
        out["tls_handshake_ms"] = _ms(hello, finished)
    rtt = out["rtt_ms"]
    out["total_rtts"] = round(out["total_ms"] / rtt, 1) if rtt and out["total_ms"] is not None else None
    return out


def connection_timings(parsed: Parsed, flows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The phases of each flow (``{"key": Key, "tls_packet": n|None, ...}``) found in ``parsed``."""
    keys: list[Key] = [f["key"] for f in flows]
    found = flow_packets(parsed, keys)
    out = []
    for f in flows:
        pk = found.get(f["key"]) or []
        if not pk:
            continue
        out.append({**{k: v for k, v in f.items() if k != "key"}, **phases(pk, f.get("tls_packet"))})
    return out
