"""The tunnel wire check: what crosses the outside links of a VPN, and what the tunnel carries."""

from __future__ import annotations

import ipaddress
from typing import Any

from lab.capture import analyse as A
from lab.capture.packets import flow_packets
from lab.model import scenario as S
from lab.model.plan import Plan
from lab.scenario.context import Outcome, failed, passed

#: mail protocol words that would give a clear-text conversation away
CLEAR = (b"EHLO ", b"MAIL FROM:", b"RCPT TO:", b"STARTTLS", b"* OK ", b"ESMTP")


def _inner(plan: Plan, name: str) -> list[ipaddress.IPv4Network]:
    v = plan.topology.data.vpns[name]
    nets = [ipaddress.IPv4Network(v.subnet)]
    nets += [plan.topology.subnets[s].network for subs in v.networks.values() for s in subs]
    return nets


def _ip_headers(payload: bytes, inner_ips: set[bytes]) -> bool:
    """Does a datagram carry a plain IPv4 header between two inner addresses?"""
    i = payload.find(b"\x45")
    while 0 <= i <= len(payload) - 20:
        if payload[i + 12 : i + 16] in inner_ips and payload[i + 16 : i + 20] in inner_ips:
            return True
        i = payload.find(b"\x45", i + 1)
    return False


def tunnel_check(t: S.WireTunnel, plan: Plan, pcaps: dict[str, Any]) -> Outcome:
    v = plan.topology.data.vpns[t.vpn]
    nets = _inner(plan, t.vpn)
    inner_ips = {
        ipaddress.IPv4Address(i.ip).packed
        for n in plan.nodes.values()
        for i in n.interfaces
        if i.ip and any(ipaddress.IPv4Address(i.ip) in net for net in nets)
    }
    inner_ips |= (
        {h.packed for h in ipaddress.IPv4Network(v.subnet).hosts()}
        if ipaddress.IPv4Network(v.subnet).num_addresses <= 256
        else set()
    )

    def is_inner(ip: str) -> bool:
        a = ipaddress.ip_address(ip)
        return any(a in net for net in nets)

    leaks: list[dict[str, Any]] = []
    clear: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    tunnel: list[dict[str, Any]] = []
    for link in t.links:
        parsed = A._parsed(pcaps[link]) if link in pcaps else None
        if parsed is None:
            return failed(f"no capture of link {link}")
        udp = []
        for f in parsed.flows:
            proto, c, cp, srv, sp = f.key
            where = {"link": link, "flow": f.name, "packets": f.packets}
            if is_inner(c) or is_inner(srv):
                leaks.append(where)
            elif proto == "udp" and v.port in (cp, sp):
                tunnel.append(where)
                udp.append(f.key)
            else:
                other.append(where)
        for key, pkts in flow_packets(parsed, udp, cap=100000).items():
            data = parsed.pcap.data
            for pk in pkts:
                body = data[pk.payload_at : pk.payload_at + pk.payload]
                if _ip_headers(body, inner_ips) or any(w in body for w in CLEAR):
                    clear.append(
                        {"link": link, "packet": pk.number, "flow": f"udp {key[1]}:{key[2]} > {key[3]}:{key[4]}"}
                    )
    inside = []
    for link, pcap in pcaps.items():
        if not link.split("-")[-1].startswith("vpn"):
            continue
        for f in A._parsed(pcap).flows:
            if is_inner(f.key[1]) and is_inner(f.key[3]):
                inside.append({"link": link, "flow": f.name, "packets": f.packets})
    details = {"leaks": leaks[:50], "clear": clear[:50], "tunnel": tunnel, "other": other[:50], "inside": inside[:100]}
    if leaks:
        return failed(
            f"{len(leaks)} flow(s) with an inner address crossed {leaks[0]['link']}, e.g. {leaks[0]['flow']}", **details
        )
    if clear:
        return failed(
            f"{len(clear)} tunnel datagram(s) carry clear text, e.g. packet {clear[0]['packet']} on {clear[0]['link']}",
            **details,
        )
    if not tunnel:
        return failed(f"no tunnel datagram (udp/{v.port}) crossed {', '.join(t.links)}: nothing was proven", **details)
    if not inside:
        return failed("the tunnel interfaces carried no inner traffic", **details)
    packets = sum(int(x["packets"]) for x in tunnel)
    return passed(
        f"{packets} packet(s) of udp/{v.port} on {', '.join(t.links)}, none with an inner address or clear text; "
        f"{len(inside)} inner flow(s) inside the tunnel",
        **details,
    )
