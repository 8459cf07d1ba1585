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
from lab.progress import progress as _progress

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = REPO / "scenarios" / "dmz.yaml"
DEFAULT_REPORTS = REPO / "reports"

EXIT_CODES = """exit codes:
  0  every step passed
  1  a step or assertion failed
  2  bad input: a topology or scenario file is malformed (nothing was built)
  3  environment problem: not root, or a package is missing (run scripts/setup.sh)
  4  the lab could not be built, or a daemon failed its check or never answered
  130 interrupted (the lab was torn down)"""


def _terminate_as_interrupt() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def cmd_run(args: argparse.Namespace) -> int:
    from lab.model.scenario import load_scenario
    from lab.report.writers import write_text
    from lab.scenario.runner import run_scenario

    try:
        scn = load_scenario(args.scenario, topology=args.topology)
    except InputError:
        raise
    except Exception as exc:  # refused, never a traceback
        raise unchecked(args.scenario, exc) from exc
    _terminate_as_interrupt()
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

    from lab.model.load import load_topology
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
            kind = "scenario" if "steps" in data or ("topology" in data and "nodes" not in data) else "topology"
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


def cmd_clean(args: argparse.Namespace) -> int:
    from lab.runtime.clean import clean

    if os.geteuid() != 0:
        raise_env("'lab clean' needs root to remove namespaces, links and daemons")
    report = clean(force=args.force)
    print(report.summary())
    return 0


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise_env(f"'{what}' needs root (network namespaces, bridges, mounts)")


def _pick_lab(prefix: str | None) -> dict[str, Any]:
    from lab.deploy.holder import running_labs
    from lab.errors import EnvironmentProblem

    labs = running_labs()
    if prefix:
        labs = [lb for lb in labs if lb["prefix"] == prefix]
    if not labs:
        raise EnvironmentProblem(
            "no lab is up" + (f" with prefix {prefix}" if prefix else ""), hint="start one with 'lab up TOPOLOGY'"
        )
    if len(labs) > 1:
        raise EnvironmentProblem(
            "several labs are up: " + ", ".join(f"{lb['prefix']} ({lb['name']})" for lb in labs),
            hint="choose one with --lab PREFIX",
        )
    return labs[0]


def cmd_up(args: argparse.Namespace) -> int:
    import subprocess
    import tempfile

    from lab.errors import EnvironmentProblem
    from lab.model.load import load_topology
    from lab.runtime.proc import wait_until

    params = _params(args.param)
    load_topology(args.topology, params=params)  # bad input: exit 2 before anything starts
    _need_root("lab up")
    with tempfile.TemporaryDirectory(prefix="mail-lab-up-") as tmp:
        ready = Path(tmp) / "ready.json"
        log = Path(tmp) / "holder.log"
        cmd = (
            [sys.executable, "-m", "lab.deploy.holder", str(Path(args.topology).resolve()), "--ready-file", str(ready)]
            + (["--prefix", args.prefix] if args.prefix else [])
            + [f"--param={k}={v}" for k, v in params.items()]
        )
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(REPO),
            )
        say = _progress(not args.json)
        shown = [0]

        def up_yet() -> bool:
            """The holder's progress lines as they come; true once it wrote the ready file."""
            if proc.poll() is not None and not ready.exists():
                raise EnvironmentProblem(
                    f"the lab holder exited ({proc.returncode}) before the lab was up:\n" + log.read_text()[-3000:]
                )
            lines = log.read_text(errors="replace").splitlines()
            for line in lines[shown[0] :]:
                say(line)
            shown[0] = len(lines)
            return ready.exists() and bool(ready.read_text())

        if not wait_until(up_yet, 3600, interval=0.05, max_interval=0.1).ok:
            raise EnvironmentProblem("the lab holder did not report within an hour", hint="see 'lab list'")
        info = json.loads(ready.read_text())
    if "error" in info:
        proc.wait(timeout=60)
        print(f"lab: {info['error']}", file=sys.stderr)
        return int(info.get("exit_code", 4))
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"lab {info['prefix']} is up: {info['name']} ({len(info['nodes'])} nodes, ready in {info['ready']:.2f} s)")
    for name, n in info["nodes"].items():
        print(f"  {name:10} {n['role']:8} {n['fqdn']:28} {' '.join(n['addresses'])}")
    for note in info.get("notes", []):
        print(f"  note: {note}")
    hosts = [n for n, v in info["nodes"].items() if v["role"] == "host"] or list(info["nodes"])
    print("reach it with:")
    print(f"  lab exec {hosts[0]} -- ip addr    # any command inside a node (no command: a shell)")
    print(f"  lab cli                   # a Mininet-style prompt: {hosts[0]} ping {list(info['nodes'])[0]}")
    print("  lab down                  # stop it and remove everything it made")
    return 0


def _params(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise InputError(
                problems=[
                    __import__("lab.errors", fromlist=["Problem"]).Problem(
                        "--param", None, None, item, "expected NAME=NUMBER, e.g. depth=3"
                    )
                ]
            )
        out[key] = int(value)
    return out


def cmd_down(args: argparse.Namespace) -> int:
    from lab.deploy.holder import running_labs
    from lab.runtime.clean import CleanReport, clean_prefix
    from lab.runtime.proc import alive as pid_alive
    from lab.runtime.proc import wait_until

    _need_root("lab down")
    labs = running_labs() if args.all else [_pick_lab(args.lab)]
    if not labs:
        print("no lab is up")
        return 0
    for info in labs:
        pid = int(info.get("holder", 0))
        t0 = time.monotonic()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not pid_alive(pid), 60, interval=0.05)  # noqa: B023 (used at once)
        claim = Path(info["claim"])
        if claim.exists():  # the holder died without tearing down: clean what it left
            report = CleanReport()
            owner = json.loads((claim / "owner.json").read_text()) if (claim / "owner.json").exists() else {}
            clean_prefix(info["prefix"], owner.get("state"), report)
            import shutil

            shutil.rmtree(claim, ignore_errors=True)
        print(f"lab {info['prefix']} ({info['name']}) is down ({time.monotonic() - t0:.2f} s)")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from lab.errors import EnvironmentProblem

    _need_root("lab exec")
    info = _pick_lab(args.lab)
    if args.node not in info["nodes"]:
        from lab.model.schema import suggest

        raise EnvironmentProblem(
            f"no node '{args.node}' in lab {info['prefix']}",
            hint=suggest(args.node, list(info["nodes"])) or "nodes: " + " ".join(info["nodes"]),
        )
    command = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not command:
        command = ["bash", "--norc", "-i"]
    os.execvp("mnexec", ["mnexec", "-a", str(info["nodes"][args.node]["pid"]), *command])
    return 0  # not reached


def cmd_cli(args: argparse.Namespace) -> int:
    from lab.interactive import LabCLI

    _need_root("lab cli")
    LabCLI(_pick_lab(args.lab)).cmdloop()
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from lab.deploy.holder import running_labs

    labs = running_labs()
    if args.json:
        print(json.dumps(labs))
        return 0
    if not labs:
        print("no lab is up")
    for lb in labs:
        print(f"{lb['prefix']:6} {lb['name']:16} {len(lb['nodes'])} nodes  holder pid {lb['holder']}  {lb['topology']}")
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


def raise_env(msg: str) -> None:
    from lab.errors import EnvironmentProblem

    raise EnvironmentProblem(msg, hint="run it with sudo, or as root")


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab run'. The default scenario is an absolute path: the command works from any directory."""
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
    """'lab validate'. It only reads files, so it takes many at once and answers in JSON for editors and CI."""
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


def _add_up(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab up'. The build of 'lab run' without a scenario; --param sizes a generated topology."""
    u = sub.add_parser(
        "up",
        help="build and deploy a topology and keep it running",
        description="Build the topology and deploy its services in a background process, print "
        "how to reach it, and return. 'lab exec', 'lab cli' and 'lab down' work on it.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    u.add_argument("topology", help="topology YAML file")
    u.add_argument("--prefix", help="kernel name prefix (default: the first free ml<N>)")
    u.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=N",
        help="size of a generated topology, e.g. --param depth=3",
    )
    u.add_argument("--json", action="store_true", help="print the lab's nodes as JSON")
    u.set_defaults(func=cmd_up)


def _add_down(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab down'. Several labs may be up at once: --lab picks one, --all stops every one."""
    d = sub.add_parser("down", help="stop a lab started by 'lab up' and remove everything it made")
    d.add_argument("--lab", metavar="PREFIX", help="which lab, when several are up")
    d.add_argument("--all", action="store_true", help="every lab started by 'lab up'")
    d.set_defaults(func=cmd_down)


def _add_exec(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab exec'. Everything after the node is the command, kept whole (REMAINDER): its options are not read as ours."""
    e = sub.add_parser(
        "exec",
        help="run a command inside a node of the running lab",
        description="Run CMD inside NODE's network and mount namespaces (its own resolv.conf, "
        "its addresses). Without CMD, an interactive shell. Exit status: CMD's.",
    )
    e.add_argument("node")
    e.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    e.add_argument("--lab", metavar="PREFIX", help="which lab, when several are up")
    e.set_defaults(func=cmd_exec)


def _add_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab cli'. The prompt works on one lab: only which one, when several are up, needs saying."""
    cl = sub.add_parser("cli", help="a Mininet-style prompt on the running lab (pc1 ping mail)")
    cl.add_argument("--lab", metavar="PREFIX", help="which lab, when several are up")
    cl.set_defaults(func=cmd_cli)


def _add_list(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab list'. --json is for scripts that look for a running lab before they use it."""
    ls = sub.add_parser("list", help="the labs started by 'lab up' that are running")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)


def _add_graph(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab graph'. It draws the plan only (nothing is built, no root needed); --param as for 'lab up'."""
    g = sub.add_parser("graph", help="draw a topology as SVG (no root needed)")
    g.add_argument("topology")
    g.add_argument("-o", "--output", help="write to this file (default: standard output)")
    g.add_argument("--param", action="append", default=[], metavar="NAME=N")
    g.set_defaults(func=cmd_graph)


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab report'. A folder or a run id, so a report can be rendered again, e.g. after the templates change."""
    rp = sub.add_parser("report", help="render a run's report.html again from its summary.json")
    rp.add_argument("run", help="a report folder, or a run id under --reports")
    rp.add_argument("--reports", default=str(DEFAULT_REPORTS))
    rp.set_defaults(func=cmd_report)


def _add_schema(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab schema'. The JSON Schemas, for editors' completion and for checking summary.json with other tools."""
    sc = sub.add_parser("schema", help="print the JSON Schema of topology, scenario or summary files")
    sc.add_argument("kind", choices=["topology", "scenario", "summary"])
    sc.set_defaults(func=cmd_schema)


def _add_clean(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab clean'. Live labs are left alone unless --force: another user's lab may be running on this machine."""
    c = sub.add_parser(
        "clean",
        help="remove what killed runs left (namespaces, links, daemons)",
        description="Remove the leftovers of labs whose owning process is gone: their host "
        "processes and daemons, bridges and veth links, state directories. Live labs are left alone.",
    )
    c.add_argument("--force", action="store_true", help="also remove labs whose owner is still running")
    c.set_defaults(func=cmd_clean)


def build_parser() -> argparse.ArgumentParser:
    """The `lab` parser; one helper per command keeps each command's options together, in `lab --help` order."""
    p = argparse.ArgumentParser(
        prog="lab",
        description="mail-lab: build a real network with Mininet, deploy "
        "Postfix, Dovecot, BIND and Kea on it, run a scenario, report.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"mail-lab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_run,
        _add_validate,
        _add_up,
        _add_down,
        _add_exec,
        _add_cli,
        _add_list,
        _add_graph,
        _add_report,
        _add_schema,
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
