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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import analyse_bench  # noqa: E402
import topos  # noqa: E402

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


def med(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# -- figures -----------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    label: str
    unit: str  # "s", "msg/s", "pkt/s", "MB"
    higher_is_better: bool = False
    values: list[float] = field(default_factory=list)
    baseline_label: str | None = None
    baseline_values: list[float] = field(default_factory=list)
    target_text: str | None = None
    target: Callable[["Figure"], bool] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return med(self.values)

    @property
    def baseline(self) -> float | None:
        return med(self.baseline_values)

    @property
    def ratio(self) -> float | None:
        m, b = self.median, self.baseline
        if m is None or not b:
            return None
        return m / b

    @property
    def met(self) -> bool | None:
        if self.target is None or self.median is None:
            return None
        return bool(self.target(self))

    def as_json(self) -> dict[str, Any]:
        r = lambda x: None if x is None else round(x, 4)  # noqa: E731
        return {
            "label": self.label,
            "unit": self.unit,
            "median": r(self.median),
            "values": [r(v) for v in self.values],
            "higher_is_better": self.higher_is_better,
            "baseline": None
            if self.baseline_label is None
            else {
                "label": self.baseline_label,
                "median": r(self.baseline),
                "values": [r(v) for v in self.baseline_values],
            },
            "ratio": r(self.ratio),
            "ratio_means": "ours / baseline",
            "target": self.target_text,
            "met": self.met,
            "details": self.details,
        }


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
        for key, name, limit in (("scenario_security", "security.yaml", 20.0), ("scenario_star", "star.yaml", None)):
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


# -- mail ----------------------------------------------------------------------------


def maildir_files(maildir: Path) -> dict[str, float]:
    """name -> ctime (when it appeared in new/ or cur/) of every message file."""
    out: dict[str, float] = {}
    for sub in ("new", "cur"):
        try:
            with os.scandir(maildir / sub) as it:
                for e in it:
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    out[e.name.split(":")[0]] = max(st.st_ctime, st.st_mtime)
        except FileNotFoundError:
            pass
    return out


class MailPath:
    """One mail path of a running lab: our client and smtp-source, counted in a Maildir."""

    def __init__(
        self,
        lab: Lab,
        *,
        client: str,
        server_node: str,
        server: str,
        port: int,
        login: str,
        sender: str,
        rcpt: str,
        store: str,
        source_node: str,
        source_target: str,
        source_helo: str,
    ):
        from lab.services.mail import Dovecot

        self.lab = lab
        self.client, self.server, self.port = client, server, port
        self.login, self.sender, self.rcpt = login, sender, rcpt
        user = lab.plan.user(login)
        assert user is not None, login
        self.password = user.password
        dov = lab.service(store, Dovecot)
        assert isinstance(dov, Dovecot), store
        self.maildir = dov.maildir(rcpt)
        self.source_node, self.source_target, self.source_helo = source_node, source_target, source_helo
        self.tag = 0

    def _wait(self, before: dict[str, float], want: int, timeout: float) -> tuple[int, float | None]:
        deadline = time.monotonic() + timeout
        while True:
            now = maildir_files(self.maildir)
            new = {k: v for k, v in now.items() if k not in before}
            if len(new) >= want or time.monotonic() > deadline:
                return len(new), (max(new.values()) if new else None)
            time.sleep(0.02)

    def ours(self, messages: int, conns: int, timeout: float = 120) -> dict[str, Any]:
        self.tag += 1
        payload = {
            "server": self.server,
            "port": self.port,
            "tls": "starttls",
            "login": self.login,
            "password": self.password,
            "sender": self.sender,
            "to": [self.rcpt],
            "conns": conns,
            "messages": messages,
            "ca_file": str(self.lab.dep.ca.ca_file),
            "size": 1000,
            "tag": f"{os.getpid()}.{self.tag}",
            "helo": self.lab.plan.nodes[self.client].fqdn,
            "timeout": 60,
        }
        before = maildir_files(self.maildir)
        r = self.lab.node(self.client).run(
            [sys.executable, str(BENCH / "mailload.py"), json.dumps(payload)], timeout=timeout
        )
        try:
            res = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise RuntimeError(
                f"mailload.py failed in {self.client} (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-1500:]}"
            ) from None
        if res["errors"] or res["accepted"] < messages:
            raise RuntimeError(f"mailload: {res['accepted']}/{messages} accepted: {res['errors']}")
        got, last = self._wait(before, res["accepted"], timeout)
        if got < res["accepted"] or last is None:
            raise RuntimeError(f"only {got} of {res['accepted']} messages reached {self.maildir} within {timeout} s")
        span = last - res["first_send"]
        return {
            "messages": got,
            "conns": conns,
            "seconds": round(span, 4),
            "rate": got / span,
            "client_s": round(res["done"] - res["first_send"], 4),
        }

    def smtp_source(self, messages: int, conns: int, timeout: float = 120) -> dict[str, Any]:
        before = maildir_files(self.maildir)
        args = [
            "smtp-source",
            "-d",
            "-l",
            "1000",
            "-m",
            str(messages),
            "-s",
            str(conns),
            "-M",
            self.source_helo,
            "-f",
            self.sender,
            "-t",
            self.rcpt,
            self.source_target,
        ]
        t0 = time.time()
        r = self.lab.node(self.source_node).run(args, timeout=timeout)
        done = time.time()
        if r.returncode != 0:
            raise RuntimeError(f"smtp-source failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-1000:]}")
        got, last = self._wait(before, messages, timeout)
        if got < messages or last is None:
            raise RuntimeError(
                f"only {got} of {messages} smtp-source messages reached {self.maildir} within {timeout} s"
            )
        span = last - t0
        return {
            "messages": got,
            "conns": conns,
            "seconds": round(span, 4),
            "rate": got / span,
            "client_s": round(done - t0, 4),
            "command": " ".join(args),
        }

    def warm_up(self) -> None:
        """One message each way first (DNS lookups, TLS session caches, process pools)."""
        self.ours(2, 1, timeout=60)
        self.smtp_source(2, 1, timeout=60)


# -- OSPF ----------------------------------------------------------------------------


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


# -- output ---------------------------------------------------------------------------


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v:.3f} s" if v < 1 else f"{v:.2f} s"
    if unit == "pkt/s":
        return f"{v / 1000:,.0f}k pkt/s"
    if unit == "msg/s":
        return f"{v:,.0f} msg/s"
    if unit == "MB":
        return f"{v:,.0f} MB"
    return f"{v:g} {unit}"


def table(figures: dict[str, Figure], errors: dict[str, str]) -> str:
    rows = [("figure", "median", "baseline", "ratio", "target", "met?")]
    for f in figures.values():
        met = {True: "yes", False: "NO", None: "-"}[f.met]
        rows.append(
            (
                f.label,
                fmt(f.median, f.unit),
                fmt(f.baseline, f.unit) if f.baseline_label else "-",
                f"{f.ratio:.2f}" if f.ratio is not None else "-",
                f.target_text or "-",
                met,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = []
    for j, r in enumerate(rows):
        lines.append(
            " | ".join(
                c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) if i < 4 else c.ljust(widths[i])
                for i, c in enumerate(r)
            ).rstrip()
        )
        if j == 0:
            lines.append("-+-".join("-" * w for w in widths))
    baselines = [f"  {f.label}: baseline = {f.baseline_label}" for f in figures.values() if f.baseline_label]
    text = "\n".join(lines) + "\nratio = ours / baseline (times: > 1 is slower; rates: < 1 is slower)\n"
    text += "\n".join(baselines) + "\n"
    for section, err in errors.items():
        text += f"\nSECTION FAILED: {section}: {err}"
    return text


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
