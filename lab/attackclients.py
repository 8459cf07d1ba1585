"""The clients that behave like an attacker or a tester, run inside a lab host like
the others (``python -m lab.clients KIND JSON``): a raw SMTP dialogue (relay tests),
a flood of messages, password guessing, and a TLS scan with sslscan."""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import ssl
import time
from email.message import EmailMessage
from typing import Any

from lab.clienttls import tls_context as _tls_context
from lab.clienttls import tls_facts as _tls_facts


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


def _guess(p: dict[str, Any], n: int, ctx: ssl.SSLContext) -> tuple[str, str]:
    """One wrong password on a fresh connection: ('refused', reply) when the server answered
    the login, ('blocked', error) when it could not be reached at all."""
    import smtplib

    password = f"guess-{n}-{p['run']}"
    try:
        if p["protocol"] == "submission":
            with smtplib.SMTP(p["server"], p["port"], local_hostname=p.get("helo"), timeout=p["connect_timeout"]) as c:
                c.starttls(context=ctx)
                c.ehlo()
                c.user, c.password = p["login"], password
                try:
                    c.auth("PLAIN", c.auth_plain)  # one mechanism: one failure per guess
                    return "accepted", "the guess was right"
                except smtplib.SMTPAuthenticationError as exc:
                    err = exc.smtp_error
                    return (
                        "refused",
                        f"{exc.smtp_code} {err.decode(errors='replace') if isinstance(err, bytes) else err}",
                    )
        if p["protocol"] == "imaps":
            imap = imaplib.IMAP4_SSL(p["server"], p["port"], ssl_context=ctx, timeout=p["connect_timeout"])
            try:
                imap.login(p["login"], password)
                return "accepted", "the guess was right"
            except imaplib.IMAP4.error as exc:
                return "refused", str(exc)
        conn = poplib.POP3_SSL(p["server"], p["port"], context=ctx, timeout=p["connect_timeout"])
        try:
            conn.user(p["login"])
            conn.pass_(password)
            return "accepted", "the guess was right"
        except poplib.error_proto as exc:
            return "refused", str(exc)
    except smtplib.SMTPServerDisconnected as exc:
        return "blocked", f"{type(exc).__name__}: {exc}"
    except smtplib.SMTPException as exc:  # answered, with something else than 535
        return "refused", f"{type(exc).__name__}: {exc}"
    except (OSError, ssl.SSLError, EOFError) as exc:
        return "blocked", f"{type(exc).__name__}: {exc}"


def bruteforce(p: dict[str, Any]) -> dict[str, Any]:
    """Wrong passwords, one connection each, until the server stops answering twice in a row."""
    ctx = _tls_context(p["ca_file"], None)
    tries: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for n in range(1, p["attempts"] + 1):
        t = time.monotonic()
        outcome, text = _guess(p, n, ctx)
        tries.append({"n": n, "outcome": outcome, "reply": text[:200], "seconds": round(time.monotonic() - t, 3)})
        if outcome == "accepted" or [x["outcome"] for x in tries[-2:]] == ["blocked", "blocked"]:
            break
    return {"ok": True, "tries": tries, "seconds": round(time.monotonic() - t0, 3)}


_STARTTLS = {25: "--starttls-smtp", 587: "--starttls-smtp", 143: "--starttls-imap", 110: "--starttls-pop3"}


def _sslscan(server: str, port: int, timeout: float) -> dict[str, Any]:
    import subprocess
    import xml.etree.ElementTree as ET

    args = ["sslscan", "--no-colour", "--no-heartbleed", "--xml=-"]
    if port in _STARTTLS:
        args.append(_STARTTLS[port])
    args.append(f"{server}:{port}")
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"port": port, "error": f"{type(exc).__name__}: {exc}"}
    xml_start = r.stdout.find("<?xml")
    try:
        root = ET.fromstring(r.stdout[xml_start:]) if xml_start >= 0 else None
    except ET.ParseError as exc:
        return {"port": port, "error": f"unreadable sslscan output: {exc}"}
    test = root.find("ssltest") if root is not None else None
    if test is None:
        return {"port": port, "error": (r.stderr or r.stdout).strip()[-500:] or "sslscan found no TLS"}
    protocols = {}
    for el in test.findall("protocol"):
        name = ("SSLv" if el.get("type") == "ssl" else "TLSv") + str(el.get("version"))
        protocols[name] = el.get("enabled") == "1"
    if "TLSv1" in protocols:  # sslscan says version="1.0" or "1"
        protocols["TLSv1.0"] = protocols.pop("TLSv1")
    ciphers = [
        {
            "protocol": el.get("sslversion"),
            "cipher": el.get("cipher"),
            "bits": el.get("bits"),
            "status": el.get("status"),
        }
        for el in test.findall("cipher")
    ]
    return {"port": port, "protocols": protocols, "ciphers": ciphers, "seconds": None}


def scan(p: dict[str, Any]) -> dict[str, Any]:
    """sslscan against each port at once (a thread each); its XML verdicts, per port."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(p["ports"])) as pool:
        results = list(pool.map(lambda port: _sslscan(p["server"], port, p["timeout"]), p["ports"]))
    return {"ok": True, "ports": results, "seconds": round(time.monotonic() - t0, 3)}
