"""How long each lab of the catalogue takes, next to the duration the catalogue says.

    .venv/bin/python bench/labs_bench.py [--runs N] [--only bus,dmz,...] [--json OUT]

Each lab's scenario runs on its topology (``lab run`` as a student types it, through
``run_scenario``), ``--runs`` times; the median whole-run time is printed with the
catalogue's ``duration`` and their ratio, so an instructor knows what a class period
holds and a developer sees a lab that became slower.  Nothing is asserted: the machine's
load moves these figures (the load average is printed with them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.model.catalogue import load_catalogue  # noqa: E402
from lab.model.scenario import load_scenario  # noqa: E402
from lab.scenario.runner import run_scenario  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated lab names")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    a = ap.parse_args()
    labs = load_catalogue(REPO / "docs" / "labs" / "catalogue.yaml")
    names = [n for n in labs if not a.only or n in a.only.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="labs-bench-") as tmp:
        for name in names:
            lab = labs[name]
            scn = load_scenario(REPO / lab.scenario, topology=REPO / lab.topology)
            times, status = [], "passed"
            for _ in range(a.runs):
                t = time.monotonic()
                result, _ = run_scenario(scn, Path(tmp), prefix="mlL")
                times.append(time.monotonic() - t)
                status = result.status if result.status != "passed" else status
            med = statistics.median(times)
            ratio = med / lab.duration if lab.duration else None
            rows.append(
                {"lab": name, "median_s": round(med, 2), "catalogue_s": lab.duration, "ratio": ratio, "status": status}
            )
            shown = f"{ratio:.2f}" if ratio is not None else "-"
            print(f"{name:16} {med:7.2f} s   catalogue {lab.duration or 0:6.1f} s   ratio {shown:>5}   {status}")
    load = os.getloadavg()
    print(f"{len(rows)} labs, {a.runs} run(s) each; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if a.json:
        a.json.write_text(json.dumps({"labs": rows, "load": load}, indent=1))
    return 0 if all(r["status"] == "passed" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
