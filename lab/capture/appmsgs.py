"""The application layer of one TCP connection, message by message, from its two streams.

What the layer view shows above TCP: each SMTP/IMAP/POP3/HTTP line sent in clear, and
from where TLS begins (at once, after STARTTLS/STLS, or after a proxy's CONNECT) each
TLS record: its content type, record version and length, and what can be read without
secrets (ClientHello with SNI and the versions offered, ServerHello with the version and
suite chosen, TLS 1.2's certificate, alerts in clear).  Every message carries the
stream offset where it starts, so ``by_packet`` can put it on the packet that carried
its first byte.

Built on the reassembled streams of ``lab.capture.pcap`` and on the record parser of
``lab.capture.tls`` (the one the TLS facts come from, so the two always agree: scapy's
TLS layer binds to port 443 only and knows nothing of STARTTLS).  Passwords a client
sent in clear are starred, as in the clients' dialogues: the report is shared, the pcap
keeps the truth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lab.capture.flow import C2S, S2C, Flow
from lab.capture.mailproto import find_starttls, lines, protocol_of
from lab.capture.tls import ALERTS as ALERT_NAMES
from lab.capture.tls import (
    CT_ALERT,
    CT_APPDATA,
    CT_CCS,
    CT_HANDSHAKE,
    HS_CERTIFICATE,
    HS_CLIENT_HELLO,
    HS_SERVER_HELLO,
    VERSIONS,
    cert_facts,
    certificate_list,
    cipher_name,
    handshake_messages,
    looks_like_tls,
    parse_hello,
    records,
)

LABEL = {
    "smtp": "SMTP",
    "imap": "IMAP",
    "pop3": "POP3",
    "http": "HTTP",
    "https": "HTTP",
    "http-proxy": "HTTP",
}
CONTENT_TYPES = {
    CT_CCS: "ChangeCipherSpec",
    CT_ALERT: "Alert",
    CT_HANDSHAKE: "Handshake",
    CT_APPDATA: "ApplicationData",
}
HANDSHAKE_TYPES = {
    0: "HelloRequest",
    1: "ClientHello",
    2: "ServerHello",
    4: "NewSessionTicket",
    5: "EndOfEarlyData",
    8: "EncryptedExtensions",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    15: "CertificateVerify",
    16: "ClientKeyExchange",
    20: "Finished",
}
HIDDEN = "********"
LINE_LIMIT = 160  # characters of one line shown
_B64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_LITERAL = re.compile(r"\{(\d+)\+?\}$")


@dataclass
class Message:
    direction: int  # C2S or S2C
    offset: int  # stream offset of its first byte
    end: int  # stream offset after its last byte
    proto: str  # SMTP, IMAP, POP3, HTTP, TLS, data
    text: str
    what: str = ""  # TLS: the content type; else empty
    info: dict[str, str] = field(default_factory=dict)  # TLS hellos: handshake, sni, version, cipher


def _vname(v: int) -> str:
    return VERSIONS.get(v, f"0x{v:04x}")


# -- in clear --------------------------------------------------------------------------------
def _mask(proto: str, text: str, state: dict[str, int]) -> str:
    """A client line with its secret starred; ``state`` counts SASL answers still to come."""
    words = text.split()
    up = [w.upper() for w in words]
    if state.get("sasl", 0) and _B64.match(text.strip() or "-"):
        state["sasl"] -= 1
        return f"{HIDDEN} (a SASL answer: base64, not encryption)"
    state["sasl"] = 0
    if proto in ("smtp", "pop3") and up[:1] == ["AUTH"] and len(up) >= 2:
        state["sasl"] = 2 if up[1] == "LOGIN" else 1
        if len(words) > 2:
            state["sasl"] -= 1
            return f"{words[0]} {words[1]} {HIDDEN}"
    elif proto == "imap" and len(up) >= 3 and up[1] == "AUTHENTICATE":
        state["sasl"] = 2 if up[2] == "LOGIN" else 1
        if len(words) > 3:
            state["sasl"] -= 1
            return " ".join(words[:3]) + f" {HIDDEN}"
    elif proto == "imap" and len(up) >= 4 and up[1] == "LOGIN":
        return " ".join(words[:3]) + f" {HIDDEN}"
    elif proto == "pop3" and up[:1] == ["PASS"]:
        return f"PASS {HIDDEN}"
    elif up[:1] in (["AUTHORIZATION:"], ["PROXY-AUTHORIZATION:"]) and len(words) > 1:
        return f"{words[0]} {words[1]} {HIDDEN}"
    return text


def _cut(text: str) -> str:
    return text if len(text) <= LINE_LIMIT else text[: LINE_LIMIT - 1] + "…"


def clear_messages(data: bytes, end: int, proto: str | None, direction: int) -> list[Message]:
    """The lines of ``data[:end]``; a mail's content (after DATA) and an IMAP literal are
    one message each, a line cut by the end of the capture another."""
    label = LABEL.get(proto or "", "data")
    out: list[Message] = []
    state: dict[str, int] = {}
    skip_to = 0
    in_data = False
    body_at = 0
    for ln in lines(data, 0, end):
        if ln.offset < skip_to:
            continue
        if in_data:
            if ln.text == ".":
                subject = re.search(rb"(?im)^Subject: ?([^\r\n]*)", data[body_at : ln.offset])
                about = f", Subject: {subject.group(1).decode('latin-1')}" if subject else ""
                out.append(
                    Message(
                        direction, body_at, ln.offset, label, f"(the mail itself: {ln.offset - body_at} bytes{about})"
                    )
                )
                out.append(Message(direction, ln.offset, ln.end, label, "."))
                in_data = False
            continue
        text = _mask(proto or "", ln.text, state) if direction == C2S else ln.text
        if not text and label == "HTTP":
            text = "(an empty line: the end of the headers)"
        out.append(Message(direction, ln.offset, ln.end, label, _cut(text)))
        if proto == "smtp" and direction == C2S and ln.text.upper() == "DATA":
            in_data, body_at = True, ln.end
        lit = _LITERAL.search(ln.text) if proto == "imap" else None
        if lit:
            n = int(lit.group(1))
            out.append(Message(direction, ln.end, ln.end + n, label, f"(a literal of {n} bytes: the message's text)"))
            skip_to = ln.end + n
    covered = max(out[-1].end if out else 0, skip_to)
    if in_data:
        out.append(Message(direction, body_at, end, label, f"(the mail itself, {end - body_at} bytes so far)"))
    elif covered < end:
        tail = _cut(data[covered:end].decode("latin-1"))
        out.append(Message(direction, covered, end, label, f"{tail} (no line end: cut by the capture)"))
    return out


# -- TLS -------------------------------------------------------------------------------------
def _server_version(s2c: bytes) -> int | None:
    recs, _ = records(s2c, encrypted=1)
    for r in recs:
        if r.type != CT_HANDSHAKE:
            continue
        for typ, body in handshake_messages(r.body):
            if typ == HS_SERVER_HELLO:
                h = parse_hello(body, client=False)
                return h.versions[0] if h.versions else h.legacy_version
    return None


def _handshake_text(typ: int, body: bytes, tls13: bool, info: dict[str, str]) -> str:
    """One handshake message in words; a hello's facts also go into ``info``."""
    name = HANDSHAKE_TYPES.get(typ, f"type {typ}")
    if typ == HS_CLIENT_HELLO:
        h = parse_hello(body, client=True)
        offers = ", ".join(_vname(v) for v in h.versions) if h.versions else _vname(h.legacy_version)
        sni = f"SNI {h.sni}" if h.sni else "no SNI"
        alpn = f", ALPN {', '.join(h.alpn)}" if h.alpn else ""
        info.update(handshake=name, sni=h.sni or "", offers=offers)
        return f"{name}: {sni}; offers {offers}; {len(h.offered)} cipher suites{alpn}"
    if typ == HS_SERVER_HELLO:
        h = parse_hello(body, client=False)
        version = _vname(h.versions[0] if h.versions else h.legacy_version)
        suite = cipher_name(h.ciphers[0]) if h.ciphers else "?"
        name = "HelloRetryRequest" if h.hrr else name
        info.update(handshake=name, version=version, cipher=suite)
        return f"{name}: chose {version}, {suite}"
    if typ == HS_CERTIFICATE and not tls13:
        try:
            certs = certificate_list(body, tls13=False)
        except (IndexError, ValueError):
            certs = []
        if certs:
            facts = cert_facts(bytes(certs[0]))
            return f"{name} (in clear before TLS 1.3): {facts.get('cn') or facts.get('subject', '?')}, {len(certs)} in the chain"
    return name


def _record_text(
    typ: int, body: bytes, encrypted: bool, tls13: bool, first_secret: bool, direction: int, info: dict[str, str]
) -> str:
    if typ == CT_APPDATA:
        if tls13 and first_secret:
            rest = (
                "EncryptedExtensions, Certificate, CertificateVerify, Finished"
                if direction == S2C
                else "the client's Finished"
            )
            return f"encrypted (TLS 1.3: the handshake goes on encrypted from here: {rest})"
        return "encrypted"
    if typ == CT_CCS:
        return "switch to the negotiated keys" + (" (TLS 1.3: sent only for middleboxes)" if tls13 else "")
    if typ == CT_ALERT:
        if encrypted or len(body) != 2:
            return "encrypted"
        return f"{'fatal' if body[0] == 2 else 'warning'}: {ALERT_NAMES.get(body[1], str(body[1]))}"
    if typ == CT_HANDSHAKE:
        if encrypted:
            return "encrypted (Finished)"
        msgs = handshake_messages(body)
        return "; ".join(_handshake_text(t, b, tls13, info) for t, b in msgs) if msgs else "a fragment of a message"
    return ""


def tls_messages(data: bytes, start: int, direction: int, version: int | None) -> list[Message]:
    """Every TLS record of ``data[start:]``, and what is left over when it is not TLS."""
    recs, stop = records(data[start:])
    tls13 = version == 0x0304
    out = []
    encrypted = False
    first_secret = True
    for r in recs:
        secret = r.type == CT_APPDATA or (encrypted and r.type in (CT_HANDSHAKE, CT_ALERT))
        info: dict[str, str] = {}
        text = _record_text(r.type, r.body, encrypted, tls13, first_secret and secret, direction, info)
        if secret:
            first_secret = False
        what = CONTENT_TYPES.get(r.type, f"type {r.type}")
        at = start + r.offset
        head = f"{what} (record {_vname(r.version)}, {len(r.body)} bytes)"
        out.append(Message(direction, at, at + 5 + len(r.body), "TLS", f"{head}: {text}" if text else head, what, info))
        if r.type == CT_CCS:
            encrypted = True
    if start + stop < len(data):
        n = len(data) - start - stop
        out.append(Message(direction, start + stop, len(data), "TLS", f"{n} bytes that do not make a whole TLS record"))
    return out


def stream_messages(flow: Flow) -> list[Message]:
    """Both directions' messages, each direction in stream order (clear text, then TLS)."""
    proto = protocol_of(flow)
    c2s, s2c = flow.stream(C2S).data, flow.stream(S2C).data
    tls_at: tuple[int, int] | None = None
    if looks_like_tls(c2s):
        tls_at = (0, 0)
    else:
        st = find_starttls(flow, proto)
        if st is not None and st.accepted:
            tls_at = (st.c2s_at, st.s2c_at)
    version = _server_version(s2c[tls_at[1] :]) if tls_at else None
    out: list[Message] = []
    for d, data in ((C2S, c2s), (S2C, s2c)):
        clear_end = tls_at[d] if tls_at else len(data)
        out += clear_messages(data, clear_end, proto, d)
        if tls_at:
            out += tls_messages(data, tls_at[d], d, version)
    return out


def by_packet(flow: Flow, msgs: list[Message], limit: int = 8) -> dict[int, list[dict[str, str]]]:
    """Packet number -> the messages that start in it (at most ``limit``, then how many
    more); a packet carrying only the middle of a message says whose."""
    out: dict[int, list[dict[str, str]]] = {}
    for d in (C2S, S2C):
        st = flow.stream(d)
        mine = sorted((m for m in msgs if m.direction == d), key=lambda m: m.offset)
        starts: dict[int, list[Message]] = {}
        for m in mine:
            pk = st.packet_at(m.offset)
            if pk is not None:
                starts.setdefault(pk, []).append(m)
        k = 0
        for off, pk in st.marks:
            got = starts.get(pk, [])
            if got:
                shown = [{"proto": m.proto, "what": m.what, "text": m.text, **m.info} for m in got[:limit]]
                if len(got) > limit:
                    shown.append({"proto": got[0].proto, "what": "", "text": f"… and {len(got) - limit} more"})
                out[pk] = shown
                continue
            while k < len(mine) and mine[k].end <= off:
                k += 1
            if k < len(mine) and mine[k].offset < off:
                m = mine[k]
                first = st.packet_at(m.offset)
                label = m.what or m.proto
                out[pk] = [
                    {"proto": m.proto, "what": "", "text": f"(more of the {label} that began in packet {first})"}
                ]
    return out
