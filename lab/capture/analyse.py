"""What the packets prove: TLS per mail flow, credentials in clear, paths, NAT, DHCP, DNS.

Every function is pure: pcap files (or ``Parsed`` results of ``lab.capture.pcap.parse``)
in, plain JSON-ready dicts out.  Parse a file once and hand the ``Parsed`` to several
functions when more than one fact is needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lab.capture.mailproto import IMPLICIT_TLS_PORTS, find_starttls, protocol_of, reply_after, scan_credentials
from lab.capture.netsvc import dhcp, dns
from lab.capture.pcap import C2S, S2C, Flow, Parsed, parse, paused_gc
from lab.capture.sshproto import ssh_facts
from lab.capture.tls import KeyLog, analyse_tls, looks_like_tls, read_keylog

__all__ = [
    "analyse_captures",
    "analyse_pcap",
    "dhcp",
    "dns",
    "flow_key",
    "nat",
    "nat_mapping",
    "path",
    "plaintext_credentials",
    "tls_facts",
]

PcapLike = str | Path | Parsed
KeyLogLike = str | Path | Iterable[str | Path] | KeyLog | None


def _parsed(pcap: PcapLike) -> Parsed:
    return pcap if isinstance(pcap, Parsed) else parse(pcap)


def _keylog(keylog: KeyLogLike) -> KeyLog:
    if isinstance(keylog, dict):
        return keylog
    return read_keylog(keylog)


# -- TLS -------------------------------------------------------------------------------------
def tls_facts(flow: Flow, keylog: KeyLogLike = None) -> dict[str, Any]:
    """TLS facts of one TCP flow whose streams were kept (mail ports and 443).

    ``mode`` is ``"implicit"`` when the client's first bytes are a TLS record,
    ``"starttls"`` when TLS follows an accepted STARTTLS/STLS, else ``None``.
    ``starttls_at`` is the client-to-server byte offset where TLS begins
    (``starttls_at_s2c`` the server's), ``tls_packet`` the packet of the ClientHello.
    """
    kl = _keylog(keylog)
    c2s, s2c = flow.stream(C2S), flow.stream(S2C)
    proto = protocol_of(flow) if flow.kept else None
    out: dict[str, Any] = {
        "flow": flow.name,
        "link": flow.link,
        "protocol": proto,
        "tls": False,
        "mode": None,
        "starttls_at": None,
        "version": None,
        "cipher": None,
        "sni": None,
        "client_bytes": len(c2s.data),
        "server_bytes": len(s2c.data),
    }
    if not flow.kept or flow.proto != 6:
        out["note"] = "stream not kept (not a mail or HTTPS port)"
        return out
    c_at = s_at = None
    if looks_like_tls(c2s.data):
        out["mode"] = "implicit"
        c_at, s_at = 0, 0
    else:
        st = find_starttls(flow, proto)
        if st is not None:
            out["starttls_command_packet"] = st.command_packet
            out["starttls_reply"] = st.reply
            out["starttls_reply_packet"] = st.reply_packet
            if st.accepted and looks_like_tls(c2s.data[st.c2s_at : st.c2s_at + 3]):
                out["mode"] = "starttls"
                c_at, s_at = st.c2s_at, st.s2c_at
                out["starttls_at"] = st.c2s_at
                out["starttls_at_s2c"] = st.s2c_at
            elif not st.accepted:
                out["starttls_refused"] = True
        if out["mode"] is None and flow.sport in IMPLICIT_TLS_PORTS and c2s.data:
            out["note"] = f"port {flow.sport} expects implicit TLS, but the client spoke first in clear"
    if c_at is None or s_at is None:
        if not c2s.data and not s2c.data:
            out["note"] = "no payload captured"
        elif not c2s.data:
            out["note"] = "the client sent nothing (a port probe, or it gave up)"
        return out
    out["tls_packet"] = c2s.packet_at(c_at)
    facts = analyse_tls(c2s.data[c_at:], s2c.data[s_at:], kl)
    out.update(facts)
    out["tls"] = facts.get("version") is not None
    return out


# -- credentials in clear --------------------------------------------------------------------
def plaintext_credentials(flows: Iterable[Flow] | PcapLike) -> list[dict[str, Any]]:
    """Every login or SASL exchange a mail client sent *before* TLS (or without it).

    A refused login is still reported: the password crossed the wire all the same.
    """
    if isinstance(flows, (str, Path, Parsed)):
        flows = _parsed(flows).flows
    findings = []
    for f in flows:
        if not f.kept or f.proto != 6:
            continue
        proto = protocol_of(f)
        if proto not in ("smtp", "imap", "pop3", "http"):
            continue
        c2s = f.stream(C2S)
        if looks_like_tls(c2s.data):
            continue
        st = find_starttls(f, proto) if proto != "http" else None
        clear_end = st.c2s_at if st is not None and st.accepted else len(c2s.data)
        for cred in scan_credentials(c2s.data[:clear_end], proto):
            reply = reply_after(f, cred.offset, cred.tag)
            findings.append(
                {
                    "link": f.link,
                    "packet": c2s.packet_at(cred.offset),
                    "flow": f.name,
                    "client": f.key[1],
                    "server": f.key[3],
                    "server_port": f.sport,
                    "protocol": proto,
                    "command": cred.command,
                    "user": cred.user,
                    "what": cred.what,
                    "evidence": cred.evidence,
                    "stream_offset": cred.offset,
                    "starttls_after": st is not None and st.accepted,  # sent in clear, then the session upgraded
                    "server_reply": reply[0] if reply else None,
                    "reply_packet": reply[1] if reply else None,
                }
            )
    return findings


def plaintext_mail(flows: Iterable[Flow] | PcapLike) -> list[dict[str, Any]]:
    """Every SMTP flow that carried a message (DATA) in clear: no TLS from the start and
    none accepted before the DATA command.  The harm of a stripped STARTTLS."""
    if isinstance(flows, (str, Path, Parsed)):
        flows = _parsed(flows).flows
    out = []
    for f in flows:
        if not f.kept or f.proto != 6 or protocol_of(f) != "smtp":
            continue
        c2s = f.stream(C2S)
        if looks_like_tls(c2s.data):
            continue
        st = find_starttls(f, "smtp")
        clear = c2s.data[: st.c2s_at] if st is not None and st.accepted else c2s.data
        m = re.search(rb"(?im)^DATA\r?\n", clear)
        if m is None:
            continue
        subject = re.search(rb"(?im)^Subject: ?([^\r\n]*)", clear[m.end() :])
        out.append(
            {
                "link": f.link,
                "flow": f.name,
                "packet": c2s.packet_at(m.start()),
                "client": f.key[1],
                "server": f.key[3],
                "subject": subject.group(1).decode(errors="replace") if subject else None,
                "bytes_in_clear": len(clear) - m.end(),
            }
        )
    return out


# -- path and NAT --------------------------------------------------------------------------------
_KEY = re.compile(r"^(\w+)\s+\[?([0-9a-fA-F.:]+?)\]?:(\d+)\s*>\s*\[?([0-9a-fA-F.:]+?)\]?:(\d+)$")


def flow_key(key: Any) -> tuple[str, str, int, str, int]:
    """A flow key from a ``Flow``, a ``Flow.key`` tuple, a ``to_dict()`` or ``"tcp a:p > b:q"``."""
    if isinstance(key, Flow):
        return key.key
    if isinstance(key, Mapping):
        return (key["proto"], key["client"], int(key["client_port"]), key["server"], int(key["server_port"]))
    if isinstance(key, str):
        m = _KEY.match(key.strip())
        if not m:
            raise ValueError(f"not a flow key: {key!r} (expected e.g. 'tcp 10.0.0.100:40000 > 10.0.0.10:587')")
        return (m.group(1).lower(), m.group(2), int(m.group(3)), m.group(4), int(m.group(5)))
    p, c, cp, s, sp = key
    return (str(p), str(c), int(cp), str(s), int(sp))


def path(pcaps_by_link: Mapping[str, PcapLike], key: Any, *, follow_nat: bool = True) -> dict[str, Any]:
    """On which links a flow appeared, in the order it reached them, with the TTL on each.

    A TTL drop between two links is the number of routers between them.  With
    ``follow_nat`` a link where the key is absent is searched for the same flow under
    rewritten addresses (see ``nat``); such entries carry ``translated: true`` and the
    key as seen there.
    """
    k = flow_key(key)
    parsed = {link: _parsed(p) for link, p in pcaps_by_link.items()}
    found: dict[str, tuple[Flow, bool]] = {}
    for link, p in parsed.items():
        f = p.find(k)
        if f is not None:
            found[link] = (f, False)
    if follow_nat and found:
        _anchor_link, (anchor, _) = next(iter(found.items()))
        for link, p in parsed.items():
            if link in found:
                continue
            m = _match_flow(anchor, p.flows, window=2.0)
            if m is not None:
                found[link] = (m, True)
    seen: list[dict[str, Any]] = []
    for link, (f, translated) in found.items():
        entry: dict[str, Any] = {
            "link": link,
            "flow": f.name,
            "first": round(f.first_ts, 6),
            "first_packet": f.first_packet,
            "packets": f.packets,
            "c2s_packets": f.pk[C2S],
            "s2c_packets": f.pk[S2C],
            "ttl_c2s": sorted(f.ttl[C2S]),
            "ttl_s2c": sorted(f.ttl[S2C]),
        }
        if translated:
            entry["translated"] = True
        seen.append(entry)
    seen.sort(key=lambda x: (x["first"], -max(x["ttl_c2s"] or [0])))
    hops = []
    for a, b in zip(seen, seen[1:]):
        ta, tb = a["ttl_c2s"], b["ttl_c2s"]
        hops.append({"from": a["link"], "to": b["link"], "routers": (max(ta) - max(tb)) if ta and tb else None})
    first_ttl = seen[0]["ttl_c2s"] if seen else []
    return {
        "flow": f"{k[0]} {k[1]}:{k[2]} > {k[3]}:{k[4]}",
        "links": seen,
        "hops": hops,
        "missing": [link for link in parsed if link not in found],
        "client_initial_ttl": _initial_ttl(max(first_ttl)) if first_ttl else None,
    }


def _initial_ttl(ttl: int) -> int:
    return next(t for t in (32, 64, 128, 255) if ttl <= t)


def _match_flow(fa: Flow, candidates: Iterable[Flow], window: float, used: set[int] | None = None) -> Flow | None:
    """The flow among ``candidates`` that is ``fa`` seen elsewhere, addresses possibly rewritten.

    TCP: the client's initial sequence number (NAT keeps it), and the server's when
    both SYNs were seen.  UDP and ICMP echo: the IP id of the first packet each way
    and the packet counts.  The first packets must be within ``window`` seconds.
    """
    best, best_dt = None, window
    for fb in candidates:
        if fb.proto != fa.proto or (used is not None and id(fb) in used):
            continue
        if fa.proto == 6:
            if fa.isn[C2S] is None or fb.isn[C2S] != fa.isn[C2S]:
                continue
            if fa.isn[S2C] is not None and fb.isn[S2C] is not None and fb.isn[S2C] != fa.isn[S2C]:
                continue
        elif not fa.ipid[C2S] or fb.ipid[C2S] != fa.ipid[C2S] or fb.pk != fa.pk:
            continue
        dt = abs(fb.first_ts - fa.first_ts)
        if dt <= best_dt:
            best, best_dt = fb, dt
    return best


def nat(pcap_a: PcapLike, pcap_b: PcapLike, *, window: float = 2.0) -> list[dict[str, Any]]:
    """Flows seen on both sides of a router, matched despite rewritten addresses and ports.

    Matching as in ``_match_flow`` (TCP initial sequence numbers; IP id and packet
    counts for UDP and ICMP echo).  ``rewritten`` lists what changed between ``a`` and
    ``b``; an empty list means the flow was routed unchanged.  ``nat_mapping`` turns
    the result into ``{"tcp inside:port": "outside:port"}``.
    """
    pa, pb = _parsed(pcap_a), _parsed(pcap_b)
    index: dict[tuple[int, int | None], list[Flow]] = {}
    for f in pb.flows:
        index.setdefault((f.proto, f.isn[C2S] if f.proto == 6 else f.ipid[C2S]), []).append(f)
    out = []
    used: set[int] = set()
    for fa in pa.flows:
        cands = index.get((fa.proto, fa.isn[C2S] if fa.proto == 6 else fa.ipid[C2S]), [])
        fb = _match_flow(fa, cands, window, used)
        if fb is None:
            continue
        used.add(id(fb))
        ka, kb = fa.key, fb.key
        rewritten = [
            name for name, i in (("client", 1), ("client_port", 2), ("server", 3), ("server_port", 4)) if ka[i] != kb[i]
        ]
        out.append(
            {
                "a": _key_dict(ka, pa.link),
                "b": _key_dict(kb, pb.link),
                "matched_by": "tcp initial sequence numbers"
                if fa.proto == 6
                else "ip id of the first packet and packet counts",
                "rewritten": rewritten,
                "kind": _nat_kind(rewritten),
                "ttl_c2s": {pa.link: sorted(fa.ttl[C2S]), pb.link: sorted(fb.ttl[C2S])},
                "packets": {pa.link: fa.packets, pb.link: fb.packets},
            }
        )
    return out


def _key_dict(k: tuple[str, str, int, str, int], link: str) -> dict[str, Any]:
    return {
        "link": link,
        "flow": f"{k[0]} {k[1]}:{k[2]} > {k[3]}:{k[4]}",
        "proto": k[0],
        "client": k[1],
        "client_port": k[2],
        "server": k[3],
        "server_port": k[4],
    }


def _nat_kind(rewritten: list[str]) -> str:
    if not rewritten:
        return "unchanged"
    src = any(r.startswith("client") for r in rewritten)
    dst = any(r.startswith("server") for r in rewritten)
    return "snat+dnat" if src and dst else "snat" if src else "dnat"


def nat_mapping(matches: list[dict[str, Any]]) -> dict[str, str]:
    """``{"10.0.0.100:40000": "198.51.100.1:40000", ...}`` for the source-NATed matches."""
    out = {}
    for m in matches:
        if any(r.startswith("client") for r in m["rewritten"]):
            a, b = m["a"], m["b"]
            out[f"{a['proto']} {a['client']}:{a['client_port']}"] = f"{b['client']}:{b['client_port']}"
    return out


# -- everything for a run ---------------------------------------------------------------------
def analyse_pcap(
    pcap: PcapLike, keylog: KeyLogLike = None, *, link: str | None = None, services: bool = True
) -> dict[str, Any]:
    """One link's capture: flows, TLS per kept flow, credentials in clear, DHCP, DNS."""
    with paused_gc():
        return _analyse_pcap(pcap, keylog, link=link, services=services)


def _analyse_pcap(pcap: PcapLike, keylog: KeyLogLike, *, link: str | None, services: bool) -> dict[str, Any]:
    p = pcap if isinstance(pcap, Parsed) else parse(pcap, link=link)
    kl = _keylog(keylog)
    out: dict[str, Any] = {
        "link": p.link,
        "file": p.path,
        "packets": p.packets,
        "truncated": p.truncated,
        "counts": p.counts,
        "first": p.first_ts,
        "last": p.last_ts,
        "flows": [f.to_dict() for f in p.flows],
        "tls": [tls_facts(f, kl) for f in p.flows if f.kept and f.packets > 0],
        "credentials": plaintext_credentials(p.flows),
        "plaintext_mail": plaintext_mail(p.flows),
        "ssh": [ssh_facts(f) for f in p.flows if f.kept and f.proto == 6 and f.sport == 22 and f.packets > 0],
    }
    if services:
        out["dhcp"] = dhcp(p)
        out["dns"] = dns(p)
    return out


def analyse_captures(pcaps_by_link: Mapping[str, PcapLike], keylog: KeyLogLike = None) -> dict[str, Any]:
    """Every link of a run, for ``summary.json``: per link facts plus the findings of all links."""
    kl = _keylog(keylog)
    links = {}
    for link, pcap in pcaps_by_link.items():
        p = pcap if isinstance(pcap, Parsed) else parse(pcap, link=link)
        links[link] = analyse_pcap(p, kl)
    return {
        "links": links,
        "credentials": [c for v in links.values() for c in v["credentials"]],
        "plaintext_mail": [c for v in links.values() for c in v["plaintext_mail"]],
        "tls": [t for v in links.values() for t in v["tls"]],
        "ssh": [t for v in links.values() for t in v["ssh"]],
    }
