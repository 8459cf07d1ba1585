"""The application layer of one UDP datagram, as scapy decodes it: DNS, DHCP, OpenVPN.

Used by the layer view (``lab.capture.layers``) for each datagram of a flow it shows.
DNS and DHCP are scapy's own layers (bound to ports 53 and 67/68); an OpenVPN packet is
told by the view's hint (the tunnel's port is the topology's choice) and read from its
first byte: the opcode, which OpenVPN sends in clear even when all the rest is encrypted.
"""

from __future__ import annotations

from typing import Any

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
OPENVPN_OPCODES = {
    1: ("P_CONTROL_HARD_RESET_CLIENT_V1", "control: the client starts a session"),
    2: ("P_CONTROL_HARD_RESET_SERVER_V1", "control: the server answers"),
    3: ("P_CONTROL_SOFT_RESET_V1", "control: new keys"),
    4: ("P_CONTROL_V1", "control: the tunnel's own TLS handshake, wrapped in OpenVPN"),
    5: ("P_ACK_V1", "control: acknowledgement"),
    6: ("P_DATA_V1", "data: an inner IP packet, encrypted"),
    7: ("P_CONTROL_HARD_RESET_CLIENT_V2", "control: the client starts a session"),
    8: ("P_CONTROL_HARD_RESET_SERVER_V2", "control: the server answers"),
    9: ("P_DATA_V2", "data: an inner IP packet, encrypted"),
    10: ("P_CONTROL_HARD_RESET_CLIENT_V3", "control: the client starts a session (tls-crypt-v2)"),
    11: ("P_CONTROL_WKC_V1", "control: the client's wrapped key"),
}
ANSWERS_SHOWN = 4


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, list):
        return " ".join(_text(x) for x in v)
    return str(v)


def _rr(rr: Any, types: dict[int, str]) -> str:
    kind = types.get(rr.type, str(rr.type))
    name = type(rr).__name__
    if name == "DNSRRMX":
        value = f"{rr.preference} {_text(rr.exchange)}"
    elif name == "DNSRRSOA":
        value = f"{_text(rr.mname)} {_text(rr.rname)} serial {rr.serial}"
    elif name == "DNSRRSRV":
        value = f"{rr.priority} {rr.weight} {rr.port} {_text(rr.target)}"
    elif hasattr(rr, "rdata") and kind not in ("RRSIG", "DNSKEY", "DS", "NSEC", "NSEC3", "TLSA"):
        value = _text(rr.rdata)
    else:
        value = "…"
    return f"{kind} {value}"


def dns_message(d: Any) -> dict[str, Any]:
    from scapy.layers.dns import dnstypes

    qs = list(d.qd or [])
    q = qs[0] if qs else None
    qname = _text(q.qname) if q is not None else ""
    qtype = dnstypes.get(q.qtype, str(q.qtype)) if q is not None else ""
    out: dict[str, Any] = {"proto": "DNS", "id": f"0x{d.id:04x}", "qname": qname, "qtype": qtype}
    if not d.qr:
        out.update(what="query", text=f"query {out['id']}: {qname} {qtype}" + (" (recursion desired)" if d.rd else ""))
        return out
    answers = [_rr(rr, dnstypes) for rr in list(d.an or [])]
    rcode = RCODES.get(d.rcode, str(d.rcode))
    shown = "; ".join(answers[:ANSWERS_SHOWN]) + (
        f"; … {len(answers) - ANSWERS_SHOWN} more" if len(answers) > ANSWERS_SHOWN else ""
    )
    flags = ", authoritative" if d.aa else ""
    out.update(
        what="response",
        rcode=rcode,
        answers=answers,
        text=f"response {out['id']} to {qname} {qtype}: {rcode}{flags}" + (f": {shown}" if answers else ", no answer"),
    )
    return out


def dhcp_message(bootp: Any, dhcp: Any) -> dict[str, Any]:
    from scapy.layers.dhcp import DHCPTypes

    opts = {o[0]: o[1] for o in dhcp.options if isinstance(o, tuple) and len(o) >= 2}
    kind = str(DHCPTypes.get(opts.get("message-type", 0), "?")).upper()
    chaddr = bytes(bootp.chaddr)[:6].hex(":")
    xid = f"0x{bootp.xid:08x}"
    out: dict[str, Any] = {"proto": "DHCP", "what": kind, "xid": xid, "chaddr": chaddr, "yiaddr": bootp.yiaddr}
    host = f" ({_text(opts['hostname'])})" if "hostname" in opts else ""
    server = f" from server {opts['server_id']}" if "server_id" in opts else ""
    lease = f", lease {opts['lease_time']} s" if "lease_time" in opts else ""
    if kind == "DISCOVER":
        text = f"client {chaddr}{host} looks for a server"
    elif kind == "REQUEST":
        text = f"client {chaddr} asks for {opts.get('requested_addr', bootp.ciaddr)}{server}"
    elif kind in ("OFFER", "ACK"):
        extra = "".join(
            f", {label} {_text(opts[k])}" for k, label in (("router", "router"), ("name_server", "DNS")) if k in opts
        )
        verb = "offers" if kind == "OFFER" else "confirms"
        text = f"{verb} {bootp.yiaddr} (yiaddr) to {chaddr}{server}{lease}{extra}"
    else:
        text = f"client {chaddr}"
    out["text"] = f"{kind}, xid {xid}: {text}"
    return out


def openvpn_message(payload: bytes) -> dict[str, Any]:
    if not payload:
        return {"proto": "OpenVPN", "what": "", "text": "empty"}
    op = payload[0] >> 3
    name, what = OPENVPN_OPCODES.get(op, (f"opcode {op}", "not an opcode OpenVPN knows"))
    return {"proto": "OpenVPN", "what": name, "text": f"{name} (key {payload[0] & 7}), {len(payload)} bytes: {what}"}


def datagram_messages(frame: Any, hint: str) -> list[dict[str, Any]]:
    """What one decoded UDP datagram carries, as a list of message dicts (one, mostly)."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.dns import DNS
    from scapy.layers.inet import UDP

    u = frame[UDP]
    if hint == "openvpn":
        return [openvpn_message(bytes(u.payload))]
    if frame.haslayer(DHCP) and frame.haslayer(BOOTP):
        return [dhcp_message(frame[BOOTP], frame[DHCP])]
    if frame.haslayer(DNS) and 53 in (u.sport, u.dport):
        return [dns_message(frame[DNS])]
    n = len(bytes(u.payload))
    return [{"proto": "data", "what": "", "text": f"{n} bytes"}] if n else []
