"""The link-delay helper: holds each packet of an NFQUEUE for a while, then lets it go.

This kernel has no ``tc netem`` (nor fq or etf, the qdiscs that honour a departure
time), so nothing in the kernel can delay a packet.  Netfilter can hand packets to a
program instead (the NFQUEUE target of iptables; nft's own ``queue`` statement is not
built here): the kernel keeps each packet and waits for a verdict.  This program
takes every packet of its queues, notes when it is due (now + delay, plus a random
jitter that never reorders: a packet is never due before the one ahead of it), and
gives the verdict ``accept`` when that time comes.  It runs inside the node whose
interface is delayed (queue numbers are per network namespace), one process per node,
stopped by its pid.  The rules say ``--queue-bypass``: if this program is not bound
(dead, or not started yet) the kernel lets packets pass undelayed, never blocks them.

Measured on this machine (../shared/notes/network-and-seed.md, section 4): 40 ms held
to within about 1 ms on average up to 10k packets/s, at 5-10 % of a core.

Run as ``python -m lab.runtime.nfqdelay CONFIG.json``; the config names the queues
(``{"queues": [{"num": 0, "delay_ms": 20, "jitter_ms": 0, "name": "eth1 out"}],
"stats": "/path/stats.json", "seed": 1}``).  It prints ``ready`` once every queue is
bound, and writes its statistics (packets, how late they left) to ``stats`` every
second and when it stops (SIGTERM or SIGINT).
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: how far ahead of its due time a packet may leave: the select() wake-up is late by
#: 50-100 us on this machine, so waking a little early and spinning the rest is cheaper
#: than being late on every packet
SPIN = 0.0002
#: lateness histogram: 0.1 ms buckets up to 100 ms
BUCKET = 0.0001
BUCKETS = 1000


@dataclass
class Held:
    """One queue: its delay, its packets in order, and how late they left."""

    num: int
    name: str
    delay: float  # seconds
    jitter: float  # seconds, uniform in [-jitter, +jitter]
    packets: deque[tuple[float, Any]] = field(default_factory=deque)
    last_due: float = 0.0
    count: int = 0
    late_sum: float = 0.0
    late_max: float = 0.0
    held_max: int = 0
    stamped: int = 0  # packets that came with the kernel's arrival time
    arrival_sum: float = 0.0  # how long those took from the kernel to this program
    hist: list[int] = field(default_factory=lambda: [0] * (BUCKETS + 1))

    def take(self, rng: random.Random) -> Any:
        def callback(pkt: Any) -> None:
            now = time.monotonic()
            # a packet the node received carries the kernel's arrival time (when any
            # socket wants timestamps, as the captures do): it is due that long after
            # it arrived, so the time it took to reach this program does not count
            try:
                waited = time.time() - pkt.get_timestamp()
            except Exception:
                waited = -1.0
            if 0.0 < waited < 0.05:
                now -= waited
                self.stamped += 1
                self.arrival_sum += waited
            due = now + self.delay + (rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
            due = max(due, self.last_due)  # FIFO: jitter never reorders
            self.last_due = due
            self.packets.append((due, pkt))
            self.held_max = max(self.held_max, len(self.packets))

        return callback

    def release(self, now: float) -> None:
        while self.packets and self.packets[0][0] <= now + SPIN:
            due, pkt = self.packets[0]
            while time.monotonic() < due:  # at most SPIN seconds
                pass
            self.packets.popleft()
            pkt.accept()
            late = time.monotonic() - due
            self.count += 1
            self.late_sum += late
            self.late_max = max(self.late_max, late)
            self.hist[min(BUCKETS, max(0, int(late / BUCKET)))] += 1

    def stats(self) -> dict[str, Any]:
        def pct(q: float) -> float | None:
            if not self.count:
                return None
            want, seen = q * self.count, 0
            for k, n in enumerate(self.hist):
                seen += n
                if seen >= want:
                    return round((k + 1) * BUCKET * 1000, 3)
            return None

        return {
            "queue": self.num,
            "name": self.name,
            "delay_ms": round(self.delay * 1000, 3),
            "jitter_ms": round(self.jitter * 1000, 3),
            "packets": self.count,
            "late_mean_ms": round(self.late_sum / self.count * 1000, 3) if self.count else None,
            "late_p99_ms": pct(0.99),
            "late_max_ms": round(self.late_max * 1000, 3),
            "held_max": self.held_max,
            "kernel_stamped": self.stamped,
            "arrival_mean_ms": round(self.arrival_sum / self.stamped * 1000, 3) if self.stamped else None,
        }


def _write_stats(path: str, queues: list[Held], started: float) -> None:
    t = os.times()
    doc = {
        "pid": os.getpid(),
        "seconds": round(time.monotonic() - started, 3),
        "cpu_seconds": round(t.user + t.system, 3),
        "queues": [q.stats() for q in queues],
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def serve(config: dict[str, Any]) -> int:
    from netfilterqueue import COPY_META, NetfilterQueue

    rng = random.Random(config.get("seed", 0))
    try:  # a loaded machine must not make the links slower: wake up before other work
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        pass
    queues = [
        Held(int(q["num"]), str(q.get("name", "")), float(q["delay_ms"]) / 1000, float(q.get("jitter_ms", 0)) / 1000)
        for q in config["queues"]
    ]
    bound: list[tuple[Any, socket.socket, Held]] = []
    for q in queues:
        nfq = NetfilterQueue()
        # COPY_META: the kernel keeps the packet, we only need its verdict id
        nfq.bind(q.num, q.take(rng), max_len=8192, mode=COPY_META)
        sock = socket.fromfd(nfq.get_fd(), socket.AF_NETLINK, socket.SOCK_RAW)
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: bursts never overflow
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.setblocking(False)
        bound.append((nfq, sock, q))
    stop = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    stats_path = str(config["stats"])
    _write_stats(stats_path, queues, started)
    print("ready", flush=True)
    by_fd = {sock.fileno(): (nfq, q) for nfq, sock, q in bound}
    next_stats = started + 1.0
    # how late select() wakes up after its timeout, learnt as the loop runs: a loaded
    # machine wakes a sleeping process late, so the loop sleeps that much less
    wake_late = 0.0001
    while not stop:
        now = time.monotonic()
        dues = [q.packets[0][0] for q in queues if q.packets]
        timeout = min(0.5, max(0.0, min(dues) - now - SPIN - wake_late)) if dues else 0.5
        try:
            ready, _, _ = select.select(list(by_fd), [], [], timeout)
        except InterruptedError:
            continue
        if not ready and dues and timeout > 0:
            over = time.monotonic() - now - timeout
            wake_late = min(0.002, max(0.0, 0.9 * wake_late + 0.1 * over))
        for fd in ready:
            by_fd[fd][0].run(block=False)
        now = time.monotonic()
        for q in queues:
            q.release(now)
        if now >= next_stats:
            _write_stats(stats_path, queues, started)
            next_stats = now + 1.0
    # what is still held leaves now, undelayed: stopping never drops a packet
    for q in queues:
        while q.packets:
            q.packets.popleft()[1].accept()
    _write_stats(stats_path, queues, started)
    for nfq, sock, _ in bound:
        sock.close()
        nfq.unbind()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m lab.runtime.nfqdelay CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        config = json.load(f)
    return serve(config)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
