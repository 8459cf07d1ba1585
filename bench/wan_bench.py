"""What the WAN lab costs and how true it is: the NFQUEUE delay helper's CPU at 1,000
packets/s, each delayed link's round trip against its setting, the OpenVPN tunnels' set-up.

    sudo .venv/bin/python bench/wan_bench.py                        # everything
    sudo .venv/bin/python bench/wan_bench.py --only cpu --seconds 30
    sudo .venv/bin/python bench/wan_bench.py --only rtt,vpn --out /tmp/wan.json

Figures (printed, and as JSON with --out; timings are never asserted, the machine is shared):

cpu   a UDP stream of --rate datagrams/s (64-byte payloads) for --seconds from one network
      namespace to another over a veth pair, every datagram leaving the first held by the
      delay helper (``python -m lab.runtime.nfqdelay``, with the iptables rules
      lab/services/delay.py writes, --queue-bypass) for 20 ms, then for 40 ms; baseline: the
      same stream with no rule and no helper.  The helper's CPU seconds come from
      /proc/<pid>/stat (utime + stime) read before and after the stream: % of one core and
      microseconds per packet.  The sender's and receiver's CPU (their rusage) in each case,
      and the one-way delay each datagram saw (both namespaces share the machine's
      monotonic clock) against the setting.  A last stream runs the helper with
      ``SPIN = 0`` (no early wake-up spun towards each due time): what the spin costs
      and what accuracy it buys.
rtt   topologies/wan.yaml up (delays by whatever mechanism the kernel allows: the helper
      here); ``ping -U`` (as the rtt step) --pings times across each delayed link alone
      (LAN: pc-lan -> dns crosses only pc-lan's 3 ms cable; MAN: ra -> rb; WAN: ra -> rc)
      and along the scenario's three paths to the mail server; the median against twice
      the one-way delays of the links crossed (lab.model.paths.path_delay); baseline: an
      undelayed link (pc-man -> rb).
vpn   topologies/multisite-vpn.yaml up; then, --rounds times, every OpenVPN end stopped and
      started again (the ends that serve first), and the time from the first start of a
      tunnel's ends until both log "Initialization Sequence Completed" (what the lab's
      readiness waits for); also the bring-up's own openvpn timings (Lab.timings: render,
      check, start and wait, per stage).

Names: namespaces ``<stem>wb-a``/``<stem>wb-b`` and labs with the prefix stem of
MAIL_LAB_PREFIX_STEM (default ml), so the benchmark runs beside other sessions' labs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lab.deploy.lab import Lab  # noqa: E402
from lab.model.load import load_topology  # noqa: E402
from lab.model.paths import path_delay  # noqa: E402
from lab.model.plan import Plan, make_plan  # noqa: E402
from lab.runtime.rundir import PREFIX_STEM  # noqa: E402
from lab.services.delay import QueueSpec, rules  # noqa: E402
from lab.services.openvpn import READY, OpenVpn  # noqa: E402

SECTIONS = ("cpu", "rtt", "vpn")
NS_A, NS_B = f"{PREFIX_STEM}wb-a", f"{PREFIX_STEM}wb-b"
VETH_A, VETH_B = f"{PREFIX_STEM}wb-a0", f"{PREFIX_STEM}wb-b0"
ADDR_A, ADDR_B, PORT = "10.213.0.1", "10.213.0.2", 40000
TICK = os.sysconf("SC_CLK_TCK")
T0 = time.monotonic()

SENDER = r"""
import socket, struct, sys, time
dst, port, rate, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n, gap, pad = int(rate * secs), 1.0 / rate, b"x" * 48
t0 = time.monotonic() + 0.05
for i in range(n):  # absolute due times: a late wake-up is caught up, the rate stays exact
    left = t0 + i * gap - time.monotonic()
    if left > 0:
        time.sleep(left)
    s.sendto(struct.pack("!QQ", i, time.monotonic_ns()) + pad, (dst, port))
"""
RECEIVER = r"""
import json, socket, struct, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("0.0.0.0", port))
s.settimeout(1.0)
print("ready", flush=True)
delays, seen, deadline = [], set(), time.monotonic() + 600
while time.monotonic() < deadline:
    try:
        data = s.recv(2048)
    except socket.timeout:
        if delays:
            break  # a second of silence after the stream: it is over
        continue
    i, sent = struct.unpack_from("!QQ", data)
    seen.add(i)
    delays.append((time.monotonic_ns() - sent) / 1e6)
json.dump({"received": len(delays), "unique": len(seen), "delays_ms": delays}, open(out, "w"))
"""


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def run(*argv: str, ns: str | None = None, input: str | None = None) -> str:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc/<pid>/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_rusage(p: subprocess.Popen[str], timeout: float) -> float:
    """Reap a child and return the CPU seconds it used (ru_utime + ru_stime)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return ru.ru_utime + ru.ru_stime
        if time.monotonic() > deadline:
            p.kill()
            raise RuntimeError(f"pid {p.pid} did not finish in {timeout:.0f} s")
        time.sleep(0.05)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


# -- cpu ------------------------------------------------------------------------------------
class Namespaces:
    """Two namespaces joined by a veth pair, made here and removed by name afterwards."""

    def __enter__(self) -> Namespaces:
        for ns in (NS_A, NS_B):
            if Path(f"/run/netns/{ns}").exists():
                run("ip", "netns", "del", ns)  # left by an interrupted run of this benchmark
            run("ip", "netns", "add", ns)
        run("ip", "link", "add", VETH_A, "netns", NS_A, "type", "veth", "peer", "name", VETH_B, "netns", NS_B)
        for ns, dev, addr in ((NS_A, VETH_A, ADDR_A), (NS_B, VETH_B, ADDR_B)):
            run("ip", "addr", "add", f"{addr}/30", "dev", dev, ns=ns)
            run("ip", "link", "set", dev, "up", ns=ns)
            run("ip", "link", "set", "lo", "up", ns=ns)
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (NS_A, NS_B):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


#: the helper as the lab runs it, and the same with SPIN = 0: no early wake-up to spin
#: towards each packet's due time (a diagnostic: what the spin costs, what it buys)
HELPER = ["-m", "lab.runtime.nfqdelay"]
NO_SPIN = ["-c", "import sys, lab.runtime.nfqdelay as m; m.SPIN = 0.0; sys.exit(m.main(sys.argv[1:]))"]


def stream(
    rate: int, seconds: float, delay_ms: float | None, tmp: Path, helper_argv: list[str] = HELPER
) -> dict[str, Any]:
    """One stream A -> B, through the helper when ``delay_ms`` is set."""
    helper = None
    queues = [QueueSpec(0, VETH_A, "out", delay_ms, 0.0, 0)] if delay_ms is not None else []
    out: dict[str, Any] = {"delay_ms": delay_ms}
    try:
        if queues:
            run("iptables-restore", "--noflush", ns=NS_A, input=rules(queues))
            cfg = tmp / "nfqdelay.json"
            cfg.write_text(
                json.dumps(
                    {"queues": [{"num": 0, "delay_ms": delay_ms, "name": "bench"}], "stats": str(tmp / "s.json")}
                )
            )
            helper = subprocess.Popen(
                ["ip", "netns", "exec", NS_A, sys.executable, *helper_argv, str(cfg)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert helper.stdout is not None
            if helper.stdout.readline().strip() != "ready":
                raise RuntimeError("the delay helper did not say ready")
        result = tmp / "received.json"
        recv = subprocess.Popen(
            ["ip", "netns", "exec", NS_B, sys.executable, "-c", RECEIVER, str(PORT), str(result)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert recv.stdout is not None
        recv.stdout.readline()
        before = cpu_seconds(helper.pid) if helper else 0.0
        t = time.monotonic()
        send = subprocess.Popen(
            ["ip", "netns", "exec", NS_A, sys.executable, "-c", SENDER, ADDR_B, str(PORT), str(rate), str(seconds)]
        )
        out["sender_cpu_s"] = wait_rusage(send, seconds + 60)
        out["send_s"] = time.monotonic() - t
        out["receiver_cpu_s"] = wait_rusage(recv, 120)
        if helper:
            out["helper_cpu_s"] = cpu_seconds(helper.pid) - before
        got = json.loads(result.read_text())
        delays = got.pop("delays_ms")
        out.update(got, sent=int(rate * seconds))
        out.update(
            delay_median_ms=statistics.median(delays),
            delay_p99_ms=pct(delays, 0.99),
            delay_max_ms=max(delays),
        )
    finally:
        if helper is not None:
            helper.send_signal(signal.SIGTERM)
            helper.wait(timeout=10)
            stats = json.loads((tmp / "s.json").read_text())
            q = stats["queues"][0]
            out.update(helper_late_mean_ms=q["late_mean_ms"], helper_late_p99_ms=q["late_p99_ms"])
            run("iptables-restore", "--noflush", ns=NS_A, input=rules(queues, "-D"))
    return out


def bench_cpu(a: argparse.Namespace, figures: list[dict[str, Any]]) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="wan-bench-"))
    cases: dict[str, Any] = {}
    with Namespaces():
        for delay, argv in ((None, HELPER), (20.0, HELPER), (40.0, HELPER), (20.0, NO_SPIN)):
            name = "no delay" if delay is None else f"{delay:g} ms" + (", SPIN = 0" if argv is NO_SPIN else "")
            say(f"cpu: {a.rate} datagrams/s for {a.seconds:g} s, {name}")
            cases[name] = stream(a.rate, a.seconds, delay, tmp, argv)
    base = cases["no delay"]
    base_cpu = base["sender_cpu_s"] + base["receiver_cpu_s"]
    for name, c in cases.items():
        if c["delay_ms"] is None:
            continue
        helper_pct = c["helper_cpu_s"] / c["send_s"] * 100
        figures.append(
            fig(
                f"helper CPU at {a.rate}/s, {name}",
                helper_pct,
                "% of a core",
                None,
                None,
                f"{c['helper_cpu_s']:.2f} s CPU over {c['send_s']:.1f} s",
            )
        )
        figures.append(
            fig(f"helper CPU per packet, {name}", c["helper_cpu_s"] / c["received"] * 1e6, "us", None, None, "")
        )
        stream_cpu = c["sender_cpu_s"] + c["receiver_cpu_s"] + c["helper_cpu_s"]
        figures.append(
            fig(
                f"stream's CPU (sender+receiver+helper), {name}",
                stream_cpu,
                "s",
                base_cpu,
                "no delay: sender+receiver",
                "",
            )
        )
        err = (c["delay_median_ms"] - c["delay_ms"]) / c["delay_ms"] * 100
        figures.append(
            fig(
                f"one-way delay median, {name}",
                c["delay_median_ms"],
                "ms",
                base["delay_median_ms"],
                "no delay",
                f"{err:+.1f}% of the setting; p99 {c['delay_p99_ms']:.2f} ms",
                ratio=False,
            )
        )
        figures.append(
            fig(
                f"datagrams lost, {name}",
                c["sent"] - c["unique"],
                "of " + str(c["sent"]),
                base["sent"] - base["unique"],
                "no delay",
                "",
                ratio=False,
            )
        )
    return cases


# -- rtt ------------------------------------------------------------------------------------
def _ip_towards(plan: Plan, frm: str, to: str) -> str:
    """``to``'s address on a subnet ``frm`` shares with it, else its first one."""
    mine = {i.subnet for i in plan.nodes[frm].interfaces}
    ips = [(i.subnet, i.ip) for i in plan.nodes[to].interfaces if i.ip]
    return next((ip for sub, ip in ips if sub in mine), ips[0][1])


def _pings(lab: Lab, frm: str, ip: str, count: int) -> list[float]:
    r = lab.node(frm).run(["ping", "-n", "-U", "-c", str(count), "-i", "0.1", "-W", "2", ip], timeout=count * 0.1 + 40)
    return [float(line.split("time=", 1)[1].split()[0]) for line in r.stdout.splitlines() if "time=" in line]


RTT_CASES = [  # (label, node path as traced, the delayed link it measures)
    ("LAN link pc-lan-sa (3 ms)", ["pc-lan", "dns"]),
    ("MAN link ra-rb (10 ms)", ["ra", "rb"]),
    ("WAN link ra-rc (40 ms)", ["ra", "rc"]),
    ("path pc-lan -> mail", ["pc-lan", "mail"]),
    ("path pc-man -> rb -> ra -> mail", ["pc-man", "rb", "ra", "mail"]),
    ("path pc-wan -> rc -> ra -> mail", ["pc-wan", "rc", "ra", "mail"]),
]


def bench_rtt(a: argparse.Namespace, figures: list[dict[str, Any]]) -> dict[str, Any]:
    plan = make_plan(load_topology(REPO / "topologies" / "wan.yaml"))
    lab = Lab(plan)
    out: dict[str, Any] = {}
    try:
        say("rtt: topologies/wan.yaml up")
        lab.up()
        out["mechanism"] = "NFQUEUE helper" if any(s.daemon == "nfqdelay" for s in lab.services) else "tc netem"
        floor = _pings(lab, "pc-man", _ip_towards(plan, "pc-man", "rb"), a.pings)
        out["undelayed pc-man -> rb"] = {"median_ms": statistics.median(floor), "max_ms": max(floor)}
        for label, nodes in RTT_CASES:
            want = path_delay(plan, nodes).rtt * 1000
            times = _pings(lab, nodes[0], _ip_towards(plan, nodes[-2], nodes[-1]), a.pings)
            med = statistics.median(times)
            err = (med - want) / want * 100
            out[label] = {
                "expected_ms": want,
                "median_ms": med,
                "min_ms": min(times),
                "p90_ms": pct(times, 0.9),
                "error_pct": err,
                "answered": len(times),
            }
            say(f"rtt: {label}: median {med:.2f} ms, expected {want:.2f} ms ({err:+.1f}%)")
            figures.append(
                fig(
                    f"RTT {label}",
                    med,
                    "ms",
                    statistics.median(floor),
                    "undelayed link pc-man -> rb",
                    f"configured {want:g} ms: {err:+.1f}%, min {min(times):.2f}, p90 {pct(times, 0.9):.2f}",
                    ratio=False,
                )
            )
    finally:
        lab.down()
    return out


# -- vpn ------------------------------------------------------------------------------------
def bench_vpn(a: argparse.Namespace, figures: list[dict[str, Any]]) -> dict[str, Any]:
    plan = make_plan(load_topology(REPO / "topologies" / "multisite-vpn.yaml"))
    lab = Lab(plan)
    out: dict[str, Any] = {"rounds": []}
    try:
        say("vpn: topologies/multisite-vpn.yaml up")
        lab.up()
        out["bring_up_s"] = {k: round(v, 3) for k, v in lab.timings.items() if k.endswith("/openvpn")}
        svcs = [s for s in lab.services if isinstance(s, OpenVpn)]
        svcs.sort(key=lambda s: not any(e.role == "server" for e in s.ends))  # the ends that serve first
        for k in range(a.rounds):
            for s in svcs:
                s.stop()
            started: dict[tuple[str, str], float] = {}
            t0 = time.monotonic()
            for s in svcs:
                at = time.monotonic() - t0
                s.start()
                for e in s.ends:
                    started[(s.node.name, e.vpn)] = at
            ready: dict[tuple[str, str], float] = {}
            while len(ready) < len(started) and time.monotonic() - t0 < 60:
                for s in svcs:
                    for e in s.ends:
                        key = (s.node.name, e.vpn)
                        log = s.folder(e) / f"openvpn-{e.vpn}.log"
                        if key not in ready and log.exists() and READY in log.read_text(errors="replace"):
                            ready[key] = time.monotonic() - t0
                time.sleep(0.005)
            tunnels: dict[str, float] = {}
            for vpn in sorted({v for _, v in started}):
                ends = [key for key in started if key[1] == vpn]
                if all(key in ready for key in ends):
                    tunnels[vpn] = max(ready[key] for key in ends) - min(started[key] for key in ends)
            out["rounds"].append({"tunnels": tunnels, "ends": {f"{n}/{v}": round(t, 3) for (n, v), t in ready.items()}})
            say(f"vpn: round {k + 1}: " + ", ".join(f"{v} {t:.2f} s" for v, t in tunnels.items()))
        for vpn in sorted({v for r in out["rounds"] for v in r["tunnels"]}):
            times = [r["tunnels"][vpn] for r in out["rounds"] if vpn in r["tunnels"]]
            figures.append(
                fig(
                    f"tunnel {vpn} set-up (start -> both ends ready)",
                    statistics.median(times),
                    "s",
                    None,
                    None,
                    f"{len(times)} rounds: " + ", ".join(f"{t:.2f}" for t in times),
                )
            )
        for name, t in out["bring_up_s"].items():
            figures.append(
                fig(
                    f"bring-up stage time {name}",
                    t,
                    "s",
                    None,
                    None,
                    "render + check + start + ready, in the lab's up()",
                )
            )
    finally:
        lab.down()
    return out


# -- output ---------------------------------------------------------------------------------
def fig(
    label: str,
    value: float,
    unit: str,
    baseline: float | None,
    baseline_label: str | None,
    note: str,
    ratio: bool = True,
) -> dict[str, Any]:
    """One printed figure; ``ratio=False`` where the baseline is a floor, not a rival."""
    return {
        "label": label,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_label": baseline_label,
        "note": note,
        "ratio": value / baseline if ratio and baseline else None,
    }


def table(figures: list[dict[str, Any]]) -> str:
    def num(v: float | None, unit: str) -> str:
        if v is None:
            return "-"
        if isinstance(v, int):
            return f"{v} {unit}".strip()
        return f"{v:.3f} {unit}".strip() if abs(v) < 10 else f"{v:.1f} {unit}".strip()

    rows = [("figure", "ours", "baseline", "ratio", "note")]
    for f in figures:
        ratio = f"{f['ratio']:.2f}" if f["ratio"] is not None else "-"
        rows.append((f["label"], num(f["value"], f["unit"]), num(f["baseline"], f["unit"]), ratio, f["note"]))
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        " | ".join(c.ljust(w[i]) if i in (0, 4) else c.rjust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows
    ]
    lines.insert(1, "-+-".join("-" * x for x in w))
    uses: dict[str, list[str]] = {}
    for f in figures:
        if f["baseline_label"]:
            uses.setdefault(f["baseline_label"], []).append(f["label"].split(",")[0].split(" (")[0])
    legend = [f"  baseline '{b}': {', '.join(dict.fromkeys(names))}" for b, names in uses.items()]
    return "\n".join(lines) + "\nratio = ours / baseline\n" + "\n".join(legend) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    ap.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--rate", type=int, default=1000, help="datagrams per second of the cpu stream (default 1000)")
    ap.add_argument("--seconds", type=float, default=20, help="length of each cpu stream (default 20 s)")
    ap.add_argument("--pings", type=int, default=50, help="pings per round trip measured (default 50)")
    ap.add_argument("--rounds", type=int, default=5, help="restarts of the tunnels (default 5)")
    ap.add_argument("--out", type=Path, help="also write the figures and raw results as JSON here")
    a = ap.parse_args(argv)
    only = a.only.split(",") if a.only else list(SECTIONS)
    if bad := [s for s in only if s not in SECTIONS]:
        ap.error(f"unknown section(s) {bad}; sections: {', '.join(SECTIONS)}")
    if os.geteuid() != 0:
        print("wan_bench.py builds namespaces and labs: run it as root", file=sys.stderr)
        return 3
    load = os.getloadavg()
    figures: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for section in only:
        try:
            raw[section] = {"cpu": bench_cpu, "rtt": bench_rtt, "vpn": bench_vpn}[section](a, figures)
        except Exception as exc:  # one broken section must not cost the others' figures
            errors[section] = f"{type(exc).__name__}: {exc}"
            say(f"SECTION FAILED: {section}: {errors[section]}")
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(table(figures), end="")
    for section, err in errors.items():
        print(f"SECTION FAILED: {section}: {err}")
    if a.out:
        a.out.write_text(
            json.dumps({"load": load, "figures": figures, "raw": raw, "errors": errors}, indent=2, default=str)
        )
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
