"""A real HTTP client, run *inside* a lab host: ``python -m lab.httpclient JSON``.

Directly, or through a forward proxy: plain HTTP as a proxy request (the absolute URL
on the request line), HTTPS through ``CONNECT host:443`` and then TLS end to end,
verified against the run's lab CA (never turned off).  Names resolve through the
host's own resolver, or, through a proxy, on the proxy.  Prints one JSON object: the
outcome (``ok``, ``blocked`` when the proxy refused, ``unreachable`` when no connection
could be made), the status, a few headers, the start of the page, the TLS facts and
the dialogue as the client saw it.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys
import time
from typing import Any
from urllib.parse import urlsplit


def _tls(sock: Any) -> dict[str, Any]:
    if not isinstance(sock, ssl.SSLSocket):
        return {}
    cert: dict[str, Any] = dict(sock.getpeercert() or {})
    return {
        "tls_version": sock.version(),
        "cipher": (sock.cipher() or [None])[0],
        "peer_subject": dict(x[0] for x in cert.get("subject", ())).get("commonName"),
    }


def fetch(p: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(p["url"])
    host, https = str(url.hostname), url.scheme == "https"
    port = url.port or (443 if https else 80)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    timeout = float(p.get("timeout", 8))
    talk: list[str] = []
    out: dict[str, Any] = {"url": p["url"], "proxy": p.get("proxy"), "dialogue": talk}
    ctx = ssl.create_default_context(cafile=p["ca"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if p.get("keylog"):
        ctx.keylog_filename = p["keylog"]
    proxy = p.get("proxy")
    conn: http.client.HTTPConnection
    if proxy and https:
        conn = http.client.HTTPSConnection(proxy, int(p["proxy_port"]), timeout=timeout, context=ctx)
        conn.set_tunnel(host, port)
        talk.append(f"C: CONNECT {host}:{port} HTTP/1.1 (to the proxy {proxy}:{p['proxy_port']})")
        target = path
    elif proxy:
        conn = http.client.HTTPConnection(proxy, int(p["proxy_port"]), timeout=timeout)
        target = p["url"]  # a proxy request names the whole URL
    elif https:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        target = path
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        target = path
    t0 = time.monotonic()
    try:
        talk.append(f"C: GET {target} HTTP/1.1")
        conn.request("GET", target, headers={"Host": host, "User-Agent": "mail-lab"})
        resp = conn.getresponse()
        body = resp.read(4096)
        talk.append(f"S: HTTP/1.1 {resp.status} {resp.reason}")
        out.update(
            status=resp.status,
            reason=resp.reason,
            headers={k: v for k, v in resp.getheaders() if k.lower() in ("server", "via", "x-cache", "x-squid-error")},
            body=body.decode("utf-8", "replace")[:600],
            outcome="ok" if 200 <= resp.status < 300 else "blocked" if proxy and resp.status == 403 else "error",
            **_tls(conn.sock),
        )
    except OSError as exc:
        text = str(exc)
        # http.client says "Tunnel connection failed: 403 Forbidden" when the proxy refuses CONNECT
        refused = proxy is not None and "Tunnel connection failed" in text
        talk.append(f"-- {text}")
        out.update(
            outcome="blocked" if refused and " 403" in text else "unreachable" if not refused else "error",
            error=f"{type(exc).__name__}: {text}",
        )
        if refused:
            out["status"] = int(text.split(":", 1)[1].split()[0]) if text.split(":", 1)[1].split() else None
    finally:
        conn.close()
    out["seconds"] = round(time.monotonic() - t0, 4)
    return out


def main(argv: list[str]) -> int:
    socket.setdefaulttimeout(30)
    sys.stdout.write(json.dumps(fetch(json.loads(argv[0]))) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
