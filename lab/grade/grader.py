"""Grading one submission: check it, run the rubric's scenarios on it, score the results.

Each scenario runs as its own `lab run` process (its own lab, name prefix and report),
so students can be graded in parallel (``--jobs``) and a crash of one lab never costs
another student's grade.  A submission that does not validate is never run: it gets 0
with the validation error as its reason.  ``grade.json`` is written last, with the
submission's fingerprint, so an interrupted grading resumes where it stopped.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lab.errors import InputError
from lab.grade.submissions import Submission
from lab.model.load import load_topology
from lab.model.rubric import Rubric, score
from lab.model.scenario import load_scenario

Say = Callable[[str], None]
RUN_TIMEOUT = 900


def previous(out: Path, sub: Submission, rubric: Rubric) -> dict[str, Any] | None:
    """The grade of an earlier, complete grading of the same files with the same rubric."""
    try:
        grade: dict[str, Any] = json.loads((out / "grade.json").read_text())
    except (OSError, ValueError):
        return None
    same = grade.get("submission_sha") == sub.sha256 and grade.get("rubric") == str(rubric.path)
    return grade if same and grade.get("status") in ("graded", "refused") else None


def grade_one(
    sub: Submission,
    rubric: Rubric,
    out: Path,
    *,
    scenarios: dict[str, Path] | None = None,
    reference: Path | None = None,
    say: Say | None = None,
) -> dict[str, Any]:
    """Grade ``sub`` into ``out`` (its folder in the class output) and return grade.json.

    ``scenarios``/``reference``: the student's own variant of them (lab variant), if any.
    """
    say = say or (lambda m: None)
    t0 = time.monotonic()
    grade: dict[str, Any] = {
        "student": sub.student,
        "rubric": str(rubric.path),
        "submission_sha": sub.sha256,
        "max": rubric.max_points,
        "score": 0.0,
        "status": "refused",
        "reason": "",
        "checks": [],
        "groups": {},
        "runs": {},
    }
    files = scenarios or rubric.scenario_files()
    _diff(sub, reference or rubric.reference, out)
    if sub.refused is None:
        sub.refused = _validation(sub)
    if sub.refused is not None:
        grade["reason"] = sub.refused
        say(f"{sub.student}: refused, not run: {sub.refused.splitlines()[0]}")
    else:
        results: dict[str, list[dict[str, Any]]] = {}
        for name, scenario in files.items():
            say(f"{sub.student}: {name}")
            run = _run(scenario, sub.topology, out / "runs" / name)  # type: ignore[arg-type]
            if run.get("report"):
                run["report"] = os.path.relpath(run["report"], out)  # the class folder can be copied whole
            grade["runs"][name] = {k: v for k, v in run.items() if k != "steps"}
            if run.get("steps") is not None:
                results[name] = run["steps"]
        total, checks, groups = score(rubric, results)
        grade.update(status="graded", score=round(total, 2), checks=[asdict(c) for c in checks], groups=groups)
        say(f"{sub.student}: {total:g} / {rubric.max_points:g}")
    grade["percent"] = round(100 * grade["score"] / rubric.max_points, 1) if rubric.max_points else 0.0
    grade["seconds"] = round(time.monotonic() - t0, 2)
    _junit(grade, out / "junit.xml")
    (out / "grade.json").write_text(json.dumps(grade, indent=1, default=str))
    return grade


def _validation(sub: Submission) -> str | None:
    """None when the topology validates, else every located problem (the reason for 0)."""
    assert sub.topology is not None
    try:
        load_topology(sub.topology)
    except InputError as exc:
        first = str(exc.problems[0]).splitlines()[0] if exc.problems else ""
        return f"the topology does not validate ({len(exc.problems)} problem(s)): {first}\n{exc}"
    except Exception as exc:  # a file that breaks the checker: refused, never run
        return f"the topology could not be checked ({type(exc).__name__}: {exc})"
    return None


def _run(scenario: Path, topology: Path, reports: Path) -> dict[str, Any]:
    """One `lab run`; its summary's steps, or why there are none."""
    reports.mkdir(parents=True, exist_ok=True)
    try:
        load_scenario(scenario, topology=topology)
    except InputError as exc:
        return {"status": "error", "error": "the scenario does not fit this topology:\n" + str(exc), "steps": None}
    cmd = [
        sys.executable,
        "-m",
        "lab.cli",
        "run",
        str(scenario),
        "--topology",
        str(topology),
        "--reports",
        str(reports),
        "--json",
        "-q",
    ]
    try:
        r = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"the run took more than {RUN_TIMEOUT} s", "steps": None}
    try:
        info = json.loads(r.stdout.strip().splitlines()[-1])
        summary = json.loads((Path(info["report"]) / "summary.json").read_text())
    except (IndexError, ValueError, KeyError, OSError):
        return {
            "status": "error",
            "error": (r.stderr or r.stdout).strip()[-3000:] or f"exit {r.returncode}",
            "steps": None,
        }
    out = {
        "status": summary.get("status"),
        "report": info["report"],
        "duration": summary.get("duration"),
        "error": summary.get("error") or "",
        "steps": summary.get("steps", []),
    }
    if summary.get("error"):
        out["steps"] = None  # the lab did not come up: every check of this scenario fails with the error
    return out


def _diff(sub: Submission, reference: Path, out: Path) -> None:
    if sub.topology is None:
        return
    try:
        theirs = sub.topology.read_text(errors="replace").splitlines(keepends=True)
        ours = reference.read_text().splitlines(keepends=True)
    except OSError:
        return
    text = "".join(
        difflib.unified_diff(
            ours, theirs, fromfile=f"reference/{reference.name}", tofile=f"{sub.student}/topology.yaml"
        )
    )
    (out / "diff.txt").write_text(text or "(the same as the reference)\n")


def _junit(grade: dict[str, Any], path: Path) -> None:
    checks = grade.get("checks", [])
    failed = [c for c in checks if not c["passed"]]
    suite = ET.Element(
        "testsuite",
        name=f"mail-lab.grade.{grade['student']}",
        tests=str(len(checks) or 1),
        failures=str(len(failed)),
        errors="1" if grade["status"] != "graded" else "0",
    )
    if grade["status"] != "graded":
        case = ET.SubElement(suite, "testcase", classname=grade["student"], name="submission validates")
        ET.SubElement(case, "error", message=grade["reason"].splitlines()[0]).text = grade["reason"]
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"{grade['student']}.{c['group'] or 'check'}", name=c["id"])
        if not c["passed"]:
            text = "\n".join(c["failures"]) + (f"\nlook at: {c['hint']}" if c.get("hint") else "")
            ET.SubElement(case, "failure", message=(c["failures"][0] if c["failures"] else "failed")[:500]).text = text
    root = ET.Element("testsuites")
    root.append(suite)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
