"""The catalogue of labs (docs/labs/catalogue.yaml): what each lab teaches and its files."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from lab.errors import InputError, Problem
from lab.model.actions import Line
from lab.model.rubric import Id
from lab.model.schema import Strict, parse
from lab.model.yamlload import load_file


class LabEntry(Strict):
    title: Line
    concepts: list[Line] = Field(min_length=1, max_length=30)
    topology: str
    scenario: str | None = None
    worksheet: str
    answers: str | None = None
    broken: str | None = None
    rubric: str | None = None
    duration: float | None = Field(None, ge=0, description="seconds, measured by bench/labs_bench.py")


class CatalogueFile(Strict):
    labs: dict[Id, LabEntry] = Field(min_length=1)


def load_catalogue(path: Path) -> dict[str, LabEntry]:
    """The labs, with every file they name checked to exist (relative to the repository)."""
    src = load_file(path)
    data = parse(CatalogueFile, src.data, src)
    root = path.resolve().parents[2]
    problems: list[Problem] = []
    for name, lab in data.labs.items():
        for key in ("topology", "scenario", "worksheet", "answers", "broken", "rubric"):
            rel = getattr(lab, key)
            if rel is not None and not (root / rel).is_file():
                problems.append(
                    src.problem(("labs", name, key), f"no such file: {rel}", "paths are from the repository")
                )
    if problems:
        raise InputError(problems=problems)
    return dict(data.labs)
