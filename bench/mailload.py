"""Mail load client, run *inside* a lab host: ``python bench/mailload.py JSON``.

Opens ``conns`` concurrent SMTP connections with aiosmtplib; each does STARTTLS (the
certificate verified against the lab CA), AUTH, then sends its share of ``messages``
over the same connection, then QUIT.  Prints one JSON line: when the first connection
started (``time.time()``, the clock the root side shares), when the last message was
accepted, how many were accepted, and the first errors.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from typing import Any


def _message(p: dict[str, Any], conn: int, i: int) -> bytes:
    body = ("mail-lab bench " + "x" * 64 + "\r\n") * max(1, p.get("size", 1000) // 82)
    head = (
        f"From: {p['sender']}\r\nTo: {', '.join(p['to'])}\r\nSubject: bench {p['tag']} {conn}.{i}\r\n"
        f"Message-ID: <bench.{p['tag']}.{conn}.{i}@mail-lab.test>\r\n"
        f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n"
    )
    return (head + body).encode()


async def _conn(p: dict[str, Any], ctx: ssl.SSLContext | None, conn: int, count: int, out: dict[str, Any]) -> None:
    import aiosmtplib

    client = aiosmtplib.SMTP(
        hostname=p["server"],
        port=p["port"],
        use_tls=p.get("tls") == "implicit",
        start_tls=False,
        tls_context=ctx,
        timeout=p.get("timeout", 60),
        local_hostname=p.get("helo") or "bench.mail-lab.test",
    )
    try:
        await client.connect()
        await client.ehlo()
        if p.get("tls") == "starttls":
            await client.starttls()
            await client.ehlo()
        if p.get("login"):
            await client.login(p["login"], p["password"])
        for i in range(count):
            await client.sendmail(p["sender"], p["to"], _message(p, conn, i))
            out["accepted"] += 1
            out["last_accept"] = time.time()
        await client.quit()
    except Exception as exc:
        out["failed_connections"] += 1
        if len(out["errors"]) < 5:
            out["errors"].append(f"conn {conn}: {type(exc).__name__}: {exc}")
    finally:
        if client.is_connected:
            client.close()


async def run(p: dict[str, Any]) -> dict[str, Any]:
    ctx = None
    if p.get("tls") in ("starttls", "implicit"):
        ctx = ssl.create_default_context(cafile=p["ca_file"])  # verification stays on
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    conns, total = p["conns"], p["messages"]
    shares = [total // conns + (1 if c < total % conns else 0) for c in range(conns)]
    out: dict[str, Any] = {"accepted": 0, "failed_connections": 0, "errors": [], "last_accept": None}
    out["first_send"] = time.time()
    await asyncio.gather(*(_conn(p, ctx, c, n, out) for c, n in enumerate(shares) if n))
    out["done"] = time.time()
    return out


def main(argv: list[str]) -> int:
    p = json.loads(argv[0])
    import aiosmtplib  # noqa: F401 - imported before the clock starts

    sys.stdout.write(json.dumps(asyncio.run(run(p))) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
