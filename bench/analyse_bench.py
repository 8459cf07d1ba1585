"""How fast is the capture analysis, next to tshark, on a 1,000,000-packet pcap?

    .venv/bin/python bench/analyse_bench.py            # 1M packets, median of 3
    .venv/bin/python bench/analyse_bench.py --quick    # 20k packets (used by the test suite)

The pcap is built by replicating a real lab capture (``tests/data/pcap/star/mail-s1.pcap``:
DHCP, DNS, SMTP submission with STARTTLS, IMAP/POP3 with STARTTLS and implicit TLS,
SMTPS, plaintext logins): copy N of the lab is moved to its own /24 (10.0.0.x becomes
10.H.L.x), with IPv4 and TCP/UDP checksums updated, and its timestamps shifted.  So every
TCP flow is a mail flow: the worst case for the analyser, which reassembles and
TLS-parses each of them.

Timed: ``lab.capture.analyse`` over the whole file (parse + flows + TLS facts +
plaintext credential scan per flow), and ``tshark -r FILE -q -z conv,tcp`` (tshark's
cheapest whole-file pass that still dissects every packet).  Prints a table and writes
JSON (``--json``, default ``/tmp/mail-lab-analyse-bench.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.capture.analyse import analyse_pcap, dhcp, dns  # noqa: E402
from lab.capture.pcap import iter_records, open_pcap, parse  # noqa: E402

SOURCE = REPO / "tests" / "data" / "pcap" / "star" / "mail-s1.pcap"


def _csum_add(csum: int, old: int, new: int) -> int:
    """RFC 1624 incremental update of a ones'-complement checksum for one 16-bit word."""
    s = (~csum & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def build_pcap(out: Path, packets: int, source: Path = SOURCE) -> dict[str, int]:
    """Write ``packets`` packets replicated from ``source`` into ``out``."""
    pf = open_pcap(source)
    if not pf.little_endian or pf.linktype != 1:
        raise SystemExit(f"{source}: expected a little-endian Ethernet pcap")
    # template: (ts_s, ts_us, data, offsets of 10.0.0.x addresses, l4 checksum offset or None)
    tpl = []
    for _, roff, p, caplen in iter_records(pf):
        frame = bytearray(pf.data[p : p + caplen])
        ts_s, ts_us, _, wirelen = struct.unpack_from("<IIII", pf.data, roff)
        addr_offs: list[int] = []
        l4c = None
        if caplen >= 34 and frame[12:14] == b"\x08\x00" and frame[14] >> 4 == 4:
            ihl = (frame[14] & 15) * 4
            for a in (26, 30):
                if frame[a : a + 3] == b"\x0a\x00\x00":
                    addr_offs.append(a)
            proto = frame[23]
            frag = int.from_bytes(frame[20:22], "big") & 0x1FFF
            if not frag and proto in (6, 17):
                c = 14 + ihl + (16 if proto == 6 else 6)
                if c + 2 <= caplen and not (proto == 17 and frame[c : c + 2] == b"\0\0"):
                    l4c = c
        tpl.append((ts_s, ts_us, wirelen, frame, addr_offs, l4c))
    t0 = tpl[0][0]
    span = max(1, tpl[-1][0] - t0 + 1)
    hdr = pf.data[:24]
    written = 0
    replicas = 0
    with open(out, "wb") as fh:
        fh.write(hdr)
        chunks: list[bytes] = []
        while written < packets:
            r = replicas
            replicas += 1
            hi, lo = (r >> 8) & 0xFF, r & 0xFF
            for ts_s, ts_us, wirelen, frame, addr_offs, l4c in tpl:
                if written >= packets:
                    break
                f = frame
                if addr_offs and r:
                    f = bytearray(frame)
                    ipc = int.from_bytes(f[24:26], "big")
                    l4 = int.from_bytes(f[l4c : l4c + 2], "big") if l4c else 0
                    for a in addr_offs:
                        w1_old = (f[a] << 8) | f[a + 1]
                        w2_old = (f[a + 2] << 8) | f[a + 3]
                        w1_new = (10 << 8) | hi
                        w2_new = (lo << 8) | f[a + 3]
                        f[a + 1] = hi
                        f[a + 2] = lo
                        ipc = _csum_add(_csum_add(ipc, w1_old, w1_new), w2_old, w2_new)
                        if l4c:
                            l4 = _csum_add(_csum_add(l4, w1_old, w1_new), w2_old, w2_new)
                    f[24:26] = ipc.to_bytes(2, "big")
                    if l4c:
                        f[l4c : l4c + 2] = (l4 or 0xFFFF).to_bytes(2, "big")
                chunks.append(struct.pack("<IIII", ts_s + r * span, ts_us, len(f), wirelen))
                chunks.append(bytes(f))
                written += 1
            if len(chunks) > 20000:
                fh.write(b"".join(chunks))
                chunks = []
        fh.write(b"".join(chunks))
    return {"packets": written, "replicas": replicas, "source_packets": len(tpl)}


def analyse_once(path: Path, keylog: Path | None = None) -> dict[str, int]:
    """The whole-pcap pass the runner does (``analyse_pcap`` without DHCP/DNS decoding):
    parse, every flow as a dict, TLS facts of every kept flow, credentials in clear."""
    r = analyse_pcap(path, keylog, services=False)
    return {
        "packets": r["packets"],
        "flows": len(r["flows"]),
        "tls_flows": sum(1 for t in r["tls"] if t["tls"]),
        "credential_findings": len(r["credentials"]),
    }


def services_once(path: Path) -> dict[str, int]:
    """DHCP and DNS decoding over the whole file (dnspython per DNS message)."""
    p = parse(path)
    return {"dns_transactions": len(dns(p)), "dhcp_messages": dhcp(p)["messages"]}


def time_it(fn, runs: int) -> tuple[float, list[float], object]:  # type: ignore[no-untyped-def]
    times = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, result


def tshark_once(path: Path) -> int:
    """``tshark -r FILE -q -z conv,tcp``: dissects every packet, prints only the conversation table."""
    r = subprocess.run(["tshark", "-r", str(path), "-q", "-z", "conv,tcp"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tshark failed: {r.stderr.strip()[-500:]}")
    return sum(1 for line in r.stdout.splitlines() if "<->" in line)


def tshark_plain_once(path: Path) -> int:
    """``tshark -r FILE > /dev/null``: the one-line summary of every packet."""
    with open(os.devnull, "w") as null:
        r = subprocess.run(["tshark", "-r", str(path)], stdout=null, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tshark failed: {r.stderr.strip()[-500:]}")
    return 0


def tshark_rows(
    pcap: Path, n: int, med: float, runs: int, results: dict[str, object]
) -> list[tuple[str, float, float]]:
    """Time tshark on the same pcap (plain read, and TCP conversations); add to ``results``."""
    ver = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    pmed, ptimes, _ = time_it(lambda: tshark_plain_once(pcap), runs)
    results["tshark_plain"] = {
        "version": ver,
        "command": f"tshark -r {pcap} > /dev/null",
        "median_s": round(pmed, 4),
        "times_s": [round(x, 4) for x in ptimes],
        "packets_per_s": round(n / pmed),
    }
    tmed, ttimes, convs = time_it(lambda: tshark_once(pcap), runs)
    results["tshark"] = {
        "version": ver,
        "command": f"tshark -r {pcap} -q -z conv,tcp",
        "median_s": round(tmed, 4),
        "times_s": [round(x, 4) for x in ttimes],
        "packets_per_s": round(n / tmed),
        "tcp_conversations": convs,
    }
    results["speedup_vs_tshark"] = round(pmed / med, 2)
    results["speedup_vs_tshark_conv"] = round(tmed / med, 2)
    return [("tshark -r FILE > /dev/null", pmed, n / pmed), ("tshark -r FILE -q -z conv,tcp", tmed, n / tmed)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20k packets, for the test suite")
    ap.add_argument("--packets", type=int, help="packets in the generated pcap (default 1,000,000)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each timing; the median is reported")
    ap.add_argument("--pcap", type=Path, help="where to write the generated pcap (default in /tmp)")
    ap.add_argument("--keylog", type=Path, help="also decrypt TLS 1.3 handshakes with this key log")
    ap.add_argument("--services", action="store_true", help="also time DHCP+DNS decoding (dnspython)")
    ap.add_argument("--no-tshark", action="store_true", help="skip the tshark timing")
    ap.add_argument("--json", type=Path, default=Path("/tmp/mail-lab-analyse-bench.json"))
    a = ap.parse_args(argv)
    n = a.packets or (20_000 if a.quick else 1_000_000)
    pcap = a.pcap or Path(f"/tmp/mail-lab-bench-{n}.pcap")
    t = time.perf_counter()
    info = build_pcap(pcap, n)
    build_s = time.perf_counter() - t
    print(
        f"built {pcap} ({pcap.stat().st_size / 1e6:.1f} MB): {info['packets']} packets, "
        f"{info['replicas']} copies of {SOURCE.name} ({info['source_packets']} packets) in {build_s:.1f} s"
    )
    results: dict[str, object] = {
        "pcap": str(pcap),
        "bytes": pcap.stat().st_size,
        **info,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "runs": a.runs,
    }
    med, times, res = time_it(lambda: analyse_once(pcap, a.keylog), a.runs)
    results["lab_capture"] = {
        "median_s": round(med, 4),
        "times_s": [round(x, 4) for x in times],
        "packets_per_s": round(n / med),
        **res,
    }  # type: ignore[dict-item]
    rows = [("lab.capture analyse_pcap", med, n / med)]
    if a.services:
        smed, stimes, sres = time_it(lambda: services_once(pcap), a.runs)
        results["lab_capture_dhcp_dns"] = {
            "median_s": round(smed, 4),
            "times_s": [round(x, 4) for x in stimes],
            "packets_per_s": round(n / smed),
            **sres,
        }  # type: ignore[dict-item]
        rows.append(("lab.capture parse+dhcp+dns", smed, n / smed))
    if not a.no_tshark:
        if shutil.which("tshark") is None:
            print("tshark is not installed: apt-get install -y tshark (or run with --no-tshark)")
            return 2
        rows += tshark_rows(pcap, n, med, a.runs, results)
    print(f"\n{'tool':34} {'median s':>10} {'packets/s':>12} {'lab.capture is':>16}")
    for name, secs, pps in rows:
        ratio = "-" if name.startswith("lab.capture") else f"{secs / med:.1f}x faster"
        print(f"{name:34} {secs:10.3f} {pps:12,.0f} {ratio:>16}")
    lc = results["lab_capture"]
    print(
        f"\nanalysis found {lc['flows']} flows, {lc['tls_flows']} with TLS, "  # type: ignore[index]
        f"{lc['credential_findings']} plaintext credential findings"
    )  # type: ignore[index]
    a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
