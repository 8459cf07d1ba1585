"""Rubrics: how `lab grade` scores a class's submissions, as validated data.

A rubric names the scenarios to run on each submission's topology, the checks that
earn points (each selects steps or wire checks of one scenario by name), groups of
checks that share a root cause (their points are lost once, whatever fails inside),
and a hint per check naming the setting(s) that usually cause it::

    name: dmz
    reference: ../topologies/dmz.yaml
    scenarios: {dmz: ../scenarios/dmz.yaml, security: ../scenarios/security.yaml}
    checks:
      - {id: no-open-relay, scenario: security, steps: ["no relay: *"], points: 4,
         hint: "smtpd_relay_restrictions and mynetworks on the mail node"}
    groups:
      - {id: tls, checks: [starttls, wire-tls], points: 5, hint: smtpd_tls_security_level}

A selector is a step name (an fnmatch pattern: ``*``, ``?``), ``wire: ...`` for a wire
check, or ``#N`` for the step of index N.  Every selector must match a step of its
scenario when the rubric is loaded: a rubric that can give nothing is refused.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from lab.errors import InputError, Problem
from lab.model.actions import Line
from lab.model.scenario import Scenario, load_scenario
from lab.model.schema import Strict, parse, suggest
from lab.model.yamlload import Located, load_file

ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")


def _id(v: str) -> str:
    if not ID_RE.fullmatch(v):
        raise ValueError(f"'{v}' is not an id (1-41 lower-case letters, digits, '-' or '_')")
    return v


Id = Annotated[str, AfterValidator(_id)]


class Check(Strict):
    id: Id
    scenario: Id = Field(description="one of the rubric's scenarios")
    steps: list[Line] = Field(
        min_length=1, max_length=50, description="step names (fnmatch patterns), 'wire: ...' checks, or '#N' indices"
    )
    points: float = Field(1, ge=0, le=1000)
    hint: Line | None = Field(None, description="the setting(s) that usually cause a failure here")
    description: Line | None = None


class Group(Strict):
    id: Id
    checks: list[Id] = Field(min_length=1, description="checks that share a root cause")
    points: float = Field(ge=0, le=1000, description="lost once if any of the checks fails")
    hint: Line | None = None
    description: Line | None = None


class RubricFile(Strict):
    name: Id
    description: Line | None = None
    reference: str = Field(description="the reference topology (diffs, variants), relative to this file")
    submission: list[Annotated[str, AfterValidator(lambda v: _file(v))]] = Field(
        default_factory=lambda: ["topology.yaml"],
        max_length=10,
        description="the files each submission folder holds; topology.yaml is the one the scenarios run on",
    )
    scenarios: dict[Id, str] = Field(min_length=1, max_length=20, description="name: scenario file")
    checks: list[Check] = Field(min_length=1, max_length=500)
    groups: list[Group] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _topology_first(self) -> RubricFile:
        if "topology.yaml" not in self.submission:
            raise ValueError("a submission always holds topology.yaml: list it in 'submission'")
        return self


def _file(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,60}", v) or ".." in v:
        raise ValueError(f"'{v}' is not a plain file name")
    return v


@dataclass
class Rubric:
    """A checked rubric with its scenarios loaded (on the reference topology)."""

    path: Path
    data: RubricFile
    reference: Path
    scenarios: dict[str, Scenario]
    src: Located

    @property
    def max_points(self) -> float:
        grouped = {c for g in self.data.groups for c in g.checks}
        return sum(c.points for c in self.data.checks if c.id not in grouped) + sum(g.points for g in self.data.groups)

    def scenario_files(self) -> dict[str, Path]:
        return {name: self.scenarios[name].path for name in self.data.scenarios}


def result_names(scn: Scenario) -> list[tuple[int, str]]:
    """(index, name) of every result a run of ``scn`` has: steps, the accounting, wire checks."""
    out = [(s.index, s.name) for s in scn.steps]
    n = len(out)
    if any(s.kind in ("send", "flood") for s in scn.steps):
        out.append((n, "accounting: nothing lost, nothing duplicated"))
        n += 1
    if scn.wire is not None:
        out += [(n + i, name) for i, name in enumerate(scn.wire.check_names())]
    return out


def matches(selector: str, index: int, name: str) -> bool:
    if selector.startswith("#"):
        return selector[1:].isdigit() and int(selector[1:]) == index
    return fnmatch.fnmatchcase(name, selector)


def load_rubric(path: str | Path) -> Rubric:
    src = load_file(path)
    if not isinstance(src.data, dict):
        raise InputError(
            problems=[src.problem((), "a rubric must be a mapping with name, reference, scenarios, checks")]
        )
    data = parse(RubricFile, src.data, src)
    base = Path(src.file).parent
    problems: list[Problem] = []
    reference = (base / data.reference).resolve()
    if not reference.is_file():
        problems.append(src.problem(("reference",), f"no such file: {reference}", "the path is relative to the rubric"))
    scenarios: dict[str, Scenario] = {}
    for name, rel in data.scenarios.items():
        try:
            scenarios[name] = load_scenario(base / rel)
        except InputError as exc:
            problems.append(
                src.problem(
                    ("scenarios", name),
                    f"{rel}: {exc.problems[0].message}",
                    "fix the scenario first: lab validate " + str(base / rel),
                )
            )
    problems += _check_refs(data, scenarios, src)
    if problems:
        raise InputError(problems=problems)
    return Rubric(Path(src.file), data, reference, scenarios, src)


def _check_refs(data: RubricFile, scenarios: dict[str, Scenario], src: Located) -> list[Problem]:
    out: list[Problem] = []
    ids: dict[str, int] = {}
    for i, c in enumerate(data.checks):
        if c.id in ids:
            out.append(src.problem(("checks", i, "id"), f"check '{c.id}' is already defined (checks[{ids[c.id]}])"))
        ids[c.id] = i
        if c.scenario not in data.scenarios:
            out.append(
                src.problem(
                    ("checks", i, "scenario"), f"unknown scenario '{c.scenario}'", suggest(c.scenario, data.scenarios)
                )
            )
            continue
        scn = scenarios.get(c.scenario)
        if scn is None:
            continue
        names = result_names(scn)
        for j, sel in enumerate(c.steps):
            if not any(matches(sel, k, n) for k, n in names):
                out.append(
                    src.problem(
                        ("checks", i, "steps", j),
                        f"'{sel}' matches no step of scenario '{c.scenario}'",
                        suggest(sel, [n for _, n in names]) or "lab validate the scenario to see its step names",
                    )
                )
    grouped: dict[str, str] = {}
    for i, g in enumerate(data.groups):
        for j, cid in enumerate(g.checks):
            if cid not in ids:
                out.append(src.problem(("groups", i, "checks", j), f"unknown check '{cid}'", suggest(cid, ids)))
            elif cid in grouped:
                out.append(
                    src.problem(("groups", i, "checks", j), f"check '{cid}' is already in group '{grouped[cid]}'")
                )
            grouped[cid] = g.id
    return out


# --- scoring: pure, on the results of the runs ---------------------------------------


@dataclass(frozen=True)
class CheckScore:
    id: str
    passed: bool
    points: float  # earned
    max_points: float
    failures: tuple[str, ...]  # the failed results' "name: message"
    hint: str | None
    group: str | None


def score(rubric: Rubric, results: dict[str, list[dict[str, Any]]]) -> tuple[float, list[CheckScore], dict[str, bool]]:
    """Score one submission from its runs' results (summary.json ``steps`` per scenario).

    A scenario that did not run (its lab failed) fails every check on it.  Returns the
    score, each check's score, and each group's verdict (True: kept its points).
    """
    group_of = {c: g.id for g in rubric.data.groups for c in g.checks}
    checks: list[CheckScore] = []
    for c in rubric.data.checks:
        steps = results.get(c.scenario)
        if steps is None:
            fails: tuple[str, ...] = (f"scenario '{c.scenario}' did not run",)
        else:
            hit = [s for s in steps if any(matches(sel, int(s["index"]), str(s["name"])) for sel in c.steps)]
            fails = tuple(f"{s['name']}: {s.get('message', '')}" for s in hit if s.get("status") != "passed")
            if not hit:
                fails = ("none of its steps ran",)
        grp = group_of.get(c.id)
        own = 0.0 if grp else c.points
        checks.append(CheckScore(c.id, not fails, own if not fails else 0.0, own, fails, c.hint, grp))
    groups = {g.id: all(cs.passed for cs in checks if cs.group == g.id) for g in rubric.data.groups}
    total = sum(cs.points for cs in checks) + sum(g.points for g in rubric.data.groups if groups[g.id])
    return total, checks, groups
