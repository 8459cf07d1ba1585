"""class.html: one self-contained page for a graded class (sortable, every failure with its hint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"


def class_context(summary: dict[str, Any]) -> dict[str, Any]:
    students = []
    for g in summary["students"]:
        failed = [c for c in g.get("checks", []) if not c["passed"]]
        reports = {name: run.get("report") for name, run in g.get("runs", {}).items() if run.get("report")}
        errors = {name: run.get("error") for name, run in g.get("runs", {}).items() if run.get("error")}
        students.append(
            {
                "name": g["student"],
                "score": g["score"],
                "max": g["max"],
                "percent": g.get("percent", 0),
                "status": g["status"],
                "reason": g.get("reason", ""),
                "failed": failed,
                "groups": g.get("groups", {}),
                "reports": reports,
                "errors": errors,
                "seconds": g.get("seconds"),
            }
        )
    return {
        "title": f"{summary['rubric']}: {len(students)} student(s)",
        "summary": summary,
        "students": students,
        "groups": summary.get("groups", []),
        "common": summary.get("common_failures", [])[:15],
    }


def write_class_html(summary: dict[str, Any], path: Path) -> Path:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    path.write_text(env.get_template("class.html.j2").render(**class_context(summary)), encoding="utf-8")
    return path
