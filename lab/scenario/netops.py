"""Network operations steps and waits share: find an address, ping, trace, read routes, probe a port."""

from __future__ import annotations

import ipaddress
import json
import selectors
import subprocess
import sys
from typing import Any

from lab.scenario.context import Context


def target_ip(ctx: Context, to: str) -> str:
    """A node name, a host name or an address -> the address to use."""
    try:
        return str(ipaddress.IPv4Address(to))
    except ValueError:
        pass
    node = ctx.plan.node_by_fqdn(to) or ctx.plan.node_by_fqdn(to.split(".")[0])
    if node is None:
        raise KeyError(to)
    live = ctx.lab.nodes.get(node.name)
    ip = live.ip if live is not None else node.ip
    if ip is None:
        raise RuntimeError(f"'{to}' has no address (yet)")
    return ip


def ping(
    ctx: Context, on: str, ip: str, count: int, interval: float, size: int | None = None, wait: float = 1.0
) -> dict[str, Any]:
    """ICMP echo with the real ping; its summary lines as data."""
    args = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(wait)]
    if size is not None:
        args += ["-s", str(size)]
    r = ctx.lab.node(on).run([*args, ip], timeout=count * max(interval, 0.01) + wait + 30)
    out: dict[str, Any] = {"target": ip, "sent": count, "received": 0, "loss": 100.0, "output": r.stdout.strip()}
    for line in r.stdout.splitlines():
        if "packets transmitted" in line:
            parts = [p.strip() for p in line.split(",")]
            out["sent"] = int(parts[0].split()[0])
            out["received"] = int(parts[1].split()[0])
            loss = next((p for p in parts if "packet loss" in p), "100%")
            out["loss"] = float(loss.split("%")[0])
        if line.startswith("rtt") or line.startswith("round-trip"):
            vals = line.split("=")[1].split()[0].split("/")
            out["rtt_ms"] = {"min": float(vals[0]), "avg": float(vals[1]), "max": float(vals[2])}
    return out


def rtt_samples(ctx: Context, on: str, ip: str, count: int, interval: float) -> dict[str, Any]:
    """Every reply's round-trip time (ms) as ping measured it, in order.

    ``-U``: from the moment ping sent the request to the moment it read the reply.
    Without it ping takes the kernel's receive timestamp, which is stamped before
    netfilter: a delay applied to arriving packets (the NFQUEUE helper on a link to a
    switch) would not count, though every application waits it out."""
    args = ["ping", "-n", "-U", "-c", str(count), "-i", str(interval), "-W", "2", ip]
    r = ctx.lab.node(on).run(args, timeout=count * interval + 40)
    times = []
    for line in r.stdout.splitlines():
        if "bytes from" in line and "time=" in line:
            try:
                times.append(float(line.split("time=", 1)[1].split()[0]))
            except (IndexError, ValueError):
                continue
    return {"target": ip, "sent": count, "received": len(times), "times_ms": times}


def trace(ctx: Context, on: str, ip: str, max_hops: int) -> list[dict[str, Any]]:
    """TTL probing with ping: one hop per TTL until the target answers."""
    hops = []
    node = ctx.lab.node(on)
    for ttl in range(1, max_hops + 1):
        r = node.run(["ping", "-n", "-c", "1", "-W", "1", "-t", str(ttl), ip], timeout=10)
        hop: dict[str, Any] = {"ttl": ttl, "address": None}
        for line in r.stdout.splitlines():
            if line.startswith("From ") and "exceeded" in line:
                hop["address"] = line.split()[1].rstrip(":")
            elif line.startswith("From ") and "nreachable" in line:
                hop["address"] = line.split()[1].rstrip(":")
                hop["unreachable"] = line.split(":", 1)[-1].strip() or "unreachable"
            elif "bytes from" in line:
                hop["address"] = line.split("from")[1].split(":")[0].strip()
                hop["reached"] = True
        owner = ctx.plan.owner_of(hop["address"]) if hop["address"] else None
        hop["node"] = owner.name if owner else None
        hops.append(hop)
        if hop.get("reached") or hop["address"] is None or hop.get("unreachable"):
            break
    return hops


def route_table(ctx: Context, on: str) -> list[dict[str, Any]]:
    r = ctx.lab.node(on).run(["ip", "-j", "-4", "route", "show"])
    try:
        return list(json.loads(r.stdout or "[]"))
    except ValueError:
        return []


class Listener:
    """``lab.clients listen`` on a node: a port that answers, to test the path and not a daemon."""

    def __init__(self, ctx: Context, node: str, port: int, proto: str, timeout: float = 10.0):
        args = ctx.lab.node(node).argv(
            [sys.executable, "-m", "lab.clients", "listen", json.dumps({"port": port, "proto": proto})]
        )
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        first = self._first_line(timeout)
        if first == "inuse":  # a daemon of the lab already listens there: it answers
            self.close()
        elif first != "listening":
            self.close()
            raise RuntimeError(f"could not listen on {node}:{proto}/{port}: {first or 'no answer'}")

    def _first_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return ""
        return self.proc.stdout.readline().decode(errors="replace").strip()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probe_port(
    ctx: Context, on: str, ip: str, port: int, proto: str, timeout: float, listen_on: str | None = None
) -> dict[str, Any]:
    """open, closed or filtered, seen from ``on``; ``listen_on`` opens a listener first."""
    listener = Listener(ctx, listen_on, port, proto) if listen_on is not None else None
    try:
        return ctx.client(on, "probe", {"ip": ip, "port": port, "proto": proto, "timeout": timeout}, timeout)
    finally:
        if listener is not None:
            listener.close()
