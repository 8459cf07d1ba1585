"""One tcpdump per link, writing ``<outdir>/<link>.pcap``.

Why tcpdump and not an in-process sniffer: on this machine tcpdump kept every packet of
20k at 150k+ packets/s while scapy's sniffer lost 98% (docs/architecture.md, "Facts measured on this machine").  So the
lab captures with tcpdump and analyses the files afterwards (``lab.capture.analyse``).

A capture is *ready* only once tcpdump has said ``listening on`` on stderr: the packet
socket is bound from then on, so nothing a step sends afterwards can be missed.  It is
stopped with SIGINT (tcpdump then flushes the file and prints its counters), by pid,
and waited for; the counters on stderr become the per-link statistics.

A spec is plain data, so a runner can build it from its own model of the network::

    {"link": "pc1-s1", "iface": "ml1b1-4", "netns_pid": None}   # root-side bridge port
    {"link": "r1-r2",  "iface": "eth1",    "netns_pid": 4242}   # inside a node (mnexec -a PID)
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError

TCPDUMP_BUFFER_KIB = 32768  # per link; kernel drops must stay at 0 even on a busy 2-core machine


class CaptureError(LabError):
    """tcpdump could not start, did not become ready, or did not stop."""

    exit_code = 4


@dataclass(frozen=True)
class CaptureSpec:
    link: str  # the link's name in the topology, e.g. "pc1-s1"; names the file
    iface: str  # kernel interface to listen on
    netns_pid: int | None = None  # None: root namespace; else a pid inside the node's namespace
    filter: str | None = None  # a BPF expression (tcpdump's own syntax); None: every packet

    @classmethod
    def of(cls, spec: "CaptureSpec | Mapping[str, Any]") -> "CaptureSpec":
        if isinstance(spec, CaptureSpec):
            return spec
        return cls(
            link=str(spec["link"]),
            iface=str(spec["iface"]),
            netns_pid=None if spec.get("netns_pid") is None else int(spec["netns_pid"]),
            filter=spec.get("filter"),
        )


@dataclass
class CaptureStats:
    link: str
    iface: str
    file: str
    packets: int | None = None  # "N packets captured" (written to the file)
    received: int | None = None  # "N packets received by filter"
    dropped: int | None = None  # "N packets dropped by kernel"
    dropped_by_interface: int | None = None
    bytes: int = 0  # size of the pcap file
    returncode: int | None = None
    seconds: float = 0.0
    stderr: str = ""  # tcpdump's own words, for the report when counters are missing
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when tcpdump reported its counters and lost nothing."""
        return self.packets is not None and not self.dropped and not self.dropped_by_interface

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_COUNTERS = {
    "packets": re.compile(r"^(\d+) packets? captured", re.M),
    "received": re.compile(r"^(\d+) packets? received by filter", re.M),
    "dropped": re.compile(r"^(\d+) packets? dropped by kernel", re.M),
    "dropped_by_interface": re.compile(r"^(\d+) packets? dropped by interface", re.M),
}


def parse_tcpdump_counters(stderr: str) -> dict[str, int | None]:
    """tcpdump's closing counters, e.g. ``12 packets captured`` -> ``{"packets": 12, ...}``."""
    out: dict[str, int | None] = {}
    for key, rx in _COUNTERS.items():
        m = rx.search(stderr)
        out[key] = int(m.group(1)) if m else None
    return out


def tcpdump_argv(
    iface: str,
    file: Path,
    netns_pid: int | None = None,
    *,
    buffer_kib: int = TCPDUMP_BUFFER_KIB,
    tcpdump: str = "tcpdump",
    bpf: str | None = None,
) -> list[str]:
    # -U: flush per packet (a killed run still leaves a readable file); -s 0: whole packets;
    # --immediate-mode: no batching delay; -n: never resolve names (no DNS from the capture)
    # Inside a node tcpdump writes to its stdout, a file opened here: the node may have
    # a private /tmp (or any folder) where the run's report folder is not visible.
    argv = [
        tcpdump,
        "-i",
        iface,
        "-w",
        str(file) if netns_pid is None else "-",
        "-U",
        "-s",
        "0",
        "--immediate-mode",
        "-B",
        str(buffer_kib),
        "-n",
    ]
    if bpf:
        argv.append(bpf)
    if netns_pid is not None:
        argv = ["nsenter", "-t", str(netns_pid), "-n", "-m", "--", *argv]
    return argv


class LinkCapture:
    """tcpdump on one link."""

    def __init__(self, spec: CaptureSpec | Mapping[str, Any], outdir: Path, *, buffer_kib: int = TCPDUMP_BUFFER_KIB):
        self.spec = CaptureSpec.of(spec)
        self.file = Path(outdir) / f"{_safe(self.spec.link)}.pcap"
        self.argv = tcpdump_argv(
            self.spec.iface, self.file, self.spec.netns_pid, buffer_kib=buffer_kib, bpf=self.spec.filter
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._err = bytearray()
        self.ready = False
        self.started_at = 0.0
        self.stats: CaptureStats | None = None
        self._interrupted = False

    @property
    def link(self) -> str:
        return self.spec.link

    @property
    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    def start(self) -> None:
        """Spawn tcpdump; call ``wait_ready`` (or ``start_captures``) before sending traffic."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        try:
            # own session: a Ctrl-C on the terminal must not stop the capture before the
            # runner has stopped the steps; the runner stops tcpdump itself, by pid
            with open(self.file, "wb") if self.spec.netns_pid is not None else open(os.devnull, "wb") as out:
                self.proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, start_new_session=True
                )
        except OSError as exc:
            raise CaptureError(
                f"{self.link}: cannot run tcpdump: {exc}",
                hint="install tcpdump (scripts/setup.sh); capturing needs root",
            ) from exc
        os.set_blocking(self.proc.stderr.fileno(), False)  # type: ignore[union-attr]

    def _read_stderr(self) -> bool:
        """Read what tcpdump wrote so far; False at end of file."""
        assert self.proc is not None and self.proc.stderr is not None
        try:
            chunk = os.read(self.proc.stderr.fileno(), 65536)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self._err += chunk
        if not self.ready and b"listening on" in self._err:
            self.ready = True
        return True

    def wait_ready(self, timeout: float = 10.0) -> None:
        wait_all_ready([self], timeout)

    def interrupt(self) -> None:
        """SIGINT once: a second one could cut tcpdump's flush and counters short."""
        if self.proc is not None and not self._interrupted and self.proc.poll() is None:
            self._interrupted = True
            _signal(self.proc.pid, signal.SIGINT)

    def stop(self, timeout: float = 10.0) -> CaptureStats:
        """SIGINT tcpdump by pid, wait for it, and return its counters (idempotent)."""
        if self.stats is not None:
            return self.stats
        stats = CaptureStats(link=self.link, iface=self.spec.iface, file=str(self.file))
        proc = self.proc
        if proc is None:
            stats.problems.append("never started")
            self.stats = stats
            return stats
        if proc.poll() is None:
            self.interrupt()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                stats.problems.append(f"tcpdump ignored SIGINT for {timeout:g} s; sent SIGTERM")
                _signal(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    stats.problems.append("tcpdump ignored SIGTERM; killed")
                    _signal(proc.pid, signal.SIGKILL)
                    proc.wait()
        elif self.ready and not self._interrupted:
            stats.problems.append(f"tcpdump exited early with status {proc.returncode}")
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), True)
        self._err += proc.stderr.read()
        proc.stderr.close()
        stats.returncode = proc.returncode
        stats.seconds = round(time.monotonic() - self.started_at, 4)
        stats.stderr = self.stderr.strip()[-2000:]
        for key, value in parse_tcpdump_counters(self.stderr).items():
            setattr(stats, key, value)
        if stats.packets is None:
            stats.problems.append("tcpdump printed no counters")
        if stats.dropped or stats.dropped_by_interface:
            stats.problems.append(f"{(stats.dropped or 0) + (stats.dropped_by_interface or 0)} packet(s) lost")
        try:
            stats.bytes = self.file.stat().st_size
        except OSError:
            stats.problems.append("no capture file")
        self.stats = stats
        return stats


def wait_all_ready(captures: Sequence[LinkCapture], timeout: float) -> None:
    """Wait until every tcpdump said ``listening on``; raise if one dies or is too slow."""
    sel = selectors.DefaultSelector()
    pending = {c.link: c for c in captures if not c.ready}
    for c in pending.values():
        assert c.proc is not None and c.proc.stderr is not None
        sel.register(c.proc.stderr.fileno(), selectors.EVENT_READ, c)
    deadline = time.monotonic() + timeout
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(f"{c.link} ({c.spec.iface})" for c in pending.values())
                raise CaptureError(f"tcpdump not listening after {timeout:g} s on: {names}")
            for key, _ in sel.select(left):
                c = key.data
                alive = c._read_stderr()
                if c.ready or not alive:
                    sel.unregister(key.fd)
                    pending.pop(c.link, None)
                if not c.ready and not alive:
                    c.proc.wait()
                    raise CaptureError(
                        f"{c.link}: tcpdump on {c.spec.iface} exited with status "
                        f"{c.proc.returncode}: {c.stderr.strip()[-800:]}",
                        hint="check the interface name and that the run is root",
                    )
    finally:
        sel.close()


class CaptureSet:
    """The handle ``start_captures`` returns: every link's capture of one run."""

    def __init__(self, captures: list[LinkCapture], outdir: Path):
        self.captures = captures
        self.outdir = outdir
        self.stats: list[CaptureStats] | None = None

    @property
    def files(self) -> dict[str, Path]:
        return {c.link: c.file for c in self.captures}

    def stop(self, timeout: float = 10.0) -> list[CaptureStats]:
        """Stop every tcpdump (all signalled first, then waited), return the counters."""
        if self.stats is not None:
            return self.stats
        for c in self.captures:  # signal all first: they flush in parallel
            c.interrupt()
        self.stats = [c.stop(timeout) for c in self.captures]
        return self.stats

    def __enter__(self) -> "CaptureSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_captures(
    specs: Iterable[CaptureSpec | Mapping[str, Any]],
    outdir: Path | str,
    *,
    timeout: float = 10.0,
    buffer_kib: int = TCPDUMP_BUFFER_KIB,
) -> CaptureSet:
    """Start one tcpdump per spec and return once all are listening.

    On any failure the captures already started are stopped before the error propagates.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    captures = [LinkCapture(s, outdir, buffer_kib=buffer_kib) for s in specs]
    seen: set[str] = set()
    for c in captures:
        if c.file.name in seen:
            raise CaptureError(f"two captures would write {c.file}: link names must be unique")
        seen.add(c.file.name)
    handle = CaptureSet(captures, outdir)
    try:
        for c in captures:
            c.start()
        wait_all_ready(captures, timeout)
    except BaseException:
        handle.stop(timeout=3)
        raise
    return handle


def specs_for_lab(lab: Any) -> list[CaptureSpec]:
    """One spec per link of a running ``lab.deploy.lab.Lab``, named ``<a>-<b>`` as in the topology.

    Host-to-switch links are captured on the root-side bridge port (``<prefix>b<N>-<M>``);
    a link with no end in the root namespace (host to host) inside its first node.
    Switch-to-switch links are captured on the first bridge's port.
    """
    network = lab.network
    if network is None or network.net is None:
        raise CaptureError("the lab's network is not built: start captures after the network phase")
    by_mn = {node.mn.name: name for name, node in network.nodes.items()}
    by_bridge = {br: name for name, br in network.bridges.items()}
    specs = []
    for link in network.net.links:
        i1, i2 = link.intf1, link.intf2
        n1, n2 = i1.node.name, i2.node.name
        name1 = by_mn.get(n1) or by_bridge.get(n1, n1)
        name2 = by_mn.get(n2) or by_bridge.get(n2, n2)
        if n1 in by_bridge:
            specs.append(CaptureSpec(f"{name2}-{name1}" if n2 in by_mn else f"{name1}-{name2}", i1.name))
        elif n2 in by_bridge:
            specs.append(CaptureSpec(f"{name1}-{name2}", i2.name))
        else:
            specs.append(CaptureSpec(f"{name1}-{name2}", i1.name, int(network.nodes[name1].pid)))
    return specs


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
