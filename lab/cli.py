"""The `lab` command.  The only place that turns errors into exit codes.

Exit codes: 0 passed, 1 a step or assertion failed, 2 bad input (topology or
scenario file), 3 environment problem (not root, missing package), 4 the lab could
not be built or a daemon failed, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from lab import __version__
from lab.errors import InputError, LabError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = REPO / "scenarios" / "default.yaml"
DEFAULT_REPORTS = REPO / "reports"

EXIT_CODES = """exit codes:
  0  every step passed
  1  a step or assertion failed
  2  bad input: a topology or scenario file is malformed (nothing was built)
  3  environment problem: not root, or a package is missing (run scripts/setup.sh)
  4  the lab could not be built, or a daemon failed its check or never answered
  130 interrupted (the lab was torn down)"""


def _progress(enabled: bool) -> Any:
    t0 = time.monotonic()

    def say(msg: str) -> None:
        if enabled:
            print(f"[{time.monotonic() - t0:6.2f}s] {msg}", file=sys.stderr, flush=True)
    return say


def _terminate_as_interrupt() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def cmd_run(args: argparse.Namespace) -> int:
    from lab.model.scenario import load_scenario
    from lab.report.writers import write_text
    from lab.scenario.runner import run_scenario

    scn = load_scenario(args.scenario)
    _terminate_as_interrupt()
    result, report_dir = run_scenario(scn, Path(args.reports), prefix=args.prefix,
                                      progress=_progress(not args.quiet and not args.json))
    if args.json:
        print(json.dumps({"status": result.status, "report": str(report_dir), "run_id": result.run_id,
                          "counts": result.counts, "duration": result.duration,
                          "ready": result.timings.get("ready"), "error": result.error}))
    else:
        print(f"scenario {result.scenario} on {result.topology}: {result.status.upper()}")
        if result.error:
            print(result.error)
        print(write_text(result))
        c = result.counts
        print(f"{c['passed']} passed, {c['failed'] + c['error']} failed")
        ready = result.timings.get("ready")
        print(f"lab ready in {ready:.2f} s, whole run {result.duration:.2f} s" if ready else
              f"whole run {result.duration:.2f} s")
        print(f"report: {report_dir}")
    if result.error:
        return 4
    return 0 if result.status == "passed" else 1


def cmd_validate(args: argparse.Namespace) -> int:
    from lab.model.scenario import load_scenario
    from lab.model.topology import load_topology
    from lab.model.yamlload import load_file

    status = 0
    for f in args.files:
        try:
            doc = load_file(f)
            is_map = isinstance(doc.data, dict)
            kind = "scenario" if is_map and ("steps" in doc.data or "topology" in doc.data) else "topology"
            if kind == "scenario":
                s = load_scenario(f)
                print(f"{f}: valid scenario '{s.name}' ({len(s.steps)} steps, topology {s.topology.name})")
            else:
                t = load_topology(f)
                print(f"{f}: valid topology '{t.name}' ({len(t.data.nodes)} nodes, {len(t.data.links)} links)")
        except InputError as exc:
            print(str(exc), file=sys.stderr)
            status = 2
    return status


def cmd_clean(args: argparse.Namespace) -> int:
    from lab.runtime.clean import clean
    if os.geteuid() != 0:
        raise_env("'lab clean' needs root to remove namespaces, links and daemons")
    report = clean(force=args.force)
    print(report.summary())
    return 0


def raise_env(msg: str) -> None:
    from lab.errors import EnvironmentProblem
    raise EnvironmentProblem(msg, hint="run it with sudo, or as root")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab", description="mail-lab: build a real network with Mininet, deploy "
                                "Postfix, Dovecot, BIND and Kea on it, run a scenario, report.",
                                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"mail-lab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="build the lab, run a scenario, write a report, tear down",
                       description="Build the scenario's topology, deploy its services, run its steps and write "
                       "summary.json, junit.xml, configs and logs to REPORTS/<run-id>/. Always tears down.",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO),
                   help=f"scenario YAML file (default: {DEFAULT_SCENARIO.relative_to(REPO)})")
    r.add_argument("--reports", default=str(DEFAULT_REPORTS), help="where run reports go (default: reports/)")
    r.add_argument("--prefix", help="kernel name prefix for this lab (default: the first free ml<N>)")
    r.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check topology or scenario files (no root needed)",
                       description="Check files without building anything. Errors name file:line:column and field.")
    v.add_argument("files", nargs="+", help="topology or scenario YAML files")
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("clean", help="remove what killed runs left (namespaces, links, daemons)",
                       description="Remove the leftovers of labs whose owning process is gone: their host "
                       "processes and daemons, bridges and veth links, state directories. Live labs are left alone.")
    c.add_argument("--force", action="store_true", help="also remove labs whose owner is still running")
    c.set_defaults(func=cmd_clean)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lab: interrupted; the lab was torn down", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
