"""Lab ready of the default campus with and without its mail filtering, runs interleaved.

    .venv/bin/python bench/ready_ab.py [RUNS]

On a shared machine the load changes from minute to minute: each round builds both
topologies one after the other, so both medians see the same load.  "before" is the
campus without rspamd and ClamAV (tests/data/good/dmz-unfiltered.yaml, what
topologies/dmz.yaml was before issue 13), "after" is topologies/dmz.yaml.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from lab.deploy.lab import Lab
from lab.model.load import load_topology
from lab.model.plan import make_plan

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "before (no filtering)": REPO / "tests" / "data" / "good" / "dmz-unfiltered.yaml",
    "after (rspamd + ClamAV)": REPO / "topologies" / "dmz.yaml",
}


def main(runs: int) -> None:
    times: dict[str, list[float]] = {k: [] for k in CASES}
    for i in range(runs):
        for name, path in CASES.items():
            lab = Lab(make_plan(load_topology(path)))
            try:
                lab.up()
                times[name].append(lab.timings["ready"])
            finally:
                lab.down()
            print(f"round {i + 1}: {name}: ready {times[name][-1]:.2f} s", flush=True)
    for name, t in times.items():
        print(f"{name}: median {statistics.median(t):.2f} s over {len(t)} runs ({', '.join(f'{x:.2f}' for x in t)})")
    b, a = (statistics.median(t) for t in times.values())
    print(f"difference of the medians: {a - b:+.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
