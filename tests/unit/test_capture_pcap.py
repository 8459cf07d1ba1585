"""The pcap reader on hand-made packets: reassembly corner cases and link-layer variants.

Each test writes a tiny pcap with exactly the packets it needs, so the expectation is
visible in the test itself.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from lab.capture.analyse import plaintext_credentials, tls_facts
from lab.capture.pcap import C2S, S2C, PcapError, parse

REPO = Path(__file__).resolve().parents[2]
CLIENT, SERVER = bytes([10, 0, 0, 100]), bytes([10, 0, 0, 10])
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def ipv4(src: bytes, dst: bytes, proto: int, l4: bytes, ttl: int = 64, ident: int = 1, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    return (
        struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(l4), ident, 0x4000, ttl, proto, 0, src, dst)
        + options
        + l4
    )


def tcp(sport: int, dport: int, seq: int, flags: int, payload: bytes = b"", ack: int = 0) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ether(l3: bytes, ethertype: int = 0x0800, vlan: int | None = None) -> bytes:
    head = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02"
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    return head + struct.pack("!H", ethertype) + l3


def write_pcap(
    path: Path, frames: list[bytes], *, magic: int = 0xA1B2C3D4, linktype: int = 1, cut_last: int = 0
) -> Path:
    out = [struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for i, fr in enumerate(frames):
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(fr), len(fr)) + fr)
    data = b"".join(out)
    path.write_bytes(data[: len(data) - cut_last] if cut_last else data)
    return path


def session(
    segments: list[tuple[int, int, bytes]],
    *,
    sport: int = 40000,
    dport: int = 143,
    isn_c: int = 1000,
    isn_s: int = 5000,
) -> list[bytes]:
    """A handshake then ``(direction, relative seq, payload)`` segments as given."""
    frames = [
        ether(ipv4(CLIENT, SERVER, 6, tcp(sport, dport, isn_c, SYN))),
        ether(ipv4(SERVER, CLIENT, 6, tcp(dport, sport, isn_s, SYN | ACK))),
    ]
    for d, rel, payload in segments:
        if d == C2S:
            frames.append(ether(ipv4(CLIENT, SERVER, 6, tcp(sport, dport, isn_c + 1 + rel, ACK | PSH, payload))))
        else:
            frames.append(
                ether(ipv4(SERVER, CLIENT, 6, tcp(dport, sport, isn_s + 1 + rel, ACK | PSH, payload), ttl=63))
            )
    return frames


def test_out_of_order_and_retransmitted_segments(tmp_path: Path) -> None:
    frames = session(
        [
            (S2C, 0, b"* OK ready\r\n"),
            (C2S, 10, b" secret\r\n"),  # arrives before the bytes it follows
            (C2S, 0, b"a1 LOGIN u"),
            (C2S, 0, b"a1 LOGIN u"),  # a retransmission
            (S2C, 12, b"a1 NO go away\r\n"),
        ]
    )
    f = parse(write_pcap(tmp_path / "x.pcap", frames)).flows[0]
    st = f.stream(C2S)
    assert st.data == b"a1 LOGIN u secret\r\n" and st.retransmitted == 1 and st.gap_at is None
    assert st.packet_at(0) == 5 and st.packet_at(12) == 4  # packet numbers, 1-based, as tshark's
    hit = plaintext_credentials([f])
    assert hit[0]["packet"] == 5 and hit[0]["user"] == "u" and hit[0]["server_reply"] == "a1 NO go away"


def test_a_gap_stops_the_stream_where_bytes_are_missing(tmp_path: Path) -> None:
    frames = session([(C2S, 0, b"abc"), (C2S, 10, b"later")])
    st = parse(write_pcap(tmp_path / "x.pcap", frames)).flows[0].stream(C2S)
    assert st.data == b"abc" and st.gap_at == 3


def test_the_client_is_the_syn_sender_even_if_the_capture_starts_with_the_syn_ack(tmp_path: Path) -> None:
    frames = session([(C2S, 0, b"EHLO x\r\n")], dport=25)[1:]  # the SYN was missed
    f = parse(write_pcap(tmp_path / "x.pcap", frames)).flows[0]
    assert f.key == ("tcp", "10.0.0.100", 40000, "10.0.0.10", 25)
    assert f.pk == (1, 1) and f.ttl == ({64}, {64})


def test_vlan_ip_options_and_nanosecond_pcaps(tmp_path: Path) -> None:
    l4 = tcp(40000, 993, 1, SYN)
    frames = [
        ether(ipv4(CLIENT, SERVER, 6, l4), vlan=20),
        ether(ipv4(CLIENT, SERVER, 6, l4, options=b"\x01\x01\x01\x00")),  # NOP NOP NOP EOL
        ether(ipv4(CLIENT, SERVER, 17, udp(5353, 53, b"\0" * 12))),
    ]
    for magic in (0xA1B2C3D4, 0xA1B23C4D):
        p = parse(write_pcap(tmp_path / f"{magic:x}.pcap", frames, magic=magic))
        assert p.packets == 3
        tcpf = [f for f in p.flows if f.proto == 6]
        assert len(tcpf) == 1 and tcpf[0].packets == 2 and tcpf[0].sport == 993
        assert p.first_ts == pytest.approx(1_700_000_000)


def test_raw_ip_link_type(tmp_path: Path) -> None:
    frames = [ipv4(CLIENT, SERVER, 17, udp(40000, 53, b"\0" * 12))]
    p = parse(write_pcap(tmp_path / "raw.pcap", frames, linktype=101))
    assert [f.name for f in p.flows] == ["udp 10.0.0.100:40000 > 10.0.0.10:53"]


def test_a_file_cut_inside_a_record_is_flagged_not_fatal(tmp_path: Path) -> None:
    frames = session([(C2S, 0, b"hello\r\n")])
    p = parse(write_pcap(tmp_path / "cut.pcap", frames, cut_last=3))
    assert p.truncated and p.packets == 2


def test_pcapng_and_garbage_are_refused_clearly(tmp_path: Path) -> None:
    ng = tmp_path / "x.pcapng"
    ng.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 40)
    with pytest.raises(PcapError, match="pcapng"):
        parse(ng)
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"hello world, not a pcap at all")
    with pytest.raises(PcapError, match="not a pcap"):
        parse(bad)


def test_starttls_refused_is_not_tls(tmp_path: Path) -> None:
    frames = session(
        [
            (S2C, 0, b"220 mx ESMTP\r\n"),
            (C2S, 0, b"STARTTLS\r\n"),
            (S2C, 14, b"454 4.7.0 TLS not available\r\n"),
            (C2S, 10, b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        ],
        dport=25,
    )
    f = parse(write_pcap(tmp_path / "x.pcap", frames)).flows[0]
    t = tls_facts(f)
    assert t["tls"] is False and t["starttls_refused"] and t["starttls_reply"].startswith("454")
    hit = plaintext_credentials([f])
    assert len(hit) == 1 and hit[0]["user"] == "alice" and hit[0]["command"] == "SMTP AUTH PLAIN"


def test_credentials_after_an_accepted_starttls_are_not_plaintext(tmp_path: Path) -> None:
    hello = b"\x16\x03\x01\x00\x04\x01\x00\x00\x00"  # a (minimal) TLS handshake record
    frames = session(
        [
            (S2C, 0, b"* OK\r\n"),
            (C2S, 0, b"a STARTTLS\r\n"),
            (S2C, 6, b"a OK Begin TLS\r\n"),
            (C2S, 12, hello),
            (C2S, 12 + len(hello), b"b LOGIN x y\r\n"),
        ]
    )
    f = parse(write_pcap(tmp_path / "x.pcap", frames)).flows[0]
    t = tls_facts(f)
    assert t["mode"] == "starttls" and t["starttls_at"] == 12 and t["tls"] is False  # no ServerHello seen
    assert plaintext_credentials([f]) == []


def test_credentials_sent_before_starttls_are_still_caught(tmp_path: Path) -> None:
    hello = b"\x16\x03\x01\x00\x04\x01\x00\x00\x00"
    login = b"USER carol\r\nPASS pw\r\n"
    frames = session(
        [
            (S2C, 0, b"+OK\r\n"),
            (C2S, 0, login),
            (S2C, 5, b"-ERR no\r\n-ERR no\r\n"),
            (C2S, len(login), b"STLS\r\n"),
            (S2C, 23, b"+OK Begin TLS negotiation now.\r\n"),
            (C2S, len(login) + 6, hello),
        ],
        dport=110,
    )
    f = parse(write_pcap(tmp_path / "x.pcap", frames)).flows[0]
    assert tls_facts(f)["mode"] == "starttls"
    hit = plaintext_credentials([f])
    assert len(hit) == 1 and hit[0]["user"] == "carol" and hit[0]["starttls_after"]


def test_a_missing_key_log_means_no_secrets(tmp_path: Path) -> None:
    from lab.capture.tls import read_keylog

    assert read_keylog(tmp_path / "never-written.txt") == {}
    assert read_keylog(None) == {}


def test_the_bench_runs_quick_and_beats_tshark(tmp_path: Path) -> None:
    """bench/analyse_bench.py --quick: 20k packets replicated from the real capture."""
    out = tmp_path / "bench.json"
    args = [
        sys.executable,
        str(REPO / "bench" / "analyse_bench.py"),
        "--quick",
        "--runs",
        "1",
        "--pcap",
        str(tmp_path / "q.pcap"),
        "--json",
        str(out),
    ]
    import shutil

    if shutil.which("tshark") is None:
        args.append("--no-tshark")
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    import json

    res = json.loads(out.read_text())
    assert res["lab_capture"]["packets"] == 20_000
    assert res["lab_capture"]["credential_findings"] > 0 and res["lab_capture"]["tls_flows"] > 0
    if "tshark" in res:
        assert res["speedup_vs_tshark"] > 1 and res["speedup_vs_tshark_conv"] > 1, res
