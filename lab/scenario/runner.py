"""Run a scenario: build the lab, execute its steps, collect, tear down, report."""
from __future__ import annotations

import logging
from dataclasses import asdict
import platform
import time
import traceback
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.model.scenario import Scenario
from lab.report.results import ERROR, FAILED, PASSED, RunResult, StepResult
from lab.report.writers import write_json, write_junit
from lab.runtime.lab import Lab, Progress
from lab.runtime.rundir import new_run_id
from lab.scenario.accounting import account
from lab.scenario.steps import ACTIONS, Context
from lab.services.base import command_version

log = logging.getLogger(__name__)


def environment() -> dict[str, str]:
    return {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postfix": command_version(["postconf", "-d", "-h", "mail_version"]),
        "dovecot": command_version(["dovecot", "--version"]),
        "bind": command_version(["named", "-v"]),
        "kea": command_version(["kea-dhcp4", "-V"]),
        "dhclient": command_version(["dhclient", "--version"]),
        "mininet": _mininet_version(),
    }


def run_scenario(scn: Scenario, reports_root: Path, *, prefix: str | None = None,
                 progress: Progress | None = None) -> tuple[RunResult, Path]:
    """Run ``scn`` end to end; always tears down; returns the result and its report dir."""
    say = progress or (lambda msg: None)
    run_id = new_run_id()
    report_dir = reports_root / run_id
    report_dir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result = RunResult(run_id=run_id, scenario=scn.name, scenario_file=str(scn.path),
                       topology=scn.topology.name, topology_file=str(scn.topology.path), started=started)
    result.overrides = [asdict(o) for o in scn.plan.overrides()]
    for o in scn.plan.overrides():
        if o.weakens:
            say(f"note: {o.line()}")
    t0 = time.monotonic()
    lab = Lab(scn.plan, prefix=prefix, run_id=run_id, progress=say)
    ctx = Context(lab, run_id, report_dir)
    capture = Captures(report_dir, say) if scn.capture else None
    if capture is not None:
        ctx.record_keys = True
    interrupted: BaseException | None = None
    try:
        try:
            lab.up(on_network=capture.start if capture else None)
            result.prefix = lab.run.prefix if lab.run else ""
            for step in scn.steps:
                say(f"step {step.index:02d} {step.kind}: {step.name}")
                sr = StepResult(step.index, step.kind, step.name, line=step.line)
                ts = time.monotonic()
                try:
                    out = ACTIONS[step.kind](ctx, step.params)
                    sr.status, sr.message, sr.details = out.status, out.message, out.details
                except Exception as exc:  # the harness broke, not the lab
                    sr.status, sr.message = ERROR, f"{type(exc).__name__}: {exc}"
                    sr.details = {"traceback": traceback.format_exc()}
                sr.duration = round(time.monotonic() - ts, 4)
                result.steps.append(sr)
                say(f"  {sr.status.upper()} {step.index:02d} {step.kind}: {sr.message}")
            rows, verdict = account(ctx)
            result.accounting = rows
            if verdict is not None:
                sr = StepResult(len(result.steps), "accounting", "accounting: nothing lost, nothing duplicated",
                                verdict.status, message=verdict.message, details=verdict.details)
                result.steps.append(sr)
                say(f"  {sr.status.upper()} accounting: {sr.message}")
        except LabError as exc:
            result.error = str(exc)
        except Exception as exc:  # a harness bug: still tear down and report it
            result.error = f"internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        except KeyboardInterrupt as exc:
            result.error = "interrupted"
            interrupted = exc
        finally:
            if capture is not None:
                try:
                    capture.stop()
                except Exception as exc:
                    log.warning("could not stop the captures: %s", exc)
            try:
                ctx.save_keylog()
                _gather(lab, result, report_dir)
            except Exception as exc:  # never let reporting stop the teardown
                log.warning("could not gather artefacts: %s", exc)
            say("tearing down")
            lab.down()
    except KeyboardInterrupt as exc:  # a second Ctrl-C during teardown: finish it anyway
        interrupted = exc
        lab.down()
    result.timings = {k: round(v, 4) for k, v in lab.timings.items()}
    result.teardown = {"seconds": round(lab.timings.get("teardown", 0.0), 4), "problems": lab.teardown_problems}
    result.messages = ctx.messages
    if capture is not None and capture.stats and not result.error:
        say("analysing the captures")
        try:
            capture.analyse(result, scn, lab, ctx)
        except Exception as exc:  # a broken analysis is a harness error, reported as such
            result.steps.append(StepResult(len(result.steps), "wire", "analyse the captures", ERROR,
                                           message=f"{type(exc).__name__}: {exc}",
                                           details={"traceback": traceback.format_exc()}))
    elif capture is not None:
        result.captures = capture.stats
    result.duration = round(time.monotonic() - t0, 4)
    counts = result.counts
    if result.error:
        result.status = ERROR
    elif counts[FAILED] or counts[ERROR]:
        result.status = FAILED
    else:
        result.status = PASSED
    write_json(result, report_dir / "summary.json")
    write_junit(result, report_dir / "junit.xml")
    try:
        from lab.report.html import write_html
        write_html(result.to_dict(), scn.plan, report_dir)
    except Exception as exc:  # the HTML is a view; the JSON and JUnit are the record
        log.warning("could not write report.html: %s", exc)
    if interrupted is not None:
        raise interrupted
    return result, report_dir


class Captures:
    """tcpdump on every link for one run: started once the network exists, stopped
    after the last step, then analysed (pure functions over the pcaps)."""

    def __init__(self, report_dir: Path, say: Progress):
        self.dir = report_dir / "pcap"
        self.say = say
        self.handle: Any = None
        self.links: list[dict[str, Any]] = []
        self.stats: list[dict[str, Any]] = []
        self.macs: dict[str, str] = {}

    def start(self, lab: Lab) -> None:
        from lab.capture.capture import CaptureSpec, start_captures
        self.links = lab.capture_links()
        self.macs = {n: node.mac or "" for n, node in lab.nodes.items()}
        specs = [CaptureSpec(lk["link"], lk["iface"], lk["netns_pid"]) for lk in self.links]
        self.say(f"capturing {len(specs)} link(s)")
        self.handle = start_captures(specs, self.dir)

    def stop(self) -> None:
        if self.handle is None:
            return
        from dataclasses import asdict, is_dataclass
        stats = self.handle.stop()
        self.handle = None
        subnet = {lk["link"]: lk["subnet"] for lk in self.links}
        self.stats = []
        for st in stats:
            d = asdict(st) if is_dataclass(st) else dict(st)
            d["subnet"] = subnet.get(d["link"])
            d["file"] = str(Path(d["file"]).relative_to(self.dir.parent)) if d.get("file") else None
            d.pop("stderr", None)
            self.stats.append(d)

    def analyse(self, result: RunResult, scn: Scenario, lab: Lab, ctx: Any) -> None:
        import json
        from lab.capture.analyse import analyse_captures
        from lab.capture.pcap import parse
        from lab.scenario import wire
        base = self.dir.parent
        pcaps = {st["link"]: base / st["file"] for st in self.stats if st.get("file")}
        parsed = {link: parse(path, link=link) for link, path in pcaps.items()}
        keylog = base / "keylog.txt" if (base / "keylog.txt").exists() else None
        analysis = analyse_captures(parsed, keylog)
        (base / "wire.json").write_text(json.dumps(analysis, indent=1, default=str))
        result.captures = self.stats
        result.wire = {
            "mail_flows": mail_flows(analysis, parsed, self.links),
            "tls": analysis["tls"],
            "credentials": analysis["credentials"],
            "dhcp": {link: v.get("dhcp", {}).get("clients", {}) for link, v in analysis["links"].items()
                     if v.get("dhcp", {}).get("clients")},
            "dns": [q for v in analysis["links"].values() for q in v.get("dns", [])][:500],
        }
        if scn.wire is not None:
            for name, out in wire.check(scn.wire, analysis, lab.plan, self.links, parsed, self.macs):
                sr = StepResult(len(result.steps), "wire", name, out.status, message=out.message, details=out.details)
                result.steps.append(sr)
                self.say(f"  {sr.status.upper()} {name}: {sr.message}")


def mail_flows(analysis: dict[str, Any], parsed: dict[str, Any], links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every mail/HTTPS TCP flow once, with its TLS facts and its path: the links it
    was seen on in order (across NAT, with the addresses there) and the TTL drop."""
    from lab.capture.analyse import path
    subnet = {lk["link"]: lk["subnet"] for lk in links}
    seen: set[str] = set()
    out = []
    for f in sorted(analysis["tls"], key=lambda x: x.get("tls_packet") or 0):
        if f["flow"] in seen or f.get("client_bytes", 1) == 0:
            continue
        p = path(parsed, f["flow"])
        forward = [e for e in p["links"] if e.get("c2s_packets", 0) > 0]
        for e in p["links"]:
            seen.add(e["flow"])
        ttls = [max(e["ttl_c2s"]) for e in forward if e["ttl_c2s"]]
        out.append({"flow": f["flow"], "protocol": f.get("protocol"), "tls": f.get("tls"), "mode": f.get("mode"),
                    "version": f.get("version"), "cipher": f.get("cipher"), "sni": f.get("sni"),
                    "cert_subject": f.get("cert_subject"),
                    "path": [{"link": e["link"], "subnet": subnet.get(e["link"]), "flow": e["flow"],
                              "ttl": max(e["ttl_c2s"]) if e["ttl_c2s"] else None} for e in forward],
                    "routers": (max(ttls) - min(ttls)) if ttls else 0})
    return out


def _gather(lab: Lab, result: RunResult, report_dir: Path) -> None:
    from lab.services.firewall import Firewall
    result.environment = environment()
    result.notes = list(lab.notes)
    for svc in lab.services:
        if isinstance(svc, Firewall):
            try:
                result.firewalls[svc.node.name] = {"policy": svc.policy, "ruleset": svc.ruleset(),
                                                   "counters": svc.counters()}
            except Exception as exc:
                result.firewalls[svc.node.name] = {"error": str(exc)}
    for name, c in lab.dhclients.items():
        try:
            result.leases.append({"node": name, **c.lease()})
        except Exception as exc:
            result.leases.append({"node": name, "error": str(exc)})
    for zone in lab.plan.zones:
        for r in zone.records:
            result.dns_records.append({"zone": zone.name, "server": zone.server, "owner": r.owner,
                                       "type": r.type, "value": r.value})
    result.artefacts = lab.collect(report_dir)


def _mininet_version() -> str:
    try:
        import mininet.net
        return str(mininet.net.VERSION)
    except ImportError:
        return "unknown"
