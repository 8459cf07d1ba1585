"""The plaintext side of mail protocols: STARTTLS boundaries and credentials in clear.

Works on a TCP flow's two reassembled streams (``lab.capture.pcap.Flow``).  The protocol
is known from the server port, else guessed from the server's greeting.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lab.capture.pcap import C2S, S2C, Flow
from lab.capture.tls import looks_like_tls

PORT_PROTOCOL = {
    25: "smtp",
    587: "smtp",
    465: "smtp",
    143: "imap",
    993: "imap",
    110: "pop3",
    995: "pop3",
    443: "https",
    80: "http",
    3128: "http-proxy",
    22: "ssh",
    5232: "https",
}
IMPLICIT_TLS_PORTS = frozenset({465, 993, 995, 443})

_LINE = re.compile(rb"[^\n]*\n")


@dataclass
class Line:
    offset: int
    text: str  # without the line end
    end: int  # offset after the line end


def lines(data: bytes, start: int = 0, stop: int | None = None) -> Iterator[Line]:
    """Complete lines of ``data[start:stop]``, lazily; a trailing partial line is left out."""
    for m in _LINE.finditer(data, start, len(data) if stop is None else stop):
        yield Line(m.start(), m.group().rstrip(b"\r\n").decode("latin-1"), m.end())


def protocol_of(flow: Flow) -> str | None:
    if flow.sport in PORT_PROTOCOL:
        return PORT_PROTOCOL[flow.sport]
    head = flow.s2c[:8]
    if head.startswith(b"220"):
        return "smtp"
    if head.startswith(b"* OK") or head.startswith(b"* PREAUTH"):
        return "imap"
    if head.startswith(b"+OK"):
        return "pop3"
    return None


@dataclass
class StartTLS:
    command_at: int  # c2s offset of the STARTTLS/STLS command
    command_packet: int | None
    reply: str  # the server's reply line
    reply_packet: int | None
    accepted: bool
    c2s_at: int  # where TLS begins in each direction (when accepted)
    s2c_at: int


_STARTTLS_CMD = {
    "smtp": re.compile(r"^STARTTLS\s*$", re.I),
    "imap": re.compile(r"^(\S+) STARTTLS\s*$", re.I),
    "pop3": re.compile(r"^STLS\s*$", re.I),
}
# The replies the brief names, as a fallback when packet order cannot place the reply
_READY = {
    "smtp": re.compile(r"^220[ -]"),
    "imap": re.compile(r"^\S+ OK\b", re.I),
    "pop3": re.compile(r"^\+OK\b"),
}


def find_starttls(flow: Flow, proto: str | None = None) -> StartTLS | None:
    """Locate the STARTTLS exchange: the client's command and the server's reply to it.

    The reply is the first server line *sent after the packet carrying the command*
    (packet numbers are in capture order), so an SMTP banner ``220 ...`` is never
    mistaken for ``220 2.0.0 Ready to start TLS``.
    """
    proto = proto or protocol_of(flow)
    key = f"starttls:{proto}"
    if key not in flow.memo:
        flow.memo[key] = _find_starttls(flow, proto)
    return flow.memo[key]


def _find_connect(flow: Flow) -> StartTLS | None:
    """A proxy's CONNECT: TLS begins after the request's headers and after the reply's."""
    c2s_stream, s2c_stream = flow.stream(C2S), flow.stream(S2C)
    c2s, s2c = c2s_stream.data, s2c_stream.data
    if not c2s.startswith(b"CONNECT "):
        return None
    c_end = c2s.find(b"\r\n\r\n")
    if c_end < 0:
        return None
    cmd_packet = c2s_stream.packet_at(0)
    start = s2c_stream.offset_after(cmd_packet)
    s_end = s2c.find(b"\r\n\r\n", start)
    status = s2c[start : s2c.find(b"\r\n", start)].decode("latin-1") if start < len(s2c) else ""
    if s_end < 0:
        return StartTLS(0, cmd_packet, status, None, False, c_end + 4, len(s2c))
    accepted = bool(re.match(r"HTTP/1\.[01] 200", status))
    return StartTLS(0, cmd_packet, status, s2c_stream.packet_at(start), accepted, c_end + 4, s_end + 4)


def _find_starttls(flow: Flow, proto: str | None) -> StartTLS | None:
    if proto == "http-proxy":
        return _find_connect(flow)
    if proto not in _STARTTLS_CMD:
        return None
    c2s_stream, s2c_stream = flow.stream(C2S), flow.stream(S2C)
    c2s, s2c = c2s_stream.data, s2c_stream.data
    cmd = None
    for ln in lines(c2s):
        if looks_like_tls(c2s[ln.offset : ln.offset + 3]):
            break
        m = _STARTTLS_CMD[proto].match(ln.text)
        if m:
            cmd = (ln, m)
            break
    if cmd is None:
        return None
    ln, m = cmd
    cmd_packet = c2s_stream.packet_at(ln.offset)
    tag = m.group(1) if proto == "imap" else None
    reply = None
    for r in lines(s2c, s2c_stream.offset_after(cmd_packet)):  # replies sent after the command
        if proto == "imap" and not r.text.startswith(f"{tag} "):
            continue  # untagged lines before the tagged reply
        if proto == "smtp" and len(r.text) > 3 and r.text[3] == "-":
            continue  # a multi-line reply: wait for its last line
        reply = r
        break
    if reply is None:
        return StartTLS(ln.offset, cmd_packet, "", None, False, ln.end, len(s2c))
    accepted = bool(_READY[proto].match(reply.text))
    return StartTLS(ln.offset, cmd_packet, reply.text, s2c_stream.packet_at(reply.offset), accepted, ln.end, reply.end)


# -- credentials in clear ----------------------------------------------------------------------
def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _plain_user(text: str) -> str | None:
    raw = _b64(text)
    if raw is None or raw.count(b"\0") != 2:
        return None
    return raw.split(b"\0")[1].decode(errors="replace")


def _imap_args(rest: str) -> list[str]:
    """IMAP atoms and quoted strings (literals are reported as such)."""
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|(\{\d+\+?\})|(\S+)', rest):
        if m.group(1) is not None:
            out.append(re.sub(r"\\(.)", r"\1", m.group(1)))
        else:
            out.append(m.group(2) or m.group(3))
    return out


@dataclass
class Credential:
    offset: int  # c2s offset of the line that carried it
    protocol: str
    command: str
    user: str | None
    what: str
    evidence: str  # the line(s), secrets masked
    tag: str | None = None


_HTTP_BASIC = re.compile(rb"(?im)^authorization:[ \t]*basic[ \t]+([A-Za-z0-9+/=]+)")
_HTTP_FORM = re.compile(rb"(?i)(?:^|[&?\s])(_pass|pass|password|passwd|pwd)=([^&\s]+)")
_HTTP_USER = re.compile(rb"(?i)(?:^|[&?\s])(_user|user|username|login)=([^&\s]+)")


def scan_http(data: bytes) -> list[Credential]:
    """Passwords in plaintext HTTP requests: Basic authorization, or a login form's field
    (Roundcube posts ``_user`` and ``_pass``)."""
    found = []
    for m in _HTTP_BASIC.finditer(data):
        raw = _b64(m.group(1).decode())
        user = raw.split(b":", 1)[0].decode(errors="replace") if raw else None
        found.append(
            Credential(
                m.start(),
                "http",
                "Authorization: Basic",
                user,
                f"HTTP Basic: user {user!r} and password in clear",
                "Authorization: Basic ********",
            )
        )
    for m in _HTTP_FORM.finditer(data):
        u = _HTTP_USER.search(data, max(0, m.start() - 2000), m.start() + 2000)
        user = u.group(2).decode(errors="replace") if u else None
        field = m.group(1).decode()
        found.append(
            Credential(
                m.start(1),
                "http",
                "POST form",
                user,
                f"HTTP form field {field}: password in clear",
                f"{field}=********",
            )
        )
    return found


def scan_credentials(data: bytes, proto: str) -> list[Credential]:
    """Credentials in the plaintext client-to-server bytes of one mail session."""
    if proto == "http":
        return scan_http(data)
    found: list[Credential] = []
    ls = list(lines(data))
    i = 0
    pop_user: tuple[int, str] | None = None
    while i < len(ls):
        ln = ls[i]
        words = ln.text.split()
        up = [w.upper() for w in words]
        sasl = _sasl_start(proto, words, up)
        if sasl is not None:
            cred, used = _sasl_credential(proto, ln, words, *sasl, ls[i + 1 : i + 3])
            if cred is not None:
                found.append(cred)
            i += used
            continue
        if proto == "imap" and len(up) >= 2 and up[1] == "LOGIN":
            args = _imap_args(ln.text.split(None, 2)[2] if len(words) > 2 else "")
            user = args[0] if args else None
            found.append(
                Credential(
                    ln.offset,
                    proto,
                    "IMAP LOGIN",
                    user,
                    f"IMAP LOGIN: user {user!r} and password in clear",
                    f"{words[0]} LOGIN {user} ********",
                    words[0],
                )
            )
        elif proto == "pop3" and up[:1] == ["USER"] and len(words) >= 2:
            pop_user = (ln.offset, words[1])
        elif proto == "pop3" and up[:1] == ["PASS"]:
            user = pop_user[1] if pop_user else None
            found.append(
                Credential(
                    ln.offset,
                    proto,
                    "POP3 USER/PASS",
                    user,
                    f"POP3 USER/PASS: user {user!r} and password in clear",
                    f"USER {user} / PASS ********",
                )
            )
        i += 1
    return found


def _sasl_start(proto: str, words: list[str], up: list[str]) -> tuple[str, str | None, str | None] | None:
    """(mechanism, initial response, IMAP tag) when the line starts a SASL exchange.

    SMTP and POP3 say ``AUTH MECH [initial]``, IMAP ``tag AUTHENTICATE MECH [initial]``:
    one place knows both spellings, so the mechanisms are handled once for all three.
    """
    if proto in ("smtp", "pop3") and up[:1] == ["AUTH"] and len(up) >= 2:
        return up[1], (words[2] if len(words) > 2 else None), None
    if proto == "imap" and len(up) >= 3 and up[1] == "AUTHENTICATE":
        return up[2], (words[3] if len(words) > 3 else None), words[0]
    return None


def _sasl_credential(
    proto: str,
    ln: Line,
    words: list[str],
    mech: str,
    initial: str | None,
    tag: str | None,
    following: list[Line],
) -> tuple[Credential | None, int]:
    """The credential a SASL exchange gave away, and how many lines it took (at least 1).

    The client's answers to the server's challenges are base64 lines of their own: the
    scan must skip them, or a base64 answer could be read as a command.  A PLAIN or
    LOGIN exchange that never got its answers (cancelled, or cut) counts one line only.
    """
    nxt = following[0] if following else None
    nxt2 = following[1] if len(following) > 1 else None
    label = f"{proto.upper()} {'AUTHENTICATE' if proto == 'imap' else 'AUTH'} {mech}"
    command = " ".join(words[: 2 if proto != "imap" else 3])
    if mech == "PLAIN":
        blob: str | None
        if initial and initial != "=":
            blob, consumed = initial, 0
        else:
            blob, consumed = (nxt.text if nxt else None), 1
        user = _plain_user(blob) if blob else None
        if user is None:
            return None, 1  # not a PLAIN response: a cancelled exchange
        what = f"{label}: user {user!r} and password in clear (base64 is not encryption)"
        evidence = f"{command} <base64 of user and password>"
        return Credential(ln.offset, proto, label, user, what, evidence, tag), 1 + consumed
    if mech == "LOGIN":
        user_b64: str | None
        if initial:
            user_b64, pw_line, consumed = initial, nxt, 1
        else:
            user_b64, pw_line, consumed = (nxt.text if nxt else None), nxt2, 2
        raw_user = _b64(user_b64) if user_b64 else None
        if raw_user is None or pw_line is None or _b64(pw_line.text) is None:
            return None, 1  # no base64 answers followed: nothing crossed
        user = raw_user.decode(errors="replace")
        what = f"{label}: user {user!r} and password in clear (base64 is not encryption)"
        evidence = f"{command}, then <base64 user>, <base64 password>"
        return Credential(ln.offset, proto, label, user, what, evidence, tag), 1 + consumed
    if mech in ("XOAUTH2", "OAUTHBEARER"):
        evidence = f"{' '.join(words[:2])} <token>"
        return Credential(ln.offset, proto, label, None, f"{label}: bearer token in clear", evidence, tag), 1
    return None, 1


def reply_after(flow: Flow, c2s_offset: int, tag: str | None = None) -> tuple[str, int | None] | None:
    """The server's first reply line sent after the packet holding ``c2s_offset``."""
    c2s_stream, s2c_stream = flow.stream(C2S), flow.stream(S2C)
    pkt = c2s_stream.packet_at(c2s_offset)
    for r in lines(s2c_stream.data, s2c_stream.offset_after(pkt)):
        rp = s2c_stream.packet_at(r.offset)
        if tag is not None and not r.text.startswith(f"{tag} "):
            continue
        if looks_like_tls(s2c_stream.data[r.offset : r.offset + 3]):
            return None
        return r.text, rp
    return None


def to_dict(obj: Any) -> dict[str, Any]:
    return dict(obj.__dict__)
