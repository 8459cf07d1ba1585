"""Keep a lab running in the background for ``lab up`` / ``lab exec`` / ``lab down``.

Mininet hosts live as long as the process that built them (their shells read its
pipes), so ``lab up`` starts this holder in its own session: it builds and deploys
the lab, writes where each node lives into the lab's claim directory
(``lab.json``, next to ``owner.json``), tells the waiting ``lab up`` through a
ready file, then sleeps until SIGTERM/SIGINT/SIGHUP and tears everything down.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.runtime.rundir import STATE_ROOT


def lab_info(lab: Any, topology: str) -> dict[str, Any]:
    nodes = {}
    for name, node in lab.nodes.items():
        nodes[name] = {
            "pid": node.pid,
            "role": node.plan.role,
            "fqdn": node.plan.fqdn,
            "addresses": [i.ip for i in node.plan.interfaces if i.ip] or ([node.ip] if node.ip else []),
            "interfaces": [i.name for i in node.plan.interfaces],
        }
    t = lab.plan.topology.data
    links = []
    for k, link in enumerate(t.links):
        subnet = next((i.subnet for n in lab.plan.nodes.values() for i in n.interfaces if i.link == k), None)
        links.append({"a": link.a, "b": link.b, "subnet": subnet, "up": link.up})
    switches = [n for n, v in t.nodes.items() if v.role == "switch"]
    return {
        "prefix": lab.run.prefix,
        "run_id": lab.run_id,
        "topology": topology,
        "name": lab.plan.topology.name,
        "nodes": nodes,
        "switches": switches,
        "links": links,
        "ready": round(lab.timings.get("ready", 0.0), 3),
        "holder": __import__("os").getpid(),
        "notes": lab.notes,
    }


def running_labs() -> list[dict[str, Any]]:
    """Labs kept up by a holder, newest first."""
    out: list[dict[str, Any]] = []
    root = STATE_ROOT / "prefixes"
    if not root.is_dir():
        return out
    for claim in root.iterdir():
        f = claim / "lab.json"
        try:
            info = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        info["claim"] = str(claim)
        out.append(info)
    return sorted(out, key=lambda i: i.get("run_id", ""), reverse=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="lab-holder")
    ap.add_argument("topology")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--prefix")
    ap.add_argument("--param", action="append", default=[])
    args = ap.parse_args(argv)
    ready = Path(args.ready_file)

    stop: dict[str, int | None] = {"signal": None}

    def handler(signum: int, frame: Any) -> None:
        stop["signal"] = signum
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)

    from lab.deploy.lab import Lab
    from lab.model.load import load_topology
    from lab.model.plan import make_plan

    lab = None
    try:
        params = dict(p.split("=", 1) for p in args.param)
        topo = load_topology(args.topology, params={k: int(v) for k, v in params.items()})
        lab = Lab(make_plan(topo), prefix=args.prefix, progress=lambda m: print(m, flush=True))
        lab.up()
        info = lab_info(lab, str(Path(args.topology).resolve()))
        assert lab.run is not None
        (lab.run.claim / "lab.json").write_text(json.dumps(info, indent=1))
        ready.write_text(json.dumps(info))
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except LabError as exc:
        ready.write_text(json.dumps({"error": str(exc), "exit_code": exc.exit_code}))
        return exc.exit_code
    except Exception as exc:
        ready.write_text(json.dumps({"error": f"internal error: {exc}\n{traceback.format_exc()}", "exit_code": 4}))
        return 4
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the teardown short
        if lab is not None:
            print("tearing down", flush=True)
            lab.down()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
