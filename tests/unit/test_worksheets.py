"""The worksheets stay true: each has its sections, names files that exist and validate,
and the catalogue lists them (tests/integration/test_worksheets.py runs their commands)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lab.model.catalogue import load_catalogue
from lab.model.load import load_topology
from lab.model.rubric import load_rubric
from lab.model.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]
LABS = REPO / "docs" / "labs"
SECTIONS = ["Objective", "Run", "Observe", "Questions", "Break and fix"]
WORKSHEETS = sorted(p for p in LABS.glob("*.md") if p.name != "README.md")


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def run_commands(text: str) -> list[list[str]]:
    """The `lab ...` lines of the Run section's code blocks, as argument lists."""
    return [args for args, _ in run_commands_with_exit(text)]


def run_commands_with_exit(text: str) -> list[tuple[list[str], int]]:
    """Each `lab ...` line of the Run section with the exit code it should end with:
    0, or 1 where its comment says it fails (``# fails (exit 1): ...``, a lesson)."""
    run = sections(text).get("Run", "")
    out = []
    for block in re.findall(r"```(?:sh|bash)?\n(.*?)```", run, flags=re.S):
        for line in block.splitlines():
            cmd, _, comment = line.partition("#")
            if cmd.strip().startswith("lab "):
                out.append((shlex.split(cmd.strip()), 1 if re.match(r"\s*fails\b", comment) else 0))
    return out


def test_every_catalogued_lab_has_its_worksheet() -> None:
    labs = load_catalogue(LABS / "catalogue.yaml")
    listed = {Path(lab.worksheet).name for lab in labs.values()}
    assert listed == {p.name for p in WORKSHEETS}
    for name, lab in labs.items():
        assert lab.answers is not None and (REPO / lab.answers).is_file(), f"{name}: answers"
        assert lab.broken is not None and lab.rubric is not None, f"{name}: a break-and-fix exercise"


@pytest.mark.parametrize("sheet", WORKSHEETS, ids=lambda p: p.stem)
def test_worksheet_shape_and_files(sheet: Path) -> None:
    text = sheet.read_text()
    assert text.startswith("# "), "a title first"
    assert re.search(r"^Concepts: .+", text, re.M), "a Concepts: line"
    found = list(sections(text))
    assert [s for s in found if s in SECTIONS] == SECTIONS, f"sections {found}, want {SECTIONS} in order"
    qs = sections(text)["Questions"]
    assert len(re.findall(r"^\d+\. ", qs, re.M)) >= 3, "at least three questions"
    cmds = run_commands(text)
    assert cmds, "the Run section has lab commands"
    for args in cmds:
        for a in args:
            if a.endswith(".yaml"):
                p = REPO / a
                assert p.is_file(), f"{' '.join(args)}: no such file {a}"
                if "scenarios/" in a:
                    load_scenario(p)
                elif "rubrics/" in a:
                    load_rubric(p)
                else:
                    load_topology(p)
    brk = sections(text)["Break and fix"]
    named = re.findall(r"(docs/labs/broken/[\w.-]+\.yaml|rubrics/[\w.-]+\.yaml)", brk)
    assert any("broken/" in n for n in named) and any("rubrics/" in n for n in named), "names its variant and rubric"
    for n in named:
        assert (REPO / n).is_file(), n
    answers = LABS / "answers" / sheet.name
    assert answers.is_file(), "the answer key"
    assert len(re.findall(r"^\d+\. ", answers.read_text(), re.M)) >= len(re.findall(r"^\d+\. ", qs, re.M))


@pytest.mark.parametrize("path", sorted((LABS / "broken").glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_variants_validate(path: Path) -> None:
    """A broken variant is a valid topology that the lab's scenario finds wrong at run time
    (or, where the lesson is validation itself, one whose first line says so)."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# Break and fix:"), "a first line that names the exercise (not its answer)"
    if "lab validate refuses it" in first:
        return
    load_topology(path)
