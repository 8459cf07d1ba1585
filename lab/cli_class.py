"""The `lab` commands for a class: the catalogue of labs, grading, per-student variants."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lab.errors import EnvironmentProblem, InputError, Problem

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = REPO / "docs" / "labs" / "catalogue.yaml"


def _say(quiet: bool) -> Any:
    t0 = time.monotonic()

    def say(msg: str) -> None:
        if not quiet:
            print(f"[{time.monotonic() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


def cmd_labs(args: argparse.Namespace) -> int:
    from lab.model.catalogue import load_catalogue

    labs = load_catalogue(Path(args.catalogue))
    if args.json:
        print(json.dumps([lab.model_dump() | {"name": name} for name, lab in labs.items()], indent=1))
        return 0
    print(f"{'lab':14} {'concepts':44} {'scenario':28} {'run':>6}")
    for name, lab in labs.items():
        dur = f"{lab.duration:.0f} s" if lab.duration else "-"
        concepts = ", ".join(lab.concepts)
        print(f"{name:14} {concepts[:44]:44} {Path(lab.scenario).name if lab.scenario else '-':28} {dur:>6}")
    print(f"\n{len(labs)} labs; worksheets in docs/labs/, e.g. docs/labs/{next(iter(labs))}.md")
    return 0


def _shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    k, sep, n = text.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n) <= 1000:
        raise InputError(problems=[Problem("--shard", None, None, "", f"{text!r} is not K/N", "e.g. --shard 2/4")])
    return int(k), int(n)


def cmd_grade(args: argparse.Namespace) -> int:
    from lab.grade.classroom import grade_class, merge
    from lab.model.rubric import load_rubric

    rubric = load_rubric(args.rubric)
    out = Path(args.out)
    if args.submissions and args.submissions[0] == "merge":
        summary = merge([Path(d) for d in args.submissions[1:]], rubric, out)
    else:
        if len(args.submissions) != 1:
            raise InputError(
                problems=[
                    Problem(
                        "lab grade",
                        None,
                        None,
                        "",
                        "give one folder of submissions",
                        "or: lab grade merge SHARD_DIR... --rubric R --out DIR",
                    )
                ]
            )
        variants = _variants(Path(args.variants), rubric, out) if args.variants else None
        try:
            summary = grade_class(
                Path(args.submissions[0]),
                rubric,
                out,
                jobs=args.jobs,
                shard=_shard(args.shard),
                variants=variants,
                say=_say(args.quiet),
            )
        except (FileNotFoundError, ValueError) as exc:
            raise EnvironmentProblem(str(exc)) from None
    if args.json:
        print(
            json.dumps(
                {k: summary[k] for k in ("rubric", "max", "seconds") if k in summary}
                | {"students": [{k: g[k] for k in ("student", "score", "status")} for g in summary["students"]]}
            )
        )
        return 0
    print(f"rubric {summary['rubric']}: {len(summary['students'])} student(s), out of {summary['max']:g}")
    for g in summary["students"]:
        why = f"  ({g['reason'].splitlines()[0]})" if g.get("reason") else ""
        print(f"  {g['student']:24} {g['score']:6g}  {g['status']}{why}")
    for c in summary["common_failures"][:5]:
        print(f"  most failed: {c['check']} ({c['students']} student(s)); look at: {c['hint'] or '-'}")
    print(f"class: {out / 'class.html'} (and class.csv, class.json)")
    return 0


def _variants(path: Path, rubric: Any, out: Path) -> dict[str, dict[str, Any]]:
    """Each student's variant of the rubric's scenarios, written under the class output."""
    from lab.model.variant import dump, from_json
    from lab.model.yamlload import load_file

    try:
        data = json.loads(path.read_text())
        table = {name: from_json(v) for name, v in data["students"].items()}
        folder = path.parent
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            problems=[Problem(str(path), None, None, "", f"not a variants.json of lab variant: {exc}")]
        ) from None
    result = {}
    for student, v in table.items():
        topo = folder / student / "topology.yaml"
        scen_dir = out / student / "scenarios"
        scen_dir.mkdir(parents=True, exist_ok=True)
        files = {}
        for name, scn_path in rubric.scenario_files().items():
            d = v.apply(load_file(scn_path).data)
            d["topology"] = str(topo.resolve())
            f = scen_dir / f"{name}.yaml"
            f.write_text(dump(d, f"{name} for {student}: the rubric's scenario in this student's variant"))
            files[name] = str(f)
        result[student] = {"scenarios": files, "topology": str(topo)}
    return result


def cmd_variant(args: argparse.Namespace) -> int:
    from lab.model.load import load_topology
    from lab.model.variant import dump, to_json, variants
    from lab.model.yamlload import load_file

    src = load_file(args.topology)
    load_topology(args.topology, src=load_file(args.topology))  # the reference itself must be valid
    seed, table = variants(Path(args.roster), src, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for student, v in table.items():
        d = out / student
        d.mkdir(exist_ok=True)
        text = dump(
            v.apply(src.data),
            f"{student}'s own {Path(args.topology).name}: your subnets, domains and "
            f"users\n(lab variant, seed {seed}); edit it and hand it in as topology.yaml",
        )
        (d / "topology.yaml").write_text(text)
        load_topology(d / "topology.yaml")  # what we hand out validates
    (out / "variants.json").write_text(
        json.dumps(
            {"seed": seed, "topology": str(args.topology), "students": {s: to_json(v) for s, v in table.items()}},
            indent=1,
        )
    )
    print(
        f"{len(table)} variant(s) of {args.topology} in {out} (seed {seed}); grade them with "
        f"lab grade SUBMISSIONS --rubric R --variants {out / 'variants.json'}"
    )
    return 0


def add_class_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    labs = sub.add_parser(
        "labs",
        help="the catalogue of labs: concepts, topology, scenario, duration",
        description="Every lab with its worksheet (docs/labs/), the concepts it teaches, its files "
        "and how long a run takes on this machine.",
    )
    labs.add_argument("--catalogue", default=str(CATALOGUE), help=argparse.SUPPRESS)
    labs.add_argument("--json", action="store_true")
    labs.set_defaults(func=cmd_labs)

    g = sub.add_parser(
        "grade",
        help="grade a folder of submissions with a rubric (class.csv, .json, .html)",
        description="SUBMISSIONS holds one folder per student (named after them) with topology.yaml. "
        "Each is checked first (an invalid or hostile one gets 0 and never runs), then the rubric's "
        "scenarios run on it. 'lab grade merge DIR... --rubric R --out D' merges shards.",
    )
    g.add_argument("submissions", nargs="+", help="the submissions folder (or: merge SHARD_OUT_DIR...)")
    g.add_argument("--rubric", required=True, help="rubric YAML, e.g. rubrics/dmz.yaml")
    g.add_argument("--out", required=True, help="where grades go: DIR/<student>/, DIR/class.*")
    g.add_argument("--jobs", type=int, default=1, help="students graded at once (labs side by side)")
    g.add_argument("--shard", help="grade the K-th of N shards of the class (K/N), for a CI matrix")
    g.add_argument("--variants", help="variants.json from lab variant: each student graded on their own variant")
    g.add_argument("--json", action="store_true")
    g.add_argument("-q", "--quiet", action="store_true")
    g.set_defaults(func=cmd_grade)

    v = sub.add_parser(
        "variant",
        help="one variant of a topology per student (own subnets, domains, users)",
        description="Write OUT/<student>/topology.yaml for every student of the roster (a CSV with "
        "a 'student' column) and OUT/variants.json, from a seed (--seed, else a random one, recorded).",
    )
    v.add_argument("--roster", required=True)
    v.add_argument("--topology", required=True)
    v.add_argument("--out", required=True)
    v.add_argument("--seed")
    v.set_defaults(func=cmd_variant)
