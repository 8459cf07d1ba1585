"""Reading a topology file: the named phases of docs/architecture.md ("Where a YAML key goes").

read (bounded, ``yamlload``) -> expand a generator (``generate``) -> limits -> schema
(every section's entries on their own, ``schema.parse_partial``) -> cross-checks
(``checks``: every independent problem in one round) -> wiring and addresses
(``wiring``).  Nothing is built and nothing is mutated until every check passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.errors import InputError, Problem
from lab.model import checks, wiring
from lab.model.generate import expand
from lab.model.schema import parse_partial
from lab.model.topology import MAX_LINKS, MAX_NODES, MAX_SUBNETS, Topology, TopologyFile
from lab.model.yamlload import Located, load_file


def _looks_like_a_scenario(data: dict[str, Any]) -> bool:
    return "steps" in data or ("topology" in data and "nodes" not in data)


def file_kind(data: Any) -> str:
    """What a lab file is, from its top-level keys: topology, scenario, rubric or catalogue."""
    if not isinstance(data, dict):
        return "topology"
    if "checks" in data and ("scenarios" in data or "submission" in data) and "nodes" not in data:
        return "rubric"
    if "labs" in data and "nodes" not in data and "steps" not in data:
        return "catalogue"
    return "scenario" if _looks_like_a_scenario(data) else "topology"


def load_topology(
    path: str | Path, *, routing: str | None = None, params: dict[str, Any] | None = None, src: Located | None = None
) -> Topology:
    """Load, expand (``generate:``), validate, wire.  ``routing`` replaces the file's mode
    (one ring, three labs: static, ospf, rip); ``params`` size a generated topology;
    ``src``: the file already read (``lab validate`` reads it once to tell its kind)."""
    src = src if src is not None else load_file(path)
    if not isinstance(src.data, dict):
        raise InputError(
            problems=[src.problem((), "a topology must be a mapping with name, domain, subnets, nodes, links")]
        )
    kind = file_kind(src.data)
    if kind in ("rubric", "catalogue"):
        fix = (
            f"grade a class with it: lab grade SUBMISSIONS --rubric {path} --out grades/"
            if kind == "rubric"
            else "'lab labs' lists its labs; each one names its topology"
        )
        raise InputError(
            problems=[
                src.problem(
                    (), f"this is {'a rubric' if kind == 'rubric' else 'the lab catalogue'}, not a topology", fix
                )
            ]
        )
    if _looks_like_a_scenario(src.data):
        raise InputError(
            problems=[
                src.problem(
                    (),
                    "this is a scenario, not a topology",
                    f"run it with 'lab run {path}', or give a topology file here",
                )
            ]
        )
    if "generate" in src.data:
        expand(src, params or {})
    elif params:
        raise InputError(
            problems=[
                src.problem(
                    (),
                    "parameters were given but this topology is not generated",
                    "only topologies with a 'generate:' key take parameters",
                )
            ]
        )
    _limits(src)
    if routing is not None:
        r = src.data.get("routing")
        if isinstance(r, dict):
            r = {**r, "mode": routing}
            if routing != "static":
                r.pop("routes", None)
            src.data["routing"] = r
        else:
            src.data["routing"] = routing
    data, problems, broken = parse_partial(
        TopologyFile, src.data, src, ("nodes", "subnets", "links", "domains", "firewalls", "proxies", "vpns")
    )
    if data is None:
        raise InputError(problems=sorted_problems(problems))
    wired = wiring.wire(data)
    problems += checks.check(data, src, broken, wired)
    if problems:
        raise InputError(problems=sorted_problems(problems))
    return Topology(data, src, wired.subnets, wiring.assign(data, wired))


def _limits(src: Located) -> None:
    """Sizes a single machine can build, checked before anything else looks at the file."""
    for key, most in (("nodes", MAX_NODES), ("links", MAX_LINKS), ("subnets", MAX_SUBNETS)):
        value = src.data.get(key)
        if isinstance(value, (dict, list)) and len(value) > most:
            raise InputError(
                problems=[
                    src.problem(
                        (key,),
                        f"{len(value):,} {key} is more than one lab can have (at most {most:,})",
                        "split the lab, or use fewer",
                    )
                ]
            )


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """File order (stable for problems at the same place), without repeats."""
    seen: set[str] = set()
    out = []
    for p in sorted(problems, key=lambda p: (p.file, p.line or 0, p.column or 0)):
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out
