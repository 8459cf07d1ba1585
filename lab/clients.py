"""Real protocol clients, run *inside* a lab host (``python -m lab.clients KIND JSON``).

Each client prints one JSON object on stdout: what happened, at which protocol stage,
with the server's codes and the TLS facts the client itself saw.  The harness decides
pass or fail; these only report.  Name resolution goes through the host's own
resolv.conf (bind-mounted over /etc/resolv.conf inside the host), so a broken DNS
setup breaks these clients the way it would break a student's mail program.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import json
import poplib
import ssl
import sys
import time
from email.message import EmailMessage
from typing import Any

from lab.attackclients import bruteforce, flood, scan, smtp_probe
from lab.clienttls import tls_context as _tls_context
from lab.clienttls import tls_facts as _tls_facts


class Dialogue(list[str]):
    """The protocol dialogue as the client saw it: ``C:`` lines it sent, ``S:`` lines
    it got.  Secrets never enter it (AUTH and LOGIN arguments are starred)."""

    def c(self, text: str) -> None:
        self.append(f"C: {text}")

    def s(self, code: int | str, message: str = "") -> None:
        lines = str(message).splitlines() or [""]
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            self.append(f"S: {code}{sep}{line}".rstrip())

    def raw(self, text: str) -> None:
        self.extend(f"S: {line}" for line in str(text).splitlines())

    def note(self, text: str) -> None:
        self.append(f"-- {text}")


def _message(p: dict[str, Any]) -> bytes:
    msg = EmailMessage()
    msg["From"] = p["sender"]
    msg["To"] = ", ".join(p["to"])
    msg["Subject"] = p["subject"]
    msg["Message-ID"] = p["message_id"]
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg.set_content(p["body"])
    for a in p.get("attach", []):
        msg.add_attachment(a["text"].encode(), maintype="application", subtype="octet-stream", filename=a["name"])
    return msg.as_bytes()


async def _greet(client: Any, p: dict[str, Any], out: dict[str, Any], talk: Dialogue) -> None:
    """Banner, EHLO, STARTTLS if asked and EHLO again: what the server offers, before
    and after TLS."""
    helo = p.get("helo") or client.local_hostname
    resp = await client.connect()
    talk.s(resp.code, resp.message)
    out["banner"] = f"{resp.code} {resp.message}"
    out["stage"] = "ehlo"
    talk.c(f"EHLO {helo}")
    resp = await client.ehlo()
    talk.s(resp.code, resp.message)
    out["ehlo_before_tls"] = sorted(client.esmtp_extensions)
    out["auth_before_tls"] = (
        sorted(m.upper() for m in client.server_auth_methods) if "auth" in client.esmtp_extensions else []
    )
    if p["tls"] == "starttls":
        out["stage"] = "starttls"
        talk.c("STARTTLS")
        resp = await client.starttls()
        talk.s(resp.code, resp.message)
        out["stage"] = "ehlo"
        facts = _tls_facts(client.transport.get_extra_info("ssl_object") if client.transport else None)
        talk.note(f"TLS {facts.get('tls_version')} {facts.get('cipher')}, certificate {facts.get('peer_subject')}")
        talk.c(f"EHLO {helo}")
        resp = await client.ehlo()
        talk.s(resp.code, resp.message)
    out["ehlo"] = sorted(client.esmtp_extensions)
    out["auth_methods"] = (
        sorted(m.upper() for m in client.server_auth_methods) if "auth" in client.esmtp_extensions else []
    )
    out.update(_tls_facts(client.transport.get_extra_info("ssl_object") if client.transport else None))


async def _transaction(client: Any, p: dict[str, Any], out: dict[str, Any], talk: Dialogue) -> None:
    """AUTH if a login is given, MAIL, RCPT for each recipient, DATA, QUIT."""
    import aiosmtplib

    if p.get("login"):
        out["stage"] = "auth"
        talk.c(f"AUTH ({', '.join(out['auth_methods']) or 'none offered'}) {p['login']} ********")
        resp = await client.login(p["login"], p["password"])
        talk.s(resp.code, resp.message)
    out["stage"] = "mail"
    talk.c(f"MAIL FROM:<{p['sender']}>")
    resp = await client.mail(p["sender"])
    talk.s(resp.code, resp.message)
    out["stage"] = "rcpt"
    refused = {}
    for rcpt in p["to"]:
        talk.c(f"RCPT TO:<{rcpt}>")
        try:
            resp = await client.rcpt(rcpt)
            talk.s(resp.code, resp.message)
        except aiosmtplib.SMTPRecipientRefused as exc:
            talk.s(exc.code, exc.message)
            refused[rcpt] = f"{exc.code} {exc.message}"
    if refused:
        out["refused"] = refused
        first = next(iter(refused.values()))
        out["code"] = int(first.split()[0])
        out["error"] = first
        talk.c("QUIT")
        await client.quit()
        return
    out["stage"] = "data"
    raw = _message(p)
    talk.c("DATA")
    talk.note(f"{len(raw)} bytes of message, Subject: {p['subject']}")
    resp = await client.data(raw)
    talk.s(resp.code, resp.message)
    out["code"] = resp.code
    out["reply"] = resp.message
    out["queue_id"] = resp.message.rsplit(" ", 1)[-1] if "queued as" in resp.message else None
    out["ok"] = True
    out["stage"] = "done"
    talk.c("QUIT")
    resp = await client.quit()
    talk.s(resp.code, resp.message)


async def _send(p: dict[str, Any]) -> dict[str, Any]:
    import aiosmtplib

    out: dict[str, Any] = {"ok": False, "stage": "connect"}
    client = aiosmtplib.SMTP(
        hostname=p["server"],
        port=p["port"],
        use_tls=p["tls"] == "implicit",
        start_tls=False,
        tls_context=_tls_context(p["ca_file"], p.get("keylog")),
        timeout=p.get("timeout", 20),
        local_hostname=p.get("helo"),
    )
    t0 = time.monotonic()
    talk = out["dialogue"] = Dialogue()
    try:
        await _greet(client, p, out, talk)
        await _transaction(client, p, out, talk)
    except aiosmtplib.SMTPResponseException as exc:
        talk.s(exc.code, exc.message)
        out["code"] = exc.code
        out["error"] = f"{exc.code} {exc.message}"
    except (TimeoutError, aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
        talk.note(f"{type(exc).__name__}: {exc}")
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        out["seconds"] = round(time.monotonic() - t0, 4)
        if client.is_connected:
            client.close()
    return out


def send(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_send(p))


def _summary(raw: bytes) -> dict[str, Any]:
    m = email.message_from_bytes(raw, policy=email.policy.default)
    body = m.get_body(preferencelist=("plain",))
    return {
        "message_id": str(m.get("Message-ID", "")).strip(),
        "subject": str(m.get("Subject", "")),
        "from": str(m.get("From", "")),
        "body": body.get_content() if body else "",
        "received": len(m.get_all("Received", []) or []),
    }


def fetch(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "stage": "connect", "messages": []}
    talk = out["dialogue"] = Dialogue()
    t0 = time.monotonic()
    try:
        if p["protocol"].startswith("imap"):
            _fetch_imap(p, out, talk)
        else:
            _fetch_pop(p, out, talk)
        out["ok"] = True
        out["stage"] = "done"
    except (imaplib.IMAP4.error, poplib.error_proto) as exc:
        talk.raw(str(exc))
        out["error"] = f"{type(exc).__name__}: {exc}"
    except (OSError, ssl.SSLError) as exc:
        talk.note(f"{type(exc).__name__}: {exc}")
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = round(time.monotonic() - t0, 4)
    return out


def _said(data: Any) -> str:
    parts = data if isinstance(data, list) else [data]
    return " ".join(x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in parts if x is not None)


def _tls_note(out: dict[str, Any], talk: Dialogue, sock: Any) -> None:
    if isinstance(sock, ssl.SSLSocket):
        out.update(_tls_facts(sock))
        talk.note(f"TLS {out.get('tls_version')} {out.get('cipher')}, certificate {out.get('peer_subject')}")


def _fetch_imap(p: dict[str, Any], out: dict[str, Any], talk: Dialogue) -> None:
    ctx = _tls_context(p["ca_file"], p.get("keylog"))
    proto, timeout = p["protocol"], p.get("timeout", 20)
    port = p.get("port") or (993 if proto == "imaps" else 143)
    conn: imaplib.IMAP4  # IMAP4_SSL is a subclass
    typ: str
    data: Any
    if proto == "imaps":
        conn = imaplib.IMAP4_SSL(p["server"], port, ssl_context=ctx, timeout=timeout)
        _tls_note(out, talk, conn.sock)
        talk.raw(conn.welcome.decode(errors="replace"))
    else:
        conn = imaplib.IMAP4(p["server"], port, timeout=timeout)
        talk.raw(conn.welcome.decode(errors="replace"))
        if not p.get("plaintext"):
            out["stage"] = "starttls"
            talk.c("a STARTTLS")
            typ, data = conn.starttls(ssl_context=ctx)
            talk.raw(f"a {typ} {_said(data)}")
            _tls_note(out, talk, conn.sock)
    out["greeting"] = conn.welcome.decode(errors="replace")
    out["stage"] = "auth"
    if "LOGINDISABLED" in conn.capabilities:  # RFC 3501: a client must not send LOGIN now
        talk.note("the server advertises LOGINDISABLED: no LOGIN sent, the password stays here")
        raise imaplib.IMAP4.error("LOGINDISABLED: the server refuses logins on this connection (no TLS)")
    talk.c(f"b LOGIN {p['login']} ********")
    typ, data = conn.login(p["login"], p["password"])
    talk.raw(f"b {typ} {_said(data)}")
    out["stage"] = "select"
    talk.c("c EXAMINE INBOX")
    typ, data = conn.select("INBOX", readonly=True)
    talk.raw(f"* {_said(data)} EXISTS\nc {typ}")
    talk.c("d SEARCH ALL")
    _typ, data = conn.search(None, "ALL")
    talk.raw(f"* SEARCH {_said(data)}\nd OK")
    for num in data[0].split():
        talk.c(f"e FETCH {num.decode()} (RFC822)")
        _typ, parts = conn.fetch(num, "(RFC822)")
        raw = next(x[1] for x in parts if isinstance(x, tuple))
        summary = _summary(raw)
        talk.note(f"{len(raw)} bytes, Subject: {summary['subject']}, Message-ID: {summary['message_id']}")
        out["messages"].append(summary)
    talk.c("f LOGOUT")
    typ, data = conn.logout()
    talk.raw(f"* {typ} {_said(data)}")


def _capa(conn: poplib.POP3) -> dict[str, Any]:
    try:
        return conn.capa()
    except poplib.error_proto:  # a server without CAPA: assume USER, as clients do
        return {"USER": []}


def _fetch_pop(p: dict[str, Any], out: dict[str, Any], talk: Dialogue) -> None:
    ctx = _tls_context(p["ca_file"], p.get("keylog"))
    proto, timeout = p["protocol"], p.get("timeout", 20)
    port = p.get("port") or (995 if proto == "pop3s" else 110)
    conn: poplib.POP3  # POP3_SSL is a subclass
    if proto == "pop3s":
        conn = poplib.POP3_SSL(p["server"], port, context=ctx, timeout=timeout)
        _tls_note(out, talk, conn.sock)
        talk.raw(conn.getwelcome().decode(errors="replace"))
    else:
        conn = poplib.POP3(p["server"], port, timeout=timeout)
        talk.raw(conn.getwelcome().decode(errors="replace"))
        if not p.get("plaintext"):
            out["stage"] = "starttls"
            talk.c("STLS")
            talk.raw(_said(conn.stls(context=ctx)))
            _tls_note(out, talk, conn.sock)
    out["greeting"] = conn.getwelcome().decode(errors="replace")
    out["stage"] = "auth"
    if not isinstance(conn.sock, ssl.SSLSocket) and "USER" not in _capa(conn):
        talk.note("the server's CAPA offers no USER on this connection: no password sent")
        raise poplib.error_proto("-ERR USER not offered: the server refuses logins on this connection (no TLS)")
    talk.c(f"USER {p['login']}")
    talk.raw(_said(conn.user(p["login"])))
    talk.c("PASS ********")
    talk.raw(_said(conn.pass_(p["password"])))
    out["stage"] = "list"
    talk.c("STAT")
    count, size = conn.stat()
    talk.raw(f"+OK {count} {size}")
    for i in range(1, count + 1):
        talk.c(f"RETR {i}")
        _, lines, octets = conn.retr(i)
        summary = _summary(b"\r\n".join(lines))
        talk.note(f"{octets} bytes, Subject: {summary['subject']}, Message-ID: {summary['message_id']}")
        out["messages"].append(summary)
    talk.c("QUIT")
    talk.raw(_said(conn.quit()))


def resolve(p: dict[str, Any]) -> dict[str, Any]:
    import dns.exception
    import dns.flags
    import dns.rcode
    import dns.resolver

    out: dict[str, Any] = {"ok": False}
    res = dns.resolver.Resolver(configure=p.get("server") is None)
    if p.get("server"):
        res.nameservers = [p["server"]]
    res.lifetime = 5
    out["nameservers"] = [str(s) for s in res.nameservers]
    t0 = time.monotonic()
    try:
        res.use_edns(0, dns.flags.DO, 1232)
        ans = res.resolve(p["query"], p["type"], search=True, raise_on_no_answer=False)
        out["rcode"] = dns.rcode.to_text(ans.response.rcode())
        out["ad"] = bool(ans.response.flags & dns.flags.AD)
        out["answers"] = [r.to_text() for r in ans] if ans.rrset is not None else []
        out["ok"] = True
    except dns.resolver.NXDOMAIN:
        out["rcode"] = "NXDOMAIN"
        out["answers"] = []
        out["ok"] = True
    except dns.resolver.NoNameservers as exc:
        out["rcode"] = "SERVFAIL"
        out["error"] = str(exc)
    except dns.exception.DNSException as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = round(time.monotonic() - t0, 4)
    return out


def probe(p: dict[str, Any]) -> dict[str, Any]:
    """Is a port open (something answers), closed (refused) or filtered (silence)?

    UDP: a DNS server ignores garbage, so port 53 is asked a real question."""
    import socket

    ip, port, proto, timeout = p["ip"], int(p["port"]), p["proto"], float(p["timeout"])
    t0 = time.monotonic()
    if proto == "tcp":
        s = socket.socket()
        s.settimeout(timeout)
        try:
            s.connect((ip, port))
            state = "open"
        except ConnectionRefusedError:
            state = "closed"
        except TimeoutError:
            state = "filtered"
        except OSError as e:
            state = "filtered" if e.errno in (113, 101) else f"error: {e}"
        finally:
            s.close()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.connect((ip, port))
        payload = bytes.fromhex("123401000001000000000000000006000001") if port == 53 else b"mail-lab probe"
        try:
            s.send(payload)
            s.recv(512)
            state = "open"
        except ConnectionRefusedError:
            state = "closed"
        except TimeoutError:
            state = "filtered"
        finally:
            s.close()
    return {"state": state, "seconds": round(time.monotonic() - t0, 4)}


def listen(p: dict[str, Any]) -> dict[str, Any]:
    """A listener for a probe: says 'listening' (or 'inuse' when a daemon of the lab
    already holds the port) on its own line, then accepts until it is killed."""
    import errno
    import socket

    port, proto = int(p["port"]), p["proto"]
    s = socket.socket() if proto == "tcp" else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("0.0.0.0", port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            print("inuse", flush=True)
            return {"state": "inuse"}
        raise
    print("listening", flush=True)
    if proto == "tcp":
        s.listen(16)
        while True:
            c, _ = s.accept()
            c.close()
    while True:
        _, addr = s.recvfrom(2048)
        s.sendto(b"ok", addr)


#: OpenSSL's verify codes, as the reason a TLS client refuses a server
VERIFY_REASONS = {
    10: "expired",
    62: "wrong-name",
    18: "self-signed",
    19: "self-signed",
    20: "untrusted",
    21: "untrusted",
}
_STARTTLS = {25: "smtp", 587: "smtp", 143: "imap", 110: "pop3"}


def _plain_then_starttls(server: str, port: int) -> Any:
    """A TCP connection, upgraded to the point of TLS (STARTTLS on the mail ports)."""
    import socket

    s = socket.create_connection((server, port), timeout=10)
    proto = _STARTTLS.get(port)
    if proto is None:
        return s
    f = s.makefile("rb")
    f.readline()
    if proto == "smtp":
        s.sendall(b"EHLO tls-probe.invalid\r\n")
        while (line := f.readline()) and line[3:4] == b"-":
            pass
        s.sendall(b"STARTTLS\r\n")
    else:
        s.sendall(b"a STARTTLS\r\n" if proto == "imap" else b"STLS\r\n")
    reply = f.readline()
    if not (reply.startswith(b"220") or b"OK" in reply[:8]):
        raise OSError(f"STARTTLS refused: {reply.decode(errors='replace').strip()}")
    return s


def tls_probe(p: dict[str, Any]) -> dict[str, Any]:
    """Connect and verify like a mail program or a browser; say why a server is refused,
    and show the certificate it presented (read a second time without verifying)."""
    from lab.capture.tls import cert_facts

    out: dict[str, Any] = {"ok": False, "server": p["server"], "port": p["port"]}
    t0 = time.monotonic()
    try:
        ctx = _tls_context(p["ca_file"], p.get("keylog"))
        try:
            with ctx.wrap_socket(_plain_then_starttls(p["server"], p["port"]), server_hostname=p["server"]) as t:
                out.update(_tls_facts(t))
                out["verified"] = True
                out["reason"] = "trusted"
        except ssl.SSLCertVerificationError as exc:
            out["verified"] = False
            out["verify_code"] = exc.verify_code
            out["verify_message"] = exc.verify_message
            out["reason"] = VERIFY_REASONS.get(exc.verify_code, "untrusted")
        raw = ssl.create_default_context()
        raw.check_hostname = False
        raw.verify_mode = ssl.CERT_NONE
        with raw.wrap_socket(_plain_then_starttls(p["server"], p["port"]), server_hostname=p["server"]) as t:
            der = t.getpeercert(binary_form=True)
        out["certificate"] = cert_facts(der) if der else {}
        out["ok"] = True
    except (OSError, ssl.SSLError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = round(time.monotonic() - t0, 4)
    return out


KINDS = {
    "tls": tls_probe,
    "send": send,
    "fetch": fetch,
    "dns": resolve,
    "smtp": smtp_probe,
    "flood": flood,
    "probe": probe,
    "listen": listen,
    "bruteforce": bruteforce,
    "scan": scan,
}


def main(argv: list[str]) -> int:
    kind, payload = argv[0], json.loads(argv[1])
    result = KINDS[kind](payload)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
