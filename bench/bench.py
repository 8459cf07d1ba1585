"""mail-lab benchmarks, each next to a baseline measured side by side in the same run.

    .venv/bin/python bench/bench.py                 # everything, median of 3 runs
    .venv/bin/python bench/bench.py --quick         # tiny sizes, 1 run (the test suite's check)
    .venv/bin/python bench/bench.py --only mail,relay --runs 5 --out /tmp/b.json

Figures (ratio = ours / baseline):

ready       Lab.up() of the default lab (topologies/dmz.yaml) and teardown (Lab.down());
            baseline: the same network built bare (Mininet + LinuxBridge + hosts, no
            services, no DHCP), built and stopped right after it.
stars       Lab.up() of stars of 50, 100 and 250 DHCP hosts (the tree generator's
            depth=1, fanout=1 output, with dns+dhcp as in topologies/tree.yaml); same bare
            baseline.
scenario    run_scenario() on the default scenario of ``lab run`` (lab.cli.DEFAULT_SCENARIO,
            now scenarios/dmz.yaml) and on scenarios/star.yaml (the campus skeleton that
            was scenarios/default.yaml), captures, analysis and report included; no baseline.
mail        messages/s from the first send to the last Maildir file, submission on 587
            (STARTTLS, certificate verified against the lab CA, AUTH) -> LMTP -> Maildir
            with 1, 4 and 16 connections (bench/mailload.py inside pc1);
            baseline: Postfix's smtp-source (plaintext, port 25, same connections and
            message count) from the same host into the same server.
relay       the MX relay path of the dmz lab: ext-pc submits to ext-mail (587, STARTTLS,
            AUTH) for bob@projet.dz, ext-mail relays by MX through the firewall's port
            forward to mail, counted in bob's Maildir; baseline: smtp-source inside
            ext-mail into its own port 25 (mynetworks may relay), same path onwards.
ospf        OSPF convergence (from the first router's FRR start until every router has a
            kernel route to every subnet) and reroute after cutting r1-r2 (until h1's
            10 ms ping to h2 is answered again, the long way) on rings of 4 and 16
            routers; the cut is made twice: right after convergence (SPF hold timers
            still backed off) and, after the link is back, with routing quiet for 5 s.
pcap        lab.capture analysis packets/s on a generated 1M-packet capture
            (bench/analyse_bench.py); baseline: ``tshark -r FILE > /dev/null``.
memory      peak RSS of this process (getrusage): before the pcap analysis (labs
            only) and for the whole run.

Labs use the name prefix ``mlb`` and bare networks ``mlbx*`` names, so the benchmark can
run next to other labs (which make its timings noisier: the JSON records the labs that
were alive during the run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import analyse_bench  # noqa: E402
import topos  # noqa: E402
from figures import Figure, table  # noqa: E402
from mailpath import MailPath  # noqa: E402
from ospfbench import ospf_run  # noqa: E402

from lab.deploy.lab import Lab  # noqa: E402
from lab.model.load import load_topology  # noqa: E402
from lab.model.plan import Plan, make_plan  # noqa: E402
from lab.model.scenario import load_scenario  # noqa: E402

PREFIX = "mlb"  # the labs' kernel-name prefix (never ml1..ml99: other sessions use those)
BARE = "mlbx"  # names of the bare Mininet baseline's switch and hosts
SECTIONS = (
    "ready",
    "topologies",
    "stars",
    "scenario",
    "mail",
    "relay",
    "ospf",
    "pcap",
)  # pcap last: it is the memory peak
T0 = time.monotonic()
QUIET = False


def say(msg: str) -> None:
    if not QUIET:
        print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.a = args
        self.figures: dict[str, Figure] = {}
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []
        self.sections: dict[str, Any] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="mail-lab-bench-"))

    def fig(self, key: str, label: str, unit: str, **kw: Any) -> Figure:
        if key not in self.figures:
            self.figures[key] = Figure(key, label, unit, **kw)
        return self.figures[key]

    # -- labs ----------------------------------------------------------------------
    @staticmethod
    def lab(plan: Plan) -> Lab:
        return Lab(plan, prefix=PREFIX)

    def timed_lab(self, plan: Plan, body: Callable[[Lab], None] | None = None) -> tuple[float, float, dict[str, float]]:
        """Lab.up() wall time, optional work, Lab.down() wall time (always torn down)."""
        lab = self.lab(plan)
        up = down = float("nan")
        try:
            t = time.monotonic()
            lab.up()
            up = time.monotonic() - t
            if body is not None:
                body(lab)
        finally:
            t = time.monotonic()
            lab.down()
            down = time.monotonic() - t
        return up, down, dict(lab.timings)

    # -- sections ------------------------------------------------------------------
    def ready(self) -> None:
        plan = make_plan(load_topology(REPO / "topologies" / "dmz.yaml"))
        hosts = sum(1 for n in plan.nodes.values() if n.role != "switch")
        f = self.fig(
            "ready_default",
            "default lab ready (dmz.yaml, Lab.up)",
            "s",
            baseline_label=f"bare Mininet, {hosts} hosts + 1 bridge",
            target_text="<= 2.5 s",
            target=lambda f: f.median <= 2.5,
        )
        td = self.fig(
            "teardown_default",
            "default lab teardown (Lab.down)",
            "s",
            baseline_label=f"bare Mininet net.stop(), {hosts} hosts",
            target_text="<= 2 s",
            target=lambda f: f.median <= 2.0,
        )
        phases: list[dict[str, float]] = []
        for i in range(self.a.runs):
            up, down, timings = self.timed_lab(plan)
            phases.append({k: round(v, 4) for k, v in timings.items()})
            bup, bdown = bare_network(hosts)
            say(f"default lab run {i + 1}: ready {up:.2f} s, down {down:.2f} s; bare {bup:.2f} s / {bdown:.2f} s")
            f.values.append(up)
            f.baseline_values.append(bup)
            td.values.append(down)
            td.baseline_values.append(bdown)
        f.details["phases"] = phases

    def topologies(self) -> None:
        """Build and teardown time of every shipped topology (the default lab is dmz.yaml)."""
        paths = sorted((REPO / "topologies").glob("*.yaml"))
        if self.a.quick:
            paths = [REPO / "topologies" / "dmz.yaml"]
        for path in paths:
            plan = make_plan(load_topology(path))
            hosts = sum(1 for n in plan.nodes.values() if n.role != "switch")
            default = " = the default lab" if path.name == "dmz.yaml" else ""
            kw: dict[str, Any] = {}
            if path.name == "dmz.yaml":
                kw = {"target_text": "<= 3 s", "target": lambda f: f.median <= 3.0}
            f = self.fig(
                f"ready_{path.stem}",
                f"{path.name} ready (Lab.up){default}",
                "s",
                baseline_label=f"bare Mininet star, {hosts} hosts",
                **kw,
            )
            td = self.fig(
                f"teardown_{path.stem}",
                f"{path.name} teardown (Lab.down)",
                "s",
                baseline_label=f"bare Mininet net.stop(), {hosts} hosts",
                **({"target_text": "<= 2 s", "target": lambda f: f.median <= 2.0} if default else {}),
            )
            for i in range(self.a.runs):
                up, down, _ = self.timed_lab(plan)
                bup, bdown = bare_network(hosts)
                say(f"{path.name} run {i + 1}: ready {up:.2f} s, down {down:.2f} s; bare {bup:.2f} s / {bdown:.2f} s")
                f.values.append(up)
                f.baseline_values.append(bup)
                td.values.append(down)
                td.baseline_values.append(bdown)

    def stars(self) -> None:
        for n in self.a.stars:
            plan = make_plan(load_topology(topos.star(self.tmp, n)))
            label = f"star of {n} DHCP hosts ready (Lab.up)"
            kw: dict[str, Any] = {}
            if n == 250:
                kw = {"target_text": "<= 30 s", "target": lambda f: f.median <= 30.0}
            f = self.fig(f"ready_star_{n}", label, "s", baseline_label=f"bare Mininet, {n + 2} hosts + 1 bridge", **kw)
            downs: list[float] = []
            phases = []
            for i in range(self.a.runs):
                up, down, timings = self.timed_lab(plan)
                bup, bdown = bare_network(n + 2)
                say(
                    f"star {n} run {i + 1}: ready {up:.2f} s (bare {bup:.2f} s), down {down:.2f} s (bare {bdown:.2f} s)"
                )
                f.values.append(up)
                f.baseline_values.append(bup)
                downs.append(down)
                phases.append(
                    {k: round(v, 4) for k, v in timings.items() if "/" not in k or k.startswith(("dns", "dhcp/"))}
                )
            f.details["teardown_s"] = [round(x, 4) for x in downs]
            f.details["phases"] = phases

    def scenario(self) -> None:
        """The default scenario of ``lab run`` (lab.cli.DEFAULT_SCENARIO) and the star
        campus skeleton (scenarios/star.yaml, once scenarios/default.yaml), end to end."""
        from lab.cli import DEFAULT_SCENARIO
        from lab.scenario.runner import run_scenario

        reports = self.tmp / "reports"
        todo = [("scenario_default", Path(DEFAULT_SCENARIO), 9.0)]
        others = [("scenario_security", "security.yaml", 20.0), ("scenario_star", "star.yaml", None)]
        if self.a.quick:  # the suite's check that the section works: security.yaml has its own test
            others = others[1:]
        for key, name, limit in others:
            path = REPO / "scenarios" / name
            if path.exists() and path.resolve() != Path(DEFAULT_SCENARIO).resolve():
                todo.append((key, path, limit))
        for key, path, limit in todo:
            f = self.fig(
                key,
                f"scenario {path.name}, whole run incl. captures + report (run_scenario)",
                "s",
                target_text=f"<= {limit:g} s" if limit else None,
                target=(lambda f, lim=limit: f.median <= lim) if limit else None,
            )
            f.details["scenario"] = str(path.relative_to(REPO))
            for i in range(self.a.runs):
                t = time.monotonic()
                scn = load_scenario(path)
                result, report_dir = run_scenario(scn, reports, prefix=PREFIX)
                wall = time.monotonic() - t
                say(f"scenario {path.name} run {i + 1}: {result.status} in {wall:.2f} s")
                if result.status != "passed":
                    raise RuntimeError(
                        f"scenario {path.name} {result.status}: {result.error or ''} (report {report_dir})"
                    )
                f.values.append(wall)
                f.details.setdefault("runner_duration_s", []).append(result.duration)
                f.details.setdefault("timings", []).append(result.timings)
            shutil.rmtree(reports, ignore_errors=True)

    def mail(self) -> None:
        plan = make_plan(load_topology(REPO / "topologies" / "star.yaml"))
        lab = self.lab(plan)
        try:
            lab.up()
            mp = MailPath(
                lab,
                client="pc1",
                server_node="mail",
                server="mail.projet.dz",
                port=587,
                login="alice@projet.dz",
                sender="alice@projet.dz",
                rcpt="bob@projet.dz",
                store="mail",
                source_node="pc1",
                source_target=f"{lab.node('mail').ip}:25",
                source_helo=plan.nodes["pc1"].fqdn,
            )
            mp.warm_up()
            for c in self.a.conns:
                kw: dict[str, Any] = {}
                if c >= 4:
                    kw = {
                        "target_text": ">= 300 msg/s and >= 90% of smtp-source",
                        "target": lambda f: f.median >= 300 and (f.ratio or 0) >= 0.9,
                    }
                self.fig(
                    f"mail_submission_c{c}",
                    f"mail 587 STARTTLS+AUTH -> LMTP -> Maildir, {c} conn",
                    "msg/s",
                    higher_is_better=True,
                    baseline_label=f"smtp-source -s {c} (plain, port 25)",
                    **kw,
                )
            for i in range(self.a.runs):
                for c in self.a.conns:
                    self.measure_mail(self.figures[f"mail_submission_c{c}"], mp, c, f"mail {c} conn run {i + 1}")
        finally:
            lab.down()

    def measure_mail(self, f: Figure, mp: "MailPath", conns: int, what: str) -> None:
        """One run of our client and of smtp-source on the same path, side by side."""
        ours = mp.ours(self.a.messages, conns)
        theirs = mp.smtp_source(self.a.messages, conns)
        say(f"{what}: {ours['rate']:.0f} msg/s, smtp-source {theirs['rate']:.0f} msg/s")
        f.values.append(ours["rate"])
        f.baseline_values.append(theirs["rate"])
        f.details.setdefault("ours", []).append(ours)
        f.details.setdefault("smtp_source", []).append(theirs)

    def relay(self) -> None:
        plan = make_plan(load_topology(REPO / "topologies" / "dmz.yaml"))
        lab = self.lab(plan)
        c = self.a.relay_conns
        f = self.fig(
            f"mail_relay_c{c}",
            f"mail MX relay ext-pc -> ext-mail -> fw -> mail, {c} conn",
            "msg/s",
            higher_is_better=True,
            baseline_label=f"smtp-source -s {c} in ext-mail (port 25)",
            target_text=">= 300 msg/s and >= 90% of smtp-source",
            target=lambda f: f.median >= 300 and (f.ratio or 0) >= 0.9,
        )
        try:
            lab.up()
            mp = MailPath(
                lab,
                client="ext-pc",
                server_node="ext-mail",
                server="ext-mail.partenaire.dz",
                port=587,
                login="carol@partenaire.dz",
                sender="carol@partenaire.dz",
                rcpt="bob@projet.dz",
                store="mail",
                source_node="ext-mail",
                source_target="127.0.0.1:25",
                source_helo=plan.nodes["ext-mail"].fqdn,
            )
            mp.warm_up()
            for i in range(self.a.runs):
                self.measure_mail(f, mp, c, f"relay {c} conn run {i + 1}")
        finally:
            lab.down()

    def pcap(self) -> None:
        n = self.a.packets
        f = self.fig(
            "pcap_analysis",
            f"pcap analysis, {n:,} packets (lab.capture)",
            "pkt/s",
            higher_is_better=True,
            baseline_label="tshark -r FILE > /dev/null",
            target_text=">= 200k pkt/s and faster than tshark",
            target=lambda f: f.median >= 200_000 and (f.ratio or 0) > 1.0,
        )
        if shutil.which("tshark") is None:
            raise RuntimeError("tshark is not installed (apt-get install -y tshark)")
        pcap = self.tmp / f"bench-{n}.pcap"
        t = time.monotonic()
        info = analyse_bench.build_pcap(pcap, n)
        f.details.update(info)
        f.details["build_s"] = round(time.monotonic() - t, 3)
        f.details["bytes"] = pcap.stat().st_size
        f.details["rss_before_mb"] = round(rss_mb(), 1)
        try:
            for i in range(self.a.runs):
                t = time.perf_counter()
                res = analyse_bench.analyse_once(pcap)
                ours = time.perf_counter() - t
                t = time.perf_counter()
                analyse_bench.tshark_plain_once(pcap)
                theirs = time.perf_counter() - t
                say(f"pcap run {i + 1}: ours {ours:.2f} s ({n / ours:,.0f} pkt/s), tshark {theirs:.2f} s")
                f.values.append(n / ours)
                f.baseline_values.append(n / theirs)
                f.details.setdefault("ours_s", []).append(round(ours, 4))
                f.details.setdefault("tshark_s", []).append(round(theirs, 4))
                f.details["result"] = res
        finally:
            pcap.unlink(missing_ok=True)
        f.details["rss_after_mb"] = round(rss_mb(), 1)

    def ospf(self) -> None:
        rings: list[tuple[int, Path]] = []
        for n in self.a.rings:
            rings.append((n, REPO / "topologies" / "ring-l3.yaml" if n == 4 else topos.ring(self.tmp, n)))
        for n, path in rings:
            plan = make_plan(load_topology(path))
            conv = self.fig(f"ospf_ring{n}_convergence", f"OSPF convergence, ring of {n} routers", "s")
            rr = self.fig(f"ospf_ring{n}_reroute", f"OSPF reroute after cutting r1-r2, ring of {n} (settled)", "s")
            ru = self.fig(
                f"ospf_ring{n}_reroute_unsettled", f"OSPF reroute, cut right after convergence, ring of {n}", "s"
            )
            for i in range(self.a.runs):
                out = ospf_run(self.lab(plan), plan)
                say(
                    f"ring {n} run {i + 1}: ready {out['ready_s']:.2f} s, converged {out['convergence_s']:.2f} s "
                    f"after FRR start; rerouted {out['settled']['reroute_s']:.3f} s after the cut "
                    f"({out['unsettled']['reroute_s']:.3f} s when cut right after convergence)"
                )
                conv.values.append(out["convergence_s"])
                rr.values.append(out["settled"]["reroute_s"])
                ru.values.append(out["unsettled"]["reroute_s"])
                conv.details.setdefault("runs", []).append(out)

    # -- driver --------------------------------------------------------------------
    def run(self) -> None:
        labs_rss = None
        for section in [x for x in SECTIONS if x in self.a.only]:
            if section == "pcap":
                labs_rss = rss_mb()
            say(f"== {section}")
            t = time.monotonic()
            load = round(os.getloadavg()[0], 2)
            try:
                getattr(self, section)()
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # record and go on with the others
                import traceback

                self.errors[section] = f"{type(exc).__name__}: {exc}"
                say(f"{section} failed: {exc}\n{traceback.format_exc()}")
            say(f"   {section} took {time.monotonic() - t:.1f} s, peak RSS so far {rss_mb():.0f} MB")
            self.sections[section] = {"seconds": round(time.monotonic() - t, 2), "loadavg_1min_before": load}
            self.notes.append(f"peak RSS after {section}: {rss_mb():.1f} MB")
        f = self.fig("peak_rss_labs", "peak RSS of the harness, labs only (before the pcap analysis)", "MB")
        f.values.append(labs_rss if labs_rss is not None else rss_mb())
        f = self.fig("peak_rss", "peak RSS of the harness process, whole run (getrusage)", "MB")
        f.values.append(rss_mb())
        f.details["checkpoints"] = self.notes

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- bare Mininet baseline ------------------------------------------------------------


def bare_network(hosts: int) -> tuple[float, float]:
    """Build and start a bare Mininet star (LinuxBridge, ``hosts`` hosts, Mininet's own
    addressing, no services); return (build+start seconds, stop seconds)."""
    import mininet.log
    from mininet.net import Mininet
    from mininet.node import Host
    from mininet.nodelib import LinuxBridge

    mininet.log.setLogLevel("error")
    net = None
    up = down = float("nan")
    t = time.monotonic()
    try:
        net = Mininet(
            topo=None, build=False, controller=None, autoSetMacs=False, autoStaticArp=False, waitConnected=False
        )
        sw = net.addSwitch(f"{BARE}s1", cls=LinuxBridge, dpid="00000000000000f1")
        for i in range(1, hosts + 1):
            h = net.addHost(f"{BARE}h{i}", cls=Host)
            net.addLink(h, sw)
        net.build()
        net.start()
        up = time.monotonic() - t
    finally:
        if net is not None:
            t = time.monotonic()
            net.stop()
            down = time.monotonic() - t
    return up, down


def other_labs() -> list[str]:
    root = Path(os.environ.get("MAIL_LAB_STATE", "/var/lib/mail-lab")) / "prefixes"
    try:
        return sorted(p.name for p in root.iterdir() if p.name != PREFIX)
    except OSError:
        return []


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, 1 run: star of 10, 20 messages, 20k-packet pcap, no 16-router ring",
    )
    ap.add_argument("--runs", type=int, help="runs of every figure; the median is reported (default 3, quick 1)")
    ap.add_argument("--out", type=Path, help="JSON file (default reports/bench-<timestamp>.json)")
    ap.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--messages", type=int, help="messages per mail measurement (default 1000, quick 20)")
    ap.add_argument("--packets", type=int, help="packets in the generated pcap (default 1,000,000, quick 20,000)")
    ap.add_argument("--stars", help="star sizes, comma-separated (default 50,100,250, quick 10)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    a = ap.parse_args(argv)
    a.runs = a.runs or (1 if a.quick else 3)
    a.messages = a.messages or (20 if a.quick else 1000)
    a.packets = a.packets or (20_000 if a.quick else 1_000_000)
    a.stars = [int(x) for x in a.stars.split(",")] if a.stars else ([10] if a.quick else [50, 100, 250])
    a.conns = [1, 4, 16]
    a.relay_conns = 4
    a.rings = [4] if a.quick else [4, 16]
    a.only = a.only.split(",") if a.only else list(SECTIONS)
    bad = [s for s in a.only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; sections: {', '.join(SECTIONS)}")
    if a.out is None:
        a.out = REPO / "reports" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    return a


def main(argv: list[str] | None = None) -> int:
    global QUIET
    a = parse_args(argv)
    QUIET = a.quiet
    if os.geteuid() != 0:
        print("bench.py builds labs: run it as root", file=sys.stderr)
        return 3

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)

    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    labs_before = other_labs()
    load_before = os.getloadavg()
    b = Bench(a)
    try:
        b.run()
    finally:
        b.close()
    wall = time.monotonic() - T0
    out = {
        "started": started,
        "wall_s": round(wall, 2),
        "quick": a.quick,
        "runs": a.runs,
        "config": {
            "sections": a.only,
            "stars": a.stars,
            "messages": a.messages,
            "conns": a.conns,
            "relay_conns": a.relay_conns,
            "packets": a.packets,
            "rings": a.rings,
            "prefix": PREFIX,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "other_labs_before": labs_before,
            "other_labs_after": other_labs(),
        },
        "sections": b.sections,
        "figures": {k: f.as_json() for k, f in b.figures.items()},
        "errors": b.errors,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(table(b.figures, b.errors))
    print(f"wrote {a.out} ({wall:.0f} s)")
    return 1 if b.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
