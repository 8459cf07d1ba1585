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


def _tls_context(ca_file: str, keylog: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)  # verification stays on
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if keylog:
        ctx.keylog_filename = keylog
    return ctx


def _tls_facts(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    try:
        cipher = obj.cipher()
        cert = obj.getpeercert() or {}
        return {
            "tls_version": obj.version(),
            "cipher": cipher[0] if cipher else None,
            "peer_subject": dict(x[0] for x in cert.get("subject", ())).get("commonName"),
            "peer_san": [v for k, v in cert.get("subjectAltName", ())],
        }
    except Exception:
        return {}


async def _send(p: dict[str, Any]) -> dict[str, Any]:
    import aiosmtplib

    out: dict[str, Any] = {"ok": False, "stage": "connect"}
    msg = EmailMessage()
    msg["From"] = p["sender"]
    msg["To"] = ", ".join(p["to"])
    msg["Subject"] = p["subject"]
    msg["Message-ID"] = p["message_id"]
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg.set_content(p["body"])
    ctx = _tls_context(p["ca_file"], p.get("keylog"))
    implicit = p["tls"] == "implicit"
    client = aiosmtplib.SMTP(
        hostname=p["server"],
        port=p["port"],
        use_tls=implicit,
        start_tls=False,
        tls_context=ctx,
        timeout=p.get("timeout", 20),
        local_hostname=p.get("helo"),
    )
    t0 = time.monotonic()
    try:
        resp = await client.connect()
        out["banner"] = f"{resp.code} {resp.message}"
        out["stage"] = "ehlo"
        await client.ehlo()
        out["ehlo_before_tls"] = sorted(client.esmtp_extensions)
        out["auth_before_tls"] = (
            sorted(m.upper() for m in client.server_auth_methods) if "auth" in client.esmtp_extensions else []
        )
        if p["tls"] == "starttls":
            out["stage"] = "starttls"
            await client.starttls()
            out["stage"] = "ehlo"
            await client.ehlo()
        out["ehlo"] = sorted(client.esmtp_extensions)
        out["auth_methods"] = (
            sorted(m.upper() for m in client.server_auth_methods) if "auth" in client.esmtp_extensions else []
        )
        transport = client.transport
        out.update(_tls_facts(transport.get_extra_info("ssl_object") if transport else None))
        if p.get("login"):
            out["stage"] = "auth"
            await client.login(p["login"], p["password"])
        out["stage"] = "mail"
        _code, _text = await client.mail(p["sender"])
        out["stage"] = "rcpt"
        refused = {}
        for rcpt in p["to"]:
            try:
                await client.rcpt(rcpt)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refused[rcpt] = f"{exc.code} {exc.message}"
        if refused:
            out["refused"] = refused
            first = next(iter(refused.values()))
            out["code"] = int(first.split()[0])
            out["error"] = first
            await client.quit()
            return out
        out["stage"] = "data"
        resp = await client.data(msg.as_bytes())
        out["code"] = resp.code
        out["reply"] = resp.message
        out["queue_id"] = resp.message.rsplit(" ", 1)[-1] if "queued as" in resp.message else None
        out["ok"] = True
        out["stage"] = "done"
        await client.quit()
    except aiosmtplib.SMTPResponseException as exc:
        out["code"] = exc.code
        out["error"] = f"{exc.code} {exc.message}"
    except (TimeoutError, aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
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
    ctx = _tls_context(p["ca_file"], p.get("keylog"))
    proto = p["protocol"]
    t0 = time.monotonic()
    conn: imaplib.IMAP4 | poplib.POP3  # IMAP4_SSL / POP3_SSL are subclasses
    try:
        if proto.startswith("imap"):
            port = p.get("port") or (993 if proto == "imaps" else 143)
            if proto == "imaps":
                conn = imaplib.IMAP4_SSL(p["server"], port, ssl_context=ctx, timeout=p.get("timeout", 20))
            else:
                conn = imaplib.IMAP4(p["server"], port, timeout=p.get("timeout", 20))
                if not p.get("plaintext"):
                    out["stage"] = "starttls"
                    conn.starttls(ssl_context=ctx)
            out["greeting"] = conn.welcome.decode(errors="replace")
            out.update(_tls_facts(conn.sock if isinstance(conn.sock, ssl.SSLSocket) else None))
            out["stage"] = "auth"
            conn.login(p["login"], p["password"])
            out["stage"] = "select"
            conn.select("INBOX", readonly=True)
            _typ, data = conn.search(None, "ALL")
            for num in data[0].split():
                _typ, parts = conn.fetch(num, "(RFC822)")
                raw = next(x[1] for x in parts if isinstance(x, tuple))
                out["messages"].append(_summary(raw))
            conn.logout()
        else:
            port = p.get("port") or (995 if proto == "pop3s" else 110)
            if proto == "pop3s":
                conn = poplib.POP3_SSL(p["server"], port, context=ctx, timeout=p.get("timeout", 20))
            else:
                conn = poplib.POP3(p["server"], port, timeout=p.get("timeout", 20))
                if not p.get("plaintext"):
                    out["stage"] = "starttls"
                    conn.stls(context=ctx)
            out["greeting"] = conn.getwelcome().decode(errors="replace")
            out.update(_tls_facts(conn.sock if isinstance(conn.sock, ssl.SSLSocket) else None))
            out["stage"] = "auth"
            conn.user(p["login"])
            conn.pass_(p["password"])
            out["stage"] = "list"
            count, _ = conn.stat()
            for i in range(1, count + 1):
                _, lines, _ = conn.retr(i)
                out["messages"].append(_summary(b"\r\n".join(lines)))
            conn.quit()
        out["ok"] = True
        out["stage"] = "done"
    except (imaplib.IMAP4.error, poplib.error_proto) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    except (OSError, ssl.SSLError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = round(time.monotonic() - t0, 4)
    return out


def resolve(p: dict[str, Any]) -> dict[str, Any]:
    import dns.exception
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
        ans = res.resolve(p["query"], p["type"], search=True, raise_on_no_answer=False)
        out["rcode"] = dns.rcode.to_text(ans.response.rcode())
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


def smtp_probe(p: dict[str, Any]) -> dict[str, Any]:
    """A raw SMTP dialogue, exactly as written: what a relay tester or a spammer
    sends.  EHLO (and STARTTLS if asked), MAIL FROM, RCPT TO for each recipient,
    never DATA.  Records every reply code."""
    import socket

    out: dict[str, Any] = {"ok": False, "stage": "connect", "replies": []}
    t0 = time.monotonic()

    def reply(f: Any) -> tuple[int, str]:
        lines = []
        while True:
            line = f.readline().decode(errors="replace")
            if not line:
                raise OSError("connection closed")
            lines.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                break
        return int(lines[-1][:3]), "\n".join(lines)

    def cmd(sock: Any, f: Any, text: str) -> tuple[int, str]:
        sock.sendall(text.encode() + b"\r\n")
        code, msg = reply(f)
        out["replies"].append({"sent": text, "code": code, "reply": msg})
        return code, msg

    def extensions(text: str) -> list[str]:
        return sorted({ln[4:].split()[0].upper() for ln in text.splitlines()[1:] if len(ln) > 4})

    try:
        sock = socket.create_connection((p["server"], p["port"]), timeout=p.get("timeout", 10))
        f = sock.makefile("rb")
        code, banner = reply(f)
        out["banner"] = banner
        out["stage"] = "ehlo"
        code, text = cmd(sock, f, f"EHLO {p.get('helo', 'probe.invalid')}")
        out["ehlo_before_tls"] = extensions(text)
        out["ehlo"] = out["ehlo_before_tls"]
        if p.get("starttls"):
            out["stage"] = "starttls"
            code, _ = cmd(sock, f, "STARTTLS")
            if code != 220:
                raise OSError(f"STARTTLS refused ({code})")
            ctx = _tls_context(p["ca_file"], p.get("keylog"))
            sock = ctx.wrap_socket(sock, server_hostname=p["server"])
            f = sock.makefile("rb")
            out.update(_tls_facts(sock))
            code, text = cmd(sock, f, f"EHLO {p.get('helo', 'probe.invalid')}")
            out["ehlo"] = extensions(text)
        out["stage"] = "mail"
        code, _ = cmd(sock, f, f"MAIL FROM:{p['mail_from']}")
        out["mail_code"] = code
        out["rcpt"] = {}
        if code < 400:
            out["stage"] = "rcpt"
            for rcpt in p["rcpt"]:
                code, text = cmd(sock, f, f"RCPT TO:{rcpt}")
                out["rcpt"][rcpt] = {"code": code, "reply": text}
            cmd(sock, f, "RSET")
        cmd(sock, f, "QUIT")
        sock.close()
        out["ok"] = True
        out["stage"] = "done"
    except (OSError, ssl.SSLError, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = round(time.monotonic() - t0, 4)
    return out


async def _flood(p: dict[str, Any]) -> dict[str, Any]:
    """Many messages over several concurrent authenticated connections."""
    import aiosmtplib

    ctx = _tls_context(p["ca_file"], None)
    ids = [f"<{p['label']}-{i}.{p['run_id']}@mail-lab.test>" for i in range(p["count"])]
    accepted: list[str] = []
    errors: list[str] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for mid in ids:
        queue.put_nowait(mid)

    async def worker() -> None:
        client = aiosmtplib.SMTP(
            hostname=p["server"],
            port=p["port"],
            start_tls=False,
            tls_context=ctx,
            timeout=p.get("timeout", 60),
            local_hostname=p.get("helo"),
        )
        try:
            await client.connect()
            await client.ehlo()
            await client.starttls()
            await client.ehlo()
            await client.login(p["login"], p["password"])
            while not queue.empty():
                mid = queue.get_nowait()
                msg = EmailMessage()
                msg["From"] = p["sender"]
                msg["To"] = ", ".join(p["to"])
                msg["Subject"] = f"{p['subject']} {mid}"
                msg["Message-ID"] = mid
                msg.set_content(p["body"])
                try:
                    await client.send_message(msg)
                    accepted.append(mid)
                except aiosmtplib.SMTPException as exc:
                    errors.append(f"{mid}: {exc}")
            await client.quit()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            errors.append(f"connection: {type(exc).__name__}: {exc}")
        finally:
            if client.is_connected:
                client.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(p["connections"])))
    return {
        "ok": not errors and len(accepted) == len(ids),
        "accepted": accepted,
        "errors": errors[:50],
        "error_count": len(errors),
        "seconds": round(time.monotonic() - t0, 4),
    }


def flood(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_flood(p))


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
}


def main(argv: list[str]) -> int:
    kind, payload = argv[0], json.loads(argv[1])
    result = KINDS[kind](payload)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
