"""How long `lab validate` takes on big inputs, and how quickly it refuses hostile ones.

    .venv/bin/python bench/validate_bench.py            # median of 5 runs each
    .venv/bin/python bench/validate_bench.py --runs 3 --json /tmp/v.json

Figures (each a whole `lab validate` process, as a user runs it; no root needed):

- a routed topology with 10,000 subnets: 2,000 routers, each pair of neighbours on a
  ring and four chords per router joined by a /30 written on the link (every subnet
  is used: wiring, interfaces, addresses and the overlap sweep all see 10,000);
- the generated tree of 1,977 nodes (topologies/tree.yaml, depth 3, fanout 14, hosts 9);
- the same 10,000 subnets declared but unused (the overlap sweep alone);
- refusals: an alias bomb, a 7 MB file, a 5,000-deep nesting, a 2,001-node file;
- baseline: `lab validate topologies/star.yaml` (the process start and a small file).

The overlap check was pairwise before (2,000 subnets 55 s, 4,000 199 s, as the
untrusted-input issue measured); it is now one sorted sweep.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "data" / "hostile"))


def routed(routers: int = 2000, chords: int = 4) -> str:
    """Routers on a ring plus chords, each link its own /30 (10,000 subnets for 2,000 routers)."""
    lines = ["name: big-routed", "domain: projet.dz", "routing: ospf", "subnets: {}", "nodes:"]
    lines += [f"  r{i}: {{role: router}}" for i in range(routers)]
    lines.append("links:")
    n = 0
    for i in range(routers):
        for step in [1, *range(2, 2 + chords)]:
            j = (i + step * 7) % routers if step > 1 else (i + 1) % routers
            base = 0x0A000000 + 4 * n  # 10.0.0.0 + 4n
            cidr = f"{base >> 24 & 255}.{base >> 16 & 255}.{base >> 8 & 255}.{base & 255}/30"
            lines.append(f"  - {{a: r{i}, b: r{j}, subnet: {cidr}}}")
            n += 1
    return "\n".join(lines) + "\n"


def declared(subnets: int = 10000) -> str:
    lines = ["name: big-declared", "domain: projet.dz", "subnets:"]
    lines += [f"  n{i}: {{cidr: 10.{i // 256}.{i % 256}.0/24}}" for i in range(subnets)]
    lines += [
        "nodes:",
        "  s1: {role: switch, subnet: n0}",
        "  h1: {role: host, address: 10.0.0.10}",
        "links:",
        "  - {a: h1, b: s1}",
    ]
    return "\n".join(lines) + "\n"


def validate(args: list[str]) -> tuple[float, int, str]:
    t = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "lab.cli", "validate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return time.monotonic() - t, r.returncode, (r.stdout + r.stderr).strip().splitlines()[0][:120]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    import make

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "routed.yaml").write_text(routed())
        (d / "declared.yaml").write_text(declared())
        cases = {
            "baseline: star.yaml (6 nodes)": ["topologies/star.yaml"],
            "routed, 10,000 subnets, 2,000 routers": [str(d / "routed.yaml")],
            "declared, 10,000 subnets": [str(d / "declared.yaml")],
            "generated tree, 1,977 nodes": [
                "topologies/tree.yaml",
                "--param",
                "depth=3",
                "--param",
                "fanout=14",
                "--param",
                "hosts=9",
            ],
            "refuse: alias bomb (1e9 values)": ["tests/data/hostile/yaml-alias-bomb.yaml"],
            "refuse: 7 MB file": [str(make.big("size-file-too-big", d))],
            "refuse: 5,000-deep nesting": ["tests/data/hostile/yaml-deep-lists.yaml"],
            "refuse: 2,001 nodes": ["tests/data/hostile/addr-too-many-nodes.yaml"],
            "refuse: tree of 1e9 nodes": ["tests/data/hostile/size-tree-huge.yaml"],
        }
        figures = {}
        for name, args in cases.items():
            times, rc, first = [], 0, ""
            for _ in range(a.runs):
                t, rc, first = validate(args)
                times.append(t)
            figures[name] = {
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
                "exit": rc,
                "says": first,
            }
    base = figures["baseline: star.yaml (6 nodes)"]["median_s"]
    print(f"{'lab validate':42} | {'median':>8} | {'min':>7} | {'max':>7} | ratio | exit | first line")
    for name, f in figures.items():
        print(
            f"{name:42} | {f['median_s']:7.3f}s | {f['min_s']:6.3f}s | {f['max_s']:6.3f}s | "
            f"{f['median_s'] / base:5.1f} | {f['exit']:4} | {f['says']}"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
