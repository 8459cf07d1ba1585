"""The `lab` commands on a lab kept running: up, exec, cli, down, list."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from lab.cli_common import REPO, _need_root, _params, _progress
from lab.errors import EnvironmentProblem

UP_EXIT_CODES = """exit codes:
  0  the lab is up (it keeps running until 'lab down')
  2  bad input: the topology is malformed (nothing was built)
  3  environment problem: not root, or a package is missing (run scripts/setup.sh)
  4  the lab could not be built, or a daemon failed its check or never answered"""


def _pick_lab(prefix: str | None) -> dict[str, Any]:
    from lab.deploy.holder import running_labs

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
    n_sw = len(info.get("switches", []))
    print(
        f"lab {info['prefix']} is up: {info['name']} ({len(info['nodes']) + n_sw} nodes: {len(info['nodes'])} "
        f"hosts, servers and routers, {n_sw} switch(es); ready in {info['ready']:.2f} s)"
    )
    for name, n in info["nodes"].items():
        print(f"  {name:10} {n['role']:8} {n['fqdn']:28} {' '.join(n['addresses'])}")
    for note in info.get("notes", []):
        print(f"  note: {note}")
    hosts = [n for n, v in info["nodes"].items() if v["role"] == "host"] or list(info["nodes"])
    servers = [n for n, v in info["nodes"].items() if v["role"] != "host"] or hosts
    lab = f" --lab {info['prefix']}"  # right even when several labs are up
    print("reach it with:")
    print(f"  lab exec{lab} {hosts[0]} -- ip addr       # any command inside a node (no command: a shell)")
    print(f"  lab cli{lab}                          # a Mininet-style prompt: {hosts[0]} ping {servers[0]}")
    print(f"  lab down{lab}                         # stop it and remove everything it made")
    return 0


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
        # a shell: interactive (its prompt names the node) on a terminal; reading stdin without one
        # (bash -i without a terminal prints job-control warnings)
        command = ["bash", "--norc", "-i"] if sys.stdin.isatty() else ["bash", "--norc", "-s"]
        os.environ["PS1"] = f"{args.node}:\\w# "
    from lab.runtime.node import enter

    argv = enter(int(info["nodes"][args.node]["pid"]), command)
    os.execvp(argv[0], argv)
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


def _add_up(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """'lab up': the build of 'lab run' without a scenario; --param sizes a generated topology."""
    u = sub.add_parser(
        "up",
        help="build and deploy a topology and keep it running",
        description="Build the topology and deploy its services in a background process, print "
        "how to reach it, and return. 'lab exec', 'lab cli' and 'lab down' work on it.",
        epilog=UP_EXIT_CODES,
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


def _add_lab_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands on the labs 'lab up' left running: several may be up at once, hence --lab PREFIX.

    'lab exec' keeps everything after the node whole (REMAINDER): the command's options are not read as ours.
    """
    d = sub.add_parser(
        "down",
        help="stop a lab started by 'lab up' and remove everything it made",
        description="Stop the lab 'lab up' keeps running (the only one, or --lab PREFIX) and remove "
        "everything it made: daemons, namespaces, links, state. If its holder died, clean up after it.",
    )
    d.add_argument("--lab", metavar="PREFIX", help="which lab, when several are up")
    d.add_argument("--all", action="store_true", help="every lab started by 'lab up'")
    d.set_defaults(func=cmd_down)

    e = sub.add_parser(
        "exec",
        help="run a command inside a node of the running lab",
        description="Run CMD inside NODE's network, mount and UTS namespaces (its own addresses, "
        "resolv.conf, hosts and hostname). Without CMD, a shell (reading standard input when it is not a "
        "terminal). Exit status: CMD's (127: no such program).",
    )
    e.add_argument("node")
    e.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    e.add_argument("--lab", metavar="PREFIX", help="which lab, when several are up")
    e.set_defaults(func=cmd_exec)

    cl = sub.add_parser(
        "cli",
        help="a Mininet-style prompt on the running lab (pc1 ping mail)",
        description="A prompt on the running lab: 'NODE COMMAND...' runs a command inside a node "
        "(other node names in it become their addresses); 'nodes', 'net', 'pingall', 'help'.",
    )
    cl.add_argument("--lab", metavar="PREFIX", help="which lab, when several are up")
    cl.set_defaults(func=cmd_cli)

    ls = sub.add_parser(
        "list",
        help="the labs started by 'lab up' that are running",
        description="Every lab 'lab up' keeps running: its prefix (for --lab), name, nodes, the pid "
        "of the process that holds it, and its topology file.",
    )
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
