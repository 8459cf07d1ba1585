"""Grading a class: every submission (in parallel with ``jobs``), then class.csv, class.json
and class.html; a shard of the class for a CI matrix, and the merge of the shards."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lab.grade.grader import grade_one, previous
from lab.grade.submissions import Submission, discover, take
from lab.model.rubric import Rubric

Say = Callable[[str], None]


def shard_of(folders: list[Path], shard: tuple[int, int] | None) -> list[Path]:
    """The K-th of N shards (1-based), students dealt in name order."""
    if shard is None:
        return folders
    k, n = shard
    return [f for i, f in enumerate(folders) if i % n == k - 1]


def grade_class(
    submissions: Path,
    rubric: Rubric,
    out: Path,
    *,
    jobs: int = 1,
    shard: tuple[int, int] | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
    say: Say | None = None,
) -> dict[str, Any]:
    say = say or (lambda m: None)
    lock = threading.Lock()

    def tell(msg: str) -> None:
        with lock:
            say(msg)

    folders, skipped = discover(submissions)
    folders = shard_of(folders, shard)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    def one(folder: Path) -> dict[str, Any]:
        dest = out / folder.name
        sub: Submission = take(folder, rubric.data.submission, dest / "submission")
        done = previous(dest, sub, rubric)
        if done is not None:
            tell(f"{sub.student}: graded before ({done['score']:g} / {done['max']:g}), kept")
            return done
        own = (variants or {}).get(sub.student)
        scenarios = {k: Path(v) for k, v in own["scenarios"].items()} if own else None
        reference = Path(own["topology"]) if own else None
        if variants is not None and own is None:
            sub.refused = sub.refused or "this student has no variant in the roster's variants.json"
        return grade_one(sub, rubric, dest, scenarios=scenarios, reference=reference, say=tell)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        grades = list(pool.map(one, folders))
    summary = class_summary(rubric, grades, skipped)
    summary["seconds"] = round(time.monotonic() - t0, 1)
    summary["jobs"] = jobs
    summary["shard"] = f"{shard[0]}/{shard[1]}" if shard else None
    write_class(out, rubric, summary)
    return summary


def class_summary(rubric: Rubric, grades: list[dict[str, Any]], skipped: list[str]) -> dict[str, Any]:
    """The class's grades ranked, and its most common failures with their hints."""
    ranked = sorted(grades, key=lambda g: (-g["score"], g["student"]))
    common: Counter[str] = Counter()
    for g in grades:
        common.update(c["id"] for c in g.get("checks", []) if not c["passed"])
    hints = {c.id: c.hint for c in rubric.data.checks}
    return {
        "schema": "mail-lab/class/v1",
        "rubric": rubric.data.name,
        "rubric_file": str(rubric.path),
        "max": rubric.max_points,
        "groups": [g.id for g in rubric.data.groups],
        "checks": [c.id for c in rubric.data.checks],
        "students": ranked,
        "skipped": skipped,
        "common_failures": [{"check": k, "students": n, "hint": hints.get(k)} for k, n in common.most_common()],
    }


def write_class(out: Path, rubric: Rubric, summary: dict[str, Any]) -> None:
    from lab.report.classhtml import write_class_html

    (out / "class.json").write_text(json.dumps(summary, indent=1, default=str))
    grouped = {c for g in rubric.data.groups for c in g.checks}
    loose = [c.id for c in rubric.data.checks if c.id not in grouped]
    points = {c.id: c.points for c in rubric.data.checks}
    with open(out / "class.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "score", "max", "percent", "status", "reason", *summary["groups"], *loose])
        for g in summary["students"]:
            by_check = {c["id"]: c for c in g.get("checks", [])}
            group_points = [
                next((x.points for x in rubric.data.groups if x.id == gid), 0) if g["groups"].get(gid) else 0
                for gid in summary["groups"]
            ]
            loose_points = [points[c] if by_check.get(c, {}).get("passed") else 0 for c in loose]
            reason = (g.get("reason") or "").splitlines()[0] if g.get("reason") else ""
            w.writerow(
                [g["student"], g["score"], g["max"], g["percent"], g["status"], reason, *group_points, *loose_points]
            )
    write_class_html(summary, out / "class.html")


def merge(shards: list[Path], rubric: Rubric, out: Path) -> dict[str, Any]:
    """One class from the shards a CI matrix graded: their students' grade.json files."""
    grades: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for d in shards:
        cls = json.loads((d / "class.json").read_text())
        skipped += cls.get("skipped", [])
        for g in cls["students"]:
            grades[g["student"]] = g
    out.mkdir(parents=True, exist_ok=True)
    summary = class_summary(rubric, list(grades.values()), sorted(set(skipped)))
    summary["shards"] = [str(d) for d in shards]
    write_class(out, rubric, summary)
    return summary
