"""Capture lifecycle without root: a stand-in ``tcpdump`` on PATH plays the real one's part.

It prints ``listening on`` on stderr when ready, writes a pcap header, and on SIGINT
prints the closing counters the way tcpdump 4.99 does.  The real tcpdump is exercised
by tests/data/pcap/make_pcaps.py, whose counters are in facts.json.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from lab.capture.capture import (
    TCPDUMP_BUFFER_KIB,
    CaptureError,
    LinkCapture,
    parse_tcpdump_counters,
    specs_for_lab,
    start_captures,
    tcpdump_argv,
)

FAKE = r"""#!/bin/sh
# args: -i IFACE -w FILE ...
iface="$2"; file="$4"
case "$FAKE_TCPDUMP" in
  fail) echo "tcpdump: $iface: No such device exists" >&2; exit 1 ;;
  mute) exec sleep 30 ;;
esac
printf '\324\303\262\241\002\000\004\000\000\000\000\000\000\000\000\000\000\000\004\000\001\000\000\000' > "$file"
trap 'echo "7 packets captured" >&2; echo "9 packets received by filter" >&2; echo "2 packets dropped by kernel" >&2; exit 0' INT
echo "tcpdump: listening on $iface, link-type EN10MB (Ethernet), snapshot length 262144 bytes" >&2
while :; do sleep 0.05; done
"""


@pytest.fixture
def fake_tcpdump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "tcpdump"
    exe.write_text(FAKE)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    # a shell's background job starts with SIGINT ignored, and a shell cannot trap a signal
    # ignored on entry: the stand-in gets SIGINT as the lab's own process has it (lab.cli)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield exe
    signal.signal(signal.SIGINT, old)


def test_counters_are_parsed_from_tcpdumps_own_words() -> None:
    text = (
        "tcpdump: listening on ml1b1-4, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
        "1 packet captured\n150000 packets received by filter\n0 packets dropped by kernel\n"
    )
    assert parse_tcpdump_counters(text) == {
        "packets": 1,
        "received": 150000,
        "dropped": 0,
        "dropped_by_interface": None,
    }


def test_argv_root_port_and_inside_a_node() -> None:
    assert tcpdump_argv("ml1b1-4", Path("/r/pc1-s1.pcap"))[:12] == [
        "tcpdump",
        "-i",
        "ml1b1-4",
        "-w",
        "/r/pc1-s1.pcap",
        "-U",
        "-s",
        "0",
        "--immediate-mode",
        "-B",
        str(TCPDUMP_BUFFER_KIB),
        "-n",
    ]
    assert tcpdump_argv("eth1", Path("/r/x.pcap"), 4242)[:12] == [
        "nsenter",
        "-t",
        "4242",
        "-n",
        "-m",
        "--",
        "tcpdump",
        "-i",
        "eth1",
        "-w",
        "-",
        "-U",
    ]  # the file is its stdout


def test_start_waits_for_listening_and_stop_collects_counters(fake_tcpdump: Path, tmp_path: Path) -> None:
    specs = [{"link": "pc1-s1", "iface": "mlcb1-4", "netns_pid": None}, {"link": "mail-s1", "iface": "mlcb1-3"}]
    caps = start_captures(specs, tmp_path / "captures")
    assert all(c.ready for c in caps.captures)
    assert all(c.proc is not None and c.proc.poll() is None for c in caps.captures)
    stats = caps.stop()
    assert [s.link for s in stats] == ["pc1-s1", "mail-s1"]
    s = stats[0]
    assert (s.packets, s.received, s.dropped, s.returncode) == (7, 9, 2, 0)
    assert s.file == str(tmp_path / "captures" / "pc1-s1.pcap") and s.bytes == 24
    assert not s.complete and "2 packet(s) lost" in s.problems
    assert caps.stop() is stats  # idempotent
    assert all(c.proc is not None and c.proc.poll() is not None for c in caps.captures)


def test_a_tcpdump_that_fails_raises_with_its_words(
    fake_tcpdump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TCPDUMP", "fail")
    with pytest.raises(CaptureError, match="No such device exists"):
        start_captures([{"link": "x-s1", "iface": "nope0"}], tmp_path)


def test_a_silent_tcpdump_times_out_and_is_stopped(
    fake_tcpdump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TCPDUMP", "mute")
    t = time.monotonic()
    with pytest.raises(CaptureError, match="not listening after"):
        start_captures([{"link": "x-s1", "iface": "eth0"}], tmp_path, timeout=0.5)
    assert time.monotonic() - t < 6


def test_duplicate_link_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="unique"):
        start_captures([{"link": "a", "iface": "x"}, {"link": "a", "iface": "y"}], tmp_path)


def test_stop_before_start_is_harmless(tmp_path: Path) -> None:
    s = LinkCapture({"link": "a", "iface": "x"}, tmp_path).stop()
    assert s.problems == ["never started"] and s.packets is None


def test_specs_for_lab_names_links_as_the_topology_does() -> None:
    """Host-switch links on the root-side bridge port; host-host links inside the first host."""

    def intf(node: str, name: str) -> SimpleNamespace:
        return SimpleNamespace(node=SimpleNamespace(name=node), name=name)

    nodes = {
        "pc1": SimpleNamespace(mn=SimpleNamespace(name="mlc-pc1"), pid=111),
        "r1": SimpleNamespace(mn=SimpleNamespace(name="mlc-r1"), pid=222),
    }
    links = [
        SimpleNamespace(intf1=intf("mlc-pc1", "eth0"), intf2=intf("mlcb1", "mlcb1-1")),
        SimpleNamespace(intf1=intf("mlcb1", "mlcb1-2"), intf2=intf("mlcb2", "mlcb2-1")),
        SimpleNamespace(intf1=intf("mlc-r1", "eth1"), intf2=intf("mlc-pc1", "eth1")),
    ]
    lab = SimpleNamespace(
        network=SimpleNamespace(net=SimpleNamespace(links=links), nodes=nodes, bridges={"s1": "mlcb1", "s2": "mlcb2"})
    )
    specs = [(s.link, s.iface, s.netns_pid) for s in specs_for_lab(lab)]
    assert specs == [("pc1-s1", "mlcb1-1", None), ("s1-s2", "mlcb1-2", None), ("r1-pc1", "eth1", 222)]
