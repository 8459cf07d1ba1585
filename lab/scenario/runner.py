"""Run a scenario: build the lab, execute its steps, collect, tear down, report."""

from __future__ import annotations

import logging
import platform
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lab.deploy.lab import Lab, Progress
from lab.errors import LabError
from lab.model.scenario import Scenario, Step
from lab.report.results import ERROR, FAILED, PASSED, RunResult, StepResult
from lab.report.writers import write_json, write_junit
from lab.runtime.rundir import new_run_id
from lab.scenario.accounting import account
from lab.scenario.captures import Captures
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


#: the name a report gives the component a daemon is part of
COMPONENTS = {"apache2": "roundcube", "sshd": "ssh", "pebble": "pebble", "certbot": "certbot", "radicale": "radicale"}


def components(lab: Lab) -> dict[str, str]:
    """The versions of the thesis's server's components this lab ran (roundcube, pebble ...)."""
    out: dict[str, str] = {}
    for svc in lab.services:
        name = COMPONENTS.get(svc.daemon)
        if name and name not in out:
            out[name] = svc.version()
    return out


def run_scenario(
    scn: Scenario, reports_root: Path, *, prefix: str | None = None, progress: Progress | None = None
) -> tuple[RunResult, Path]:
    """Run ``scn`` end to end; always tears down; returns the result and its report dir.

    The phases (docs/architecture.md, "The flow of one run"): build and deploy, with the
    captures started as soon as the network exists; the steps; accounting; collect;
    tear down; analyse the captures and check the wire; write the reports.
    """
    say = progress or (lambda msg: None)
    run_id = new_run_id()
    report_dir = reports_root / run_id
    report_dir.mkdir(parents=True, exist_ok=True)
    result = _new_result(scn, run_id, say)
    t0 = time.monotonic()
    lab = Lab(scn.plan, prefix=prefix, run_id=run_id, progress=say)
    ctx = Context(lab, run_id, report_dir, record_keys=scn.capture, progress=say)
    capture = Captures(report_dir, say) if scn.capture else None
    interrupted: BaseException | None = None
    try:
        try:
            lab.up(on_network=capture.start if capture else None)
            result.prefix = lab.run.prefix if lab.run else ""
            for step in scn.steps:
                result.steps.append(run_step(ctx, step, say))
            _account(ctx, result, say)
        except LabError as exc:
            result.error = str(exc)
        except Exception as exc:  # a harness bug: still tear down and report it
            result.error = f"internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        except KeyboardInterrupt as exc:
            result.error = "interrupted"
            interrupted = exc
        finally:
            _wind_up(lab, ctx, capture, result, report_dir, say)
    except KeyboardInterrupt as exc:  # a second Ctrl-C during teardown: finish it anyway
        interrupted = exc
        lab.down()
    result.timings = {k: round(v, 4) for k, v in lab.timings.items()}
    result.teardown = {"seconds": round(lab.timings.get("teardown", 0.0), 4), "problems": lab.teardown_problems}
    result.messages = ctx.messages
    if capture is not None:
        _analyse(capture, result, scn, lab, ctx, say)
    result.duration = round(time.monotonic() - t0, 4)
    _write_reports(result, scn, report_dir)
    if interrupted is not None:
        raise interrupted
    return result, report_dir


def _new_result(scn: Scenario, run_id: str, say: Progress) -> RunResult:
    result = RunResult(
        run_id=run_id,
        scenario=scn.name,
        scenario_file=str(scn.path),
        topology=scn.topology.name,
        topology_file=str(scn.topology.path),
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    changed = scn.plan.overrides()
    result.overrides = [asdict(o) for o in changed]
    for o in changed:
        if o.weakens:
            say(f"note: {o.line()}")
    return result


def run_step(ctx: Context, step: Step, say: Progress | None = None) -> StepResult:
    """One step: its action's outcome, or an error result when the harness itself broke."""
    say = say or (lambda msg: None)
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
    say(f"  {sr.status.upper()} {step.index:02d} {step.kind}: {sr.message}")
    return sr


def _account(ctx: Context, result: RunResult, say: Progress) -> None:
    rows, verdict = account(ctx)
    result.accounting = rows
    if verdict is not None:
        sr = StepResult(
            len(result.steps),
            "accounting",
            "accounting: nothing lost, nothing duplicated",
            verdict.status,
            message=verdict.message,
            details=verdict.details,
        )
        result.steps.append(sr)
        say(f"  {sr.status.upper()} accounting: {sr.message}")


def _wind_up(
    lab: Lab, ctx: Context, capture: Captures | None, result: RunResult, report_dir: Path, say: Progress
) -> None:
    """Stop the captures, keep what the report needs, tear everything down."""
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


def _analyse(capture: Captures, result: RunResult, scn: Scenario, lab: Lab, ctx: Context, say: Progress) -> None:
    if not capture.stats or result.error:
        result.captures = capture.stats
        return
    say("analysing the captures")
    try:
        capture.analyse(result, scn, lab, ctx)
    except Exception as exc:  # a broken analysis is a harness error, reported as such
        result.steps.append(
            StepResult(
                len(result.steps),
                "wire",
                "analyse the captures",
                ERROR,
                message=f"{type(exc).__name__}: {exc}",
                details={"traceback": traceback.format_exc()},
            )
        )


def _write_reports(result: RunResult, scn: Scenario, report_dir: Path) -> None:
    counts = result.counts
    if result.error:
        result.status = ERROR
    elif counts[FAILED] or counts[ERROR]:
        result.status = FAILED
    else:
        result.status = PASSED
    _roles(result, report_dir)
    write_json(result, report_dir / "summary.json")
    write_junit(result, report_dir / "junit.xml")
    try:
        from lab.report.html import write_html

        write_html(result.to_dict(), scn.plan, report_dir)
    except Exception as exc:  # the HTML is a view; the JSON and JUnit are the record
        log.warning("could not write report.html: %s", exc)


def _roles(result: RunResult, report_dir: Path) -> None:
    """Each message's chain of roles (MUA, MSA, MTA, MDA, as the mail trace reads them
    from the copied logs) into summary.json, for readers other than report.html."""
    if not result.messages:
        return
    try:
        from lab.report.mailtrace import trace

        for t in trace(report_dir, result.to_dict()):
            if t["roles"] and t["label"] in result.messages:
                result.messages[t["label"]]["roles"] = t["roles"]
    except Exception as exc:  # the trace is a reading of the logs: never a reason to lose the summary
        log.warning("could not trace the messages: %s", exc)


def _gather(lab: Lab, result: RunResult, report_dir: Path) -> None:
    from lab.services.firewall import Firewall

    result.environment = {**environment(), **components(lab)}
    result.notes = list(lab.notes)
    for svc in lab.services:
        if isinstance(svc, Firewall):
            try:
                result.firewalls[svc.node.name] = {
                    "policy": svc.policy.to_dict() if svc.policy else {},
                    "ruleset": svc.ruleset(),
                    "counters": svc.counters(),
                }
            except Exception as exc:
                result.firewalls[svc.node.name] = {"error": str(exc)}
    for name, c in lab.dhclients.items():
        try:
            result.leases.append({"node": name, **c.lease()})
        except Exception as exc:
            result.leases.append({"node": name, "error": str(exc)})
    keys = lab.dep.keys if lab.dep is not None else None
    for zone in lab.plan.zones:
        for r in zone.records:
            # a value made per run (DKIM, TLSA, DS, the MTA-STS id) as this run published it
            value = (keys.published(r.key) if keys is not None and r.key else None) or r.value
            result.dns_records.append(
                {"zone": zone.name, "server": zone.server, "owner": r.owner, "type": r.type, "value": value}
            )
    result.impairments = impairment_rows(lab)
    result.artefacts = lab.collect(report_dir)


def impairment_rows(lab: Lab) -> list[dict[str, Any]]:
    """Each impaired link end: what the topology asked, how it was applied, what the
    NFQUEUE helper measured there (packets held, how late they left on average)."""
    from lab.model.plan import impairments
    from lab.runtime import impair
    from lab.services.delay import DelayQueue

    t = lab.plan.topology.data
    helpers = {s.node.name: s.stats() for s in lab.services_of(DelayQueue)}
    mechanism = impair.delay_mechanism() if any(i.delay for i in impairments(lab.plan)) else None
    netem = impair.netem_available()
    rows = []
    for imp in impairments(lab.plan):
        link = t.links[imp.link]
        row: dict[str, Any] = {
            "link": f"{link.a}-{link.b}",
            "end": imp.name,
            "direction": "egress" if imp.direction == "out" else "egress and ingress",
            "delay": imp.delay or "",
            "jitter": imp.jitter or "",
            "loss": f"{imp.loss:g}%" if imp.loss else "",
            "bw": f"{link.bw:g} Mbit/s" if link.bw else "",
        }
        if imp.delay:
            row["delay_by"] = impair.mechanism_text(mechanism) if mechanism else "NOT applied (delay_optional)"
        if imp.loss:
            row["loss_by"] = "tc netem" if netem else "nftables random drop"
        queues = [
            q for q in helpers.get(imp.node, {}).get("queues", []) if str(q.get("name", "")).startswith(imp.iface + " ")
        ]
        if queues:
            row["held_packets"] = sum(int(q.get("packets") or 0) for q in queues)
            lates = [q["late_mean_ms"] for q in queues if q.get("late_mean_ms") is not None]
            row["late_mean_ms"] = round(max(lates), 3) if lates else None
            row["helper_cpu_s"] = helpers[imp.node].get("cpu_seconds")
        rows.append(row)
    return rows


def _mininet_version() -> str:
    try:
        import mininet.net

        return str(mininet.net.VERSION)
    except ImportError:
        return "unknown"
