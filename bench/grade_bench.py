"""Students graded per minute by `lab grade` at --jobs 1 and --jobs 2 (this machine: 2 cores).

    .venv/bin/python bench/grade_bench.py                # 4 students, rubrics/dmz.yaml
    .venv/bin/python bench/grade_bench.py --students 6 --rubric rubrics/star.yaml

The class is N copies of the rubric's reference topology (every scenario runs to the
end, the slowest case). Each figure is one grading from scratch (a fresh --out), so
nothing is reused; the ratio is jobs 2 over jobs 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--students", type=int, default=4)
    ap.add_argument("--rubric", default="rubrics/dmz.yaml")
    ap.add_argument("--jobs", default="1,2")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from lab.model.rubric import load_rubric

    rubric = load_rubric(REPO / a.rubric)
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        for i in range(a.students):
            (subs / f"student{i + 1:02d}").mkdir(parents=True)
            (subs / f"student{i + 1:02d}" / "topology.yaml").write_text(rubric.reference.read_text())
        for jobs in [int(j) for j in a.jobs.split(",")]:
            out = Path(tmp) / f"out-{jobs}"
            t0 = time.monotonic()
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "lab.cli",
                    "grade",
                    str(subs),
                    "--rubric",
                    a.rubric,
                    "--out",
                    str(out),
                    "--jobs",
                    str(jobs),
                    "--json",
                    "-q",
                ],
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            seconds = time.monotonic() - t0
            ok = r.returncode == 0 and all(s["score"] == rubric.max_points for s in json.loads(r.stdout)["students"])
            figures[jobs] = {"seconds": round(seconds, 1), "per_minute": round(60 * a.students / seconds, 2), "ok": ok}
            print(
                f"--jobs {jobs}: {a.students} students in {seconds:.1f} s = {60 * a.students / seconds:.2f} "
                f"students/minute ({'all full marks' if ok else 'NOT all full marks: ' + r.stderr[-300:]})"
            )
    if 1 in figures and 2 in figures:
        print(f"ratio jobs 2 / jobs 1: {figures[2]['per_minute'] / figures[1]['per_minute']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
