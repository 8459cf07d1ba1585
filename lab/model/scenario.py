"""Scenario files: a topology plus an ordered list of steps.

Each step is a mapping with one action key (``send``, ``fetch``, ``dns``, ``expect``,
``wait_for`` ...) holding that action's parameters, and optionally a ``name``::

    - name: alice submits a message for bob
      send: {on: pc1, login: alice@projet.dz, to: [bob@projet.dz], message: m1}

``load_scenario`` reads the file (bounded), loads its topology, parses every step, then
checks every reference (hosts, users, servers, message labels, ports that something
listens on) against the topology (``lab.model.scenario_checks``) before anything is
built.  All independent problems come in one round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import InputError, Problem
from lab.model.actions import *  # noqa: F403  (the step models, re-exported)
from lab.model.actions import ACTIONS, Wire
from lab.model.load import load_topology, sorted_problems
from lab.model.plan import Plan, make_plan
from lab.model.schema import parse, suggest
from lab.model.topology import Topology
from lab.model.yamlload import Located, load_file, read_text

TOP_KEYS = ("name", "description", "topology", "routing", "params", "capture", "wire", "steps")


@dataclass
class Step:
    index: int
    kind: str
    name: str
    params: Any
    line: int | None

    def __repr__(self) -> str:
        return f"Step({self.index}, {self.kind}, {self.name!r})"


@dataclass
class Scenario:
    path: Path
    name: str
    description: str
    topology: Topology
    plan: Plan
    steps: list[Step]
    src: Located
    capture: bool = True
    wire: Wire | None = None
    problems: list[Problem] = field(default_factory=list)


def _other_kind(data: dict[str, Any], name: str) -> tuple[str, str] | None:
    """A rubric or the lab catalogue given where a scenario is expected: what it is, and the fix."""
    if "checks" in data and ("scenarios" in data or "submission" in data) and "steps" not in data:
        return (
            "this is a rubric, not a scenario",
            f"grade a class with it: lab grade SUBMISSIONS --rubric {name} --out grades/",
        )
    if "labs" in data and "steps" not in data:
        return "this is the lab catalogue, not a scenario", "'lab labs' lists its labs; each one names its scenario"
    return None


def load_scenario(path: str | Path, topology: str | Path | None = None) -> Scenario:
    """Load and check a scenario.  ``topology`` replaces the one the file names: the
    same scenario graded against a student's topology."""
    from lab.model import step_checks  # noqa: F401  (registers the checks of the web and tunnel steps)
    from lab.model.scenario_checks import check_refs, check_wire

    src = load_file(path)
    p = src.problem
    data = _header(src)
    topo = _topology(src, data, topology)
    plan = make_plan(topo)
    steps, problems = _steps(src, data["steps"])
    capture = data.get("capture", True)
    if not isinstance(capture, bool):
        problems.append(p(("capture",), "capture is true (every link, the default) or false"))
    wire = None
    if data.get("wire") is not None:
        try:
            wire = parse(Wire, data["wire"], src, ("wire",))
        except InputError as exc:
            problems.extend(exc.problems)
        else:
            if capture is False:
                problems.append(p(("wire",), "wire assertions need captures", "remove 'capture: false'"))
    problems += check_refs(steps, plan, src)
    if wire is not None:
        problems += check_wire(wire, plan, src)
    if problems:
        raise InputError(problems=_summarised(sorted_problems(problems), src, topo, topology))
    return Scenario(
        Path(src.file),
        str(data.get("name") or Path(src.file).stem),
        str(data.get("description") or ""),
        topo,
        plan,
        steps,
        src,
        bool(capture),
        wire,
    )


def _header(src: Located) -> dict[str, Any]:
    p = src.problem
    data = src.data
    if not isinstance(data, dict):
        raise InputError(problems=[p((), "a scenario must be a mapping with name, topology, steps")])
    if "steps" not in data and ("nodes" in data or "links" in data or "subnets" in data):
        raise InputError(
            problems=[
                p(
                    (),
                    "this is a topology, not a scenario",
                    f"'lab up {src.file}' builds it; to run a scenario on it: lab run SCENARIO --topology {src.file}",
                )
            ]
        )
    other = _other_kind(data, str(src.file))
    if other is not None:
        raise InputError(problems=[p((), *other)])
    problems = [
        p((key,), f"unknown key '{key}'", suggest(key, TOP_KEYS) or "allowed: " + ", ".join(TOP_KEYS))
        for key in data
        if key not in TOP_KEYS
    ]
    problems += [p((), f"missing key '{key}'") for key in ("topology", "steps") if key not in data]
    if problems:
        raise InputError(problems=problems)
    if not isinstance(data["steps"], list) or not data["steps"]:
        raise InputError(problems=[p(("steps",), "must be a non-empty list of steps")])
    return data


def _topology(src: Located, data: dict[str, Any], override: str | Path | None) -> Topology:
    p = src.problem
    if not isinstance(data["topology"], str):
        raise InputError(problems=[p(("topology",), "must be a path to a topology file")])
    topo_path = (
        Path(override).resolve() if override is not None else (Path(src.file).parent / data["topology"]).resolve()
    )
    if override is None:
        try:
            read_text(topo_path)  # a missing file, a folder, a device: say it here, at `topology:`
        except InputError as exc:
            what = exc.problems[0]
            raise InputError(
                problems=[
                    p(
                        ("topology",),
                        f"{topo_path}: {what.message}",
                        what.hint or "the path is relative to the scenario file",
                    )
                ]
            ) from None
    routing = data.get("routing")
    if routing is not None and routing not in ("static", "ospf", "rip"):
        raise InputError(
            problems=[
                p(
                    ("routing",),
                    f"unknown routing mode {routing!r}",
                    "one of: static, ospf, rip (it replaces the topology's mode)",
                )
            ]
        )
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise InputError(problems=[p(("params",), "must be a mapping of generator parameters, e.g. {depth: 2}")])
    return load_topology(topo_path, routing=routing, params=params)


def _steps(src: Located, raw_steps: list[Any]) -> tuple[list[Step], list[Problem]]:
    p = src.problem
    steps: list[Step] = []
    problems: list[Problem] = []
    for i, raw in enumerate(raw_steps):
        where = ("steps", i)
        if not isinstance(raw, dict):
            problems.append(p(where, "a step must be a mapping like {send: {...}}"))
            continue
        kinds = [k for k in raw if k != "name"]
        if len(kinds) != 1:
            problems.append(
                p(
                    where,
                    "a step needs exactly one action key besides 'name'"
                    + (f", found: {', '.join(kinds)}" if kinds else ""),
                    "actions: " + ", ".join(ACTIONS),
                )
            )
            continue
        kind = kinds[0]
        if kind not in ACTIONS:
            problems.append(
                p(
                    where + (kind,),
                    f"unknown step kind '{kind}'",
                    suggest(kind, list(ACTIONS)) or "actions: " + ", ".join(ACTIONS),
                )
            )
            continue
        name = raw.get("name")
        if name is not None and (not isinstance(name, str) or "\n" in name or len(name) > 200):
            problems.append(p(where + ("name",), "a step name is one line of text"))
            continue
        body = raw[kind] if raw[kind] is not None else {}
        try:
            params = parse(ACTIONS[kind], body, src, where + (kind,))
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        steps.append(Step(i, kind, name or str(params.title()).replace("  ", " "), params, src.where(where)[0]))
    return steps, problems


#: a problem that says a name of the scenario is not in the topology
_MISSING = re.compile(r"^(?:unknown node '([^']+)'|'([^']+)' is (?:neither|not a (?:router|mailbox|user|subnet)))")


def _summarised(problems: list[Problem], src: Located, topo: Topology, override: str | Path | None) -> list[Problem]:
    """A scenario run on a topology that lacks many of the names it uses gets one line
    saying so (and the fix), instead of one line per step that names them."""
    refs = [(pr, _MISSING.match(pr.message)) for pr in problems]
    missing = sorted({m.group(1) or m.group(2) for _, m in refs if m})
    if len(missing) < 3:
        return problems
    others = [pr for pr, m in refs if not m]
    shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
    hint = (
        f"is {topo.path} the topology this scenario was written for? it names {src.data.get('topology')}"
        if override is not None
        else "add those nodes to the topology, or point 'topology:' at another one"
    )
    head = src.problem(
        ("topology",),
        f"the topology '{topo.name}' lacks {len(missing)} names this scenario uses ({shown}); "
        f"{len(problems) - len(others)} step references fail on them",
        hint,
    )
    return [head, *others]
