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
from pathlib import Path
from typing import Any

from lab import __version__
from lab.cli_common import EXIT_CODES, REPO, _params, _progress, raise_env
from lab.errors import InputError, LabError

DEFAULT_SCENARIO = REPO / "scenarios" / "dmz.yaml"
DEFAULT_REPORTS = REPO / "reports"


def _terminate_as_interrupt() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    # A shell starts a background job with SIGINT ignored, and Python then keeps it
    # ignored: a lab run's Ctrl-C (or a supervisor's SIGINT) must always tear down.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def cmd_run(args: argparse.Namespace) -> int:
    from lab.model.scenario import load_scenario

    try:
        scn = load_scenario(args.scenario, topology=args.topology)
    except InputError:
        raise
    except Exception as exc:  # refused, never a traceback
        raise unchecked(args.scenario, exc) from exc
    _terminate_as_interrupt()
    # the runtime (Mininet, the services, 0.4 s of imports) only once the files are valid:
    # a refused file is refused sooner
    from lab.report.writers import write_text
    from lab.scenario.runner import run_scenario

    result, report_dir = run_scenario(
        scn, Path(args.reports), prefix=args.prefix, progress=_progress(not args.quiet and not args.json)
    )
    if args.json:
        print(
            json.dumps(
                {
                    "status": result.status,
                    "report": str(report_dir),
                    "run_id": result.run_id,
                    "counts": result.counts,
                    "duration": result.duration,
                    "ready": result.timings.get("ready"),
                    "error": result.error,
                }
            )
        )
    else:
        print(f"scenario {result.scenario} on {result.topology}: {result.status.upper()}")
        if result.error:
            print(result.error)
        print(write_text(result))
        _print_overrides(result.overrides)
        c = result.counts
        print(f"{c['passed']} passed, {c['failed'] + c['error']} failed")
        ready = result.timings.get("ready")
        print(
            f"lab ready in {ready:.2f} s, whole run {result.duration:.2f} s"
            if ready
            else f"whole run {result.duration:.2f} s"
        )
        print(f"report: {report_dir}")
    if result.error:
        return 4
    return 0 if result.status == "passed" else 1


def unchecked(file: str, exc: BaseException) -> InputError:
    """A file that made the checker itself fail: refused (exit 2) with what broke."""
    from lab.errors import Problem

    return InputError(
        problems=[
            Problem(
                str(file),
                None,
                None,
                "",
                f"could not be checked ({type(exc).__name__}: {exc}); it is refused",
                "this is a bug in mail-lab: please report the file",
            )
        ]
    )


def _print_overrides(rows: list[dict[str, Any]]) -> None:
    """The settings a topology changes on its mail nodes; those that weaken security first."""
    if not rows:
        return
    weak = [r for r in rows if r["weakens"]]
    print(f"{len(rows)} mail setting(s) changed from the shipped server, {len(weak)} of them weaken security:")
    for r in sorted(rows, key=lambda r: not r["weakens"]):
        was = repr(r["reference"]) if r["reference"] is not None else "the default"
        flag = "WEAKENS " if r["weakens"] else "changed "
        what = f"  ({r['protects']})" if r["protects"] else ""
        print(f"  {flag}{r['node']}: {r['daemon']} {r['setting']} = {r['value']!r}, shipped {was}{what}")


def cmd_validate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from lab.model.load import file_kind, load_topology
    from lab.model.mailconfig import overrides_of
    from lab.model.scenario import load_scenario
    from lab.model.yamlload import load_file

    params = _params(args.param)
    status = 0
    out = []
    for f in args.files:
        try:
            doc = load_file(f)
            data = doc.data if isinstance(doc.data, dict) else {}
            kind = file_kind(data)
            if kind in ("rubric", "catalogue"):
                text = _validate_other(kind, f)
                out.append({"file": f, "valid": True, "kind": kind, "problems": [], "overrides": []})
                if not args.json:
                    print(text)
                continue
            if kind == "scenario":
                s = load_scenario(f)
                topo = s.topology
                text = f"{f}: valid scenario '{s.name}' ({len(s.steps)} steps, topology {topo.name})"
            else:
                topo = load_topology(f, params=params, src=doc)
                text = f"{f}: valid topology '{topo.name}' ({len(topo.data.nodes)} nodes, {len(topo.data.links)} links)"
            changed = [asdict(o) for o in overrides_of(topo.data)]
            out.append({"file": f, "valid": True, "kind": kind, "problems": [], "overrides": changed})
            if not args.json:
                print(text)
                _print_overrides(changed)
        except Exception as exc:  # a file that breaks the checker: refused, no traceback
            exc = exc if isinstance(exc, InputError) else unchecked(f, exc)
            out.append({"file": f, "valid": False, "problems": [asdict(p) for p in exc.problems]})
            if not args.json:
                print(str(exc), file=sys.stderr)
            status = 2
    if args.json:
        print(json.dumps(out, indent=1))
    return status


def _validate_other(kind: str, f: str) -> str:
    """A rubric or the lab catalogue: loaded with its own checks (it names files that must exist)."""
    if kind == "rubric":
        from lab.model.rubric import load_rubric

        r = load_rubric(f)
        return (
            f"{f}: valid rubric '{r.data.name}' ({len(r.data.checks)} checks, {r.max_points:g} points, "
            f"scenarios {', '.join(r.scenarios)})"
        )
    from lab.model.catalogue import load_catalogue

    labs = load_catalogue(Path(f))
    return f"{f}: valid lab catalogue ({len(labs)} labs)"


def cmd_clean(args: argparse.Namespace) -> int:
    from lab.runtime.clean import clean

    if os.geteuid() != 0:
        raise_env("'lab clean' needs root to remove namespaces, links and daemons")
    report = clean(force=args.force)
    print(report.summary())
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from lab.model.load import load_topology
    from lab.model.plan import make_plan
    from lab.report.svg import topology_svg

    plan = make_plan(load_topology(args.topology, params=_params(args.param)))
    svg = topology_svg(plan, title=plan.topology.name)
    if args.output and args.output != "-":
        Path(args.output).write_text(svg)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(svg)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lab.errors import EnvironmentProblem
    from lab.model.load import load_topology
    from lab.model.plan import make_plan
    from lab.report.html import write_html

    run = Path(args.run)
    if not run.is_dir():
        run = Path(args.reports) / args.run
    summary_file = run / "summary.json"
    if not summary_file.exists():
        raise EnvironmentProblem(f"no summary.json in {run}", hint="give a folder under reports/, or its run id")
    summary = json.loads(summary_file.read_text())
    plan = None
    try:
        plan = make_plan(load_topology(summary["topology_file"]))
    except (LabError, OSError, KeyError):
        pass  # the report still renders, without the diagram
    out = write_html(summary, plan, run)
    print(f"wrote {out}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from lab.model.jsonschema import schema
    from lab.report.results import summary_schema

    print(json.dumps(summary_schema() if args.kind == "summary" else schema(args.kind), indent=2))
    return 0


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab run': the default scenario is an absolute path, so the command works from any directory."""
    r = sub.add_parser(
        "run",
        help="build the lab, run a scenario, write a report, tear down",
        description="Build the scenario's topology, deploy its services, run its steps and write "
        "summary.json, junit.xml, configs and logs to REPORTS/<run-id>/. Always tears down.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "scenario",
        nargs="?",
        default=str(DEFAULT_SCENARIO),
        help=f"scenario YAML file (default: {DEFAULT_SCENARIO.relative_to(REPO)})",
    )
    r.add_argument("--reports", default=str(DEFAULT_REPORTS), help="where run reports go (default: reports/)")
    r.add_argument("--prefix", help="kernel name prefix for this lab (default: the first free ml<N>)")
    r.add_argument("--topology", help="run the scenario on this topology instead of its own (grade a student's)")
    r.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.set_defaults(func=cmd_run)


def _add_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab validate' only reads files: it takes many at once and answers in JSON for editors and CI."""
    v = sub.add_parser(
        "validate",
        help="check topology or scenario files (no root needed)",
        description="Check files without building anything. Errors name file:line:column and field.",
    )
    v.add_argument("files", nargs="+", help="topology or scenario YAML files")
    v.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=N",
        help="size of a generated topology, e.g. --param depth=3",
    )
    v.add_argument(
        "--json", action="store_true", help="print the problems as JSON (file, line, column, field, message, hint)"
    )
    v.set_defaults(func=cmd_validate)


def _add_file_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that only read files and print or draw: no root needed, nothing is built."""
    g = sub.add_parser("graph", help="draw a topology as SVG (no root needed)")
    g.add_argument("topology")
    g.add_argument("-o", "--output", help="write to this file (default: standard output)")
    g.add_argument("--param", action="append", default=[], metavar="NAME=N")
    g.set_defaults(func=cmd_graph)

    rp = sub.add_parser("report", help="render a run's report.html again from its summary.json")
    rp.add_argument("run", help="a report folder, or a run id under --reports")
    rp.add_argument("--reports", default=str(DEFAULT_REPORTS))
    rp.set_defaults(func=cmd_report)

    sc = sub.add_parser("schema", help="print the JSON Schema of topology, scenario or summary files")
    sc.add_argument("kind", choices=["topology", "scenario", "summary"])
    sc.set_defaults(func=cmd_schema)


def _add_clean(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab clean' leaves live labs alone unless --force: another user's lab may be running here."""
    c = sub.add_parser(
        "clean",
        help="remove what killed runs left (namespaces, links, daemons)",
        description="Remove the leftovers of labs whose owning process is gone: their host "
        "processes and daemons, bridges and veth links, state directories. Live labs are left alone.",
    )
    c.add_argument("--force", action="store_true", help="also remove labs whose owner is still running")
    c.set_defaults(func=cmd_clean)


def build_parser() -> argparse.ArgumentParser:
    """The `lab` parser; helpers keep each command's options together, in `lab --help` order."""
    p = argparse.ArgumentParser(
        prog="lab",
        description="mail-lab: build a real network with Mininet, deploy "
        "Postfix, Dovecot, BIND and Kea on it, run a scenario, report.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"mail-lab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from lab.cli_class import add_class_commands
    from lab.cli_live import _add_lab_commands, _add_up

    for add in (
        _add_run,
        _add_validate,
        _add_up,
        _add_lab_commands,
        _add_file_commands,
        add_class_commands,
        _add_clean,
    ):
        add(sub)
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
