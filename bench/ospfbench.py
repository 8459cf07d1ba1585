"""OSPF convergence and reroute of a running ring, read from the routers' kernel tables (bench/bench.py's ospf section)."""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

from lab.deploy.lab import Lab
from lab.model.plan import Plan


def kernel_routes(pid: int) -> dict[str, str]:
    """prefix -> gateway ("" for connected) of the namespace of ``pid``, read from
    /proc/PID/net/route (no process spawned)."""
    import ipaddress
    import socket
    import struct

    out: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/net/route") as fh:
            next(fh)
            for line in fh:
                f = line.split()
                dst = socket.inet_ntoa(struct.pack("<I", int(f[1], 16)))
                gw = socket.inet_ntoa(struct.pack("<I", int(f[2], 16)))
                mask = socket.inet_ntoa(struct.pack("<I", int(f[7], 16)))
                net = ipaddress.IPv4Network(f"{dst}/{mask}", strict=False)
                out[str(net)] = "" if gw == "0.0.0.0" else gw
    except OSError:
        pass
    return out


def ospf_run(lab: Lab, plan: Plan, timeout: float = 120, settle: float = 5.0) -> dict[str, Any]:
    """Build the ring, time convergence, then cut r1-r2 twice: right after convergence
    (the routers' SPF hold timers are still backed off by it), and again, after the
    link came back, once the routing has been quiet for ``settle`` seconds."""
    from lab.services.frr import Frr

    out: dict[str, Any] = {}
    try:
        t0 = time.monotonic()
        lab.up()
        ready = time.monotonic()
        out["ready_s"] = round(ready - t0, 4)
        frr_start = min(s.started_at for s in lab.services if isinstance(s, Frr) and s.started_at)
        expected = lab.expected_prefixes()
        routers = {r.name: lab.node(r.name).pid for r in plan.routers()}
        deadline = time.monotonic() + timeout
        while True:
            missing = {n: len(expected - set(kernel_routes(pid))) for n, pid in routers.items()}
            missing = {n: m for n, m in missing.items() if m}
            if not missing:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not converged within {timeout} s: missing routes {missing}")
            time.sleep(0.01)
        conv = time.monotonic()
        out["convergence_s"] = round(conv - frr_start, 4)
        out["after_ready_s"] = round(conv - ready, 4)
        out["unsettled"] = reroute(lab, plan)
        # put the link back, wait for r1 to take the short way again, let it settle, cut again
        assert lab.network is not None
        k = ring_link(plan)
        lab.network.set_link(k, up=True)
        r1, lan2 = lab.node("r1").pid, str(plan.subnets["lan2"])
        deadline = time.monotonic() + 60
        while kernel_routes(r1).get(lan2) != out["unsettled"]["gateway_before"]:
            if time.monotonic() > deadline:
                raise RuntimeError("r1 did not go back to the short way after the link came back")
            time.sleep(0.02)
        time.sleep(settle)
        out["settled"] = reroute(lab, plan)
        out["settled"]["settle_s"] = settle
    finally:
        t = time.monotonic()
        lab.down()
        out["teardown_s"] = round(time.monotonic() - t, 4)
    return out


def ring_link(plan: Plan) -> int:
    return next(i for i, lk in enumerate(plan.topology.data.links) if {lk.a, lk.b} == {"r1", "r2"})


def reroute(lab: Lab, plan: Plan, timeout: float = 30, interval: float = 0.01) -> dict[str, Any]:
    """Ping h1 -> h2 every 10 ms, cut r1-r2, time until a reply comes back (the long way)."""
    assert lab.network is not None
    k = ring_link(plan)
    target = lab.node("h2").ip
    lan2 = str(plan.subnets["lan2"])
    r1 = lab.node("r1").pid
    # "converged" means every prefix has a route; on a busy machine r1 may still reach
    # lan2 the long way for a moment (before its adjacency with r2 is full): wait for the
    # short way, or cutting r1-r2 changes nothing and there is no reroute to time
    shared = {i.subnet for i in plan.nodes["r1"].interfaces}
    short = next(i.ip for i in plan.nodes["r2"].interfaces if i.subnet in shared)
    deadline = time.monotonic() + timeout
    while kernel_routes(r1).get(lan2) != short:
        if time.monotonic() > deadline:
            raise RuntimeError(f"r1 does not reach lan2 through r2 ({short}): {kernel_routes(r1).get(lan2)}")
        time.sleep(0.01)
    gw_before = short
    replies: list[tuple[float, int]] = []
    proc = subprocess.Popen(
        lab.node("h1").argv(["ping", "-n", "-D", "-i", str(interval), "-W", "1", target]),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "bytes from" in line and line.startswith("["):
                ts = float(line[1 : line.index("]")])
                seq = int(line.split("icmp_seq=")[1].split()[0])
                replies.append((ts, seq))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        while len(replies) < 5:
            if time.monotonic() > deadline:
                raise RuntimeError("h1 cannot ping h2 before the cut")
            time.sleep(0.01)
        t_cut = time.time()
        lab.network.set_link(k, up=False)
        route_at = None
        deadline = time.monotonic() + timeout
        while True:
            after = [r for r in replies if r[0] > t_cut]
            if route_at is None:
                gw = kernel_routes(r1).get(lan2)
                if gw and gw != gw_before:
                    route_at = time.time()
            if after and route_at is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"h1 -> h2 not rerouted within {timeout} s")
            time.sleep(0.005)
        first = after[0]
        before = [r for r in replies if r[0] <= t_cut]
        lost = first[1] - (before[-1][1] if before else first[1]) - 1
        return {
            "reroute_s": round(first[0] - t_cut, 4),
            "route_change_s": round(route_at - t_cut, 4),
            "gateway_before": gw_before,
            "gateway_after": kernel_routes(r1).get(lan2),
            "pings_lost": lost,
            "ping_interval_s": interval,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
