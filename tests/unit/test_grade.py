"""Grading without labs: rubrics, scoring from results, submissions taken safely, variants."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab.errors import InputError
from lab.grade.classroom import class_summary, shard_of, write_class
from lab.grade.submissions import discover, take
from lab.model.load import load_topology
from lab.model.rubric import load_rubric, result_names, score
from lab.model.scenario import load_scenario
from lab.model.variant import read_roster, variants
from lab.model.yamlload import load_file

REPO = Path(__file__).resolve().parents[2]
RUBRIC = REPO / "rubrics" / "dmz.yaml"


@pytest.fixture(scope="module")
def rubric():  # type: ignore[no-untyped-def]
    return load_rubric(RUBRIC)


def results_of(rubric, failing: set[str] = frozenset()):  # type: ignore[no-untyped-def]
    """Every result of every scenario passing, but the names in ``failing``."""
    out = {}
    for name, scn in rubric.scenarios.items():
        out[name] = [
            {"index": i, "name": n, "status": "failed" if n in failing else "passed", "message": "boom"}
            for i, n in result_names(scn)
        ]
    return out


def test_the_shipped_rubrics_load() -> None:
    for path in sorted((REPO / "rubrics").glob("*.yaml")):
        r = load_rubric(path)
        assert r.max_points > 0 and r.scenarios, path


def test_everything_passing_scores_the_maximum(rubric) -> None:  # type: ignore[no-untyped-def]
    total, checks, groups = score(rubric, results_of(rubric))
    assert total == rubric.max_points == 34
    assert all(c.passed for c in checks) and all(groups.values())


def test_a_root_cause_costs_its_group_once(rubric) -> None:  # type: ignore[no-untyped-def]
    # TLS off on submission: three checks fail, the group's 5 points are lost once
    failing = {
        "submission offers STARTTLS and no AUTH before it",
        "wire: TLS >= 1.2 on ports 25, 587, 993",
        "wire: no credentials in clear",
    }
    total, checks, groups = score(rubric, results_of(rubric, failing))
    assert total == 34 - 5
    assert groups["tls-on-submission"] is False
    failed = {c.id: c for c in checks if not c.passed}
    assert set(failed) == {"submission-tls-first", "wire-tls", "wire-no-credentials"}
    assert "smtpd_tls_security_level" in (failed["submission-tls-first"].hint or "")
    assert failed["wire-tls"].failures == ("wire: TLS >= 1.2 on ports 25, 587, 993: boom",)


def test_an_ungrouped_check_loses_its_own_points(rubric) -> None:  # type: ignore[no-untyped-def]
    total, _, _ = score(rubric, results_of(rubric, {"alice cannot send as bob"}))
    assert total == 34 - 2


def test_a_scenario_that_did_not_run_fails_all_its_checks(rubric) -> None:  # type: ignore[no-untyped-def]
    res = results_of(rubric)
    del res["security"]
    total, checks, _ = score(rubric, res)
    assert all(not c.passed for c in checks if c.id in {"no-open-relay", "no-spoofing", "firewall-matrix"})
    assert total < 20


def test_result_names_are_the_runners(rubric) -> None:  # type: ignore[no-untyped-def]
    names = [n for _, n in result_names(load_scenario(REPO / "scenarios" / "dmz.yaml"))]
    assert names[18] == "accounting: nothing lost, nothing duplicated"
    assert names[19:] == load_scenario(REPO / "scenarios" / "dmz.yaml").wire.check_names()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "change,message",
    [
        (
            'steps: ["#0"], points: 1,\n     hint: "routing.routes.fw',
            'steps: ["#99"], points: 1,\n     hint: "routing.routes.fw',
        ),
        ('scenario: dmz, steps: ["#4"]', 'scenario: dnz, steps: ["#4"]'),
        ("id: port-forward,", "id: route-out,"),
        ("checks: [fw-denies, firewall-matrix]", "checks: [fw-denies, firewal-matrix]"),
        ("submission: [topology.yaml]", "submission: [../../etc/shadow]"),
        ('points: 4,\n     hint: "smtpd_relay', 'points: -4,\n     hint: "smtpd_relay'),
    ],
)
def test_bad_rubrics_are_refused_with_a_location(change: str, message: str, tmp_path: Path) -> None:
    text = RUBRIC.read_text()
    assert change in text, change
    bad = tmp_path / "r.yaml"
    bad.write_text(
        text.replace(change, message)
        .replace("../topologies", str(REPO / "topologies"))
        .replace("../scenarios", str(REPO / "scenarios"))
    )
    with pytest.raises(InputError) as info:
        load_rubric(bad)
    assert all(p.line for p in info.value.problems), str(info.value)


def test_submissions_are_taken_safely(tmp_path: Path) -> None:
    root = tmp_path / "subs"
    (root / "alice").mkdir(parents=True)
    (root / "alice" / "topology.yaml").write_text("name: x\n")
    (root / "bob").mkdir()
    os.symlink("/etc/shadow", root / "bob" / "topology.yaml")
    (root / "carol").mkdir()
    (root / "carol" / "topology.yaml").write_bytes(b"x" * (2 * 1024 * 1024))
    (root / "bad name").mkdir()
    (root / "readme.txt").write_text("not a folder")
    folders, skipped = discover(root)
    assert [f.name for f in folders] == ["alice", "bob", "carol"]
    assert any("bad name" in s for s in skipped) and any("readme.txt" in s for s in skipped)
    got = {f.name: take(f, ["topology.yaml"], tmp_path / "out" / f.name) for f in folders}
    assert got["alice"].refused is None and got["alice"].topology is not None
    assert "not a regular file" in (got["bob"].refused or "")
    assert "bytes" in (got["carol"].refused or "")
    assert not (tmp_path / "out" / "bob" / "topology.yaml").exists()
    assert [f.name for f in shard_of(folders, (2, 2))] == ["bob"]


def test_class_outputs(tmp_path: Path, rubric) -> None:  # type: ignore[no-untyped-def]
    _, checks, groups = score(rubric, results_of(rubric, {"alice cannot send as bob"}))
    from dataclasses import asdict

    g1 = {
        "student": "ann",
        "score": 32.0,
        "max": 34.0,
        "percent": 94.1,
        "status": "graded",
        "reason": "",
        "checks": [asdict(c) for c in checks],
        "groups": groups,
        "runs": {},
    }
    g2 = {
        "student": "ben",
        "score": 0.0,
        "max": 34.0,
        "percent": 0.0,
        "status": "refused",
        "reason": "the topology does not validate (1 problem(s)): x",
        "checks": [],
        "groups": {},
        "runs": {},
    }
    summary = class_summary(rubric, [g2, g1], [])
    assert [s["student"] for s in summary["students"]] == ["ann", "ben"]
    assert summary["common_failures"][0]["check"] == "no-spoofing"
    write_class(tmp_path, rubric, summary)
    lines = (tmp_path / "class.csv").read_text().splitlines()
    assert lines[0].startswith("student,score,max,percent,status,reason,tls-on-submission,firewall-policy")
    assert lines[1].startswith("ann,32.0,34.0") and lines[2].startswith("ben,0.0,34.0,0.0,refused")
    html = (tmp_path / "class.html").read_text()
    assert "no-spoofing" in html and "reject_sender_login_mismatch" in html
    assert json.loads((tmp_path / "class.json").read_text())["schema"] == "mail-lab/class/v1"


def test_variants_move_domains_users_and_addresses(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("student,email\nann,a@x\nben,b@x\n")
    src = load_file(REPO / "topologies" / "dmz.yaml")
    _, table = variants(roster, src, "s3cret")
    assert set(table) == {"ann", "ben"}
    ann, ben = table["ann"], table["ben"]
    assert ann.domains["projet.dz"] != ben.domains["projet.dz"], "two students never share a domain"
    assert variants(roster, src, "s3cret")[1]["ann"] == ann, "the same seed gives the same variant"
    data = ann.apply(src.data)
    path = tmp_path / "ann.yaml"
    from lab.model.variant import dump

    path.write_text(dump(data, "ann"))
    topo = load_topology(path)  # a variant is a valid topology
    new = ann.domains["projet.dz"]
    assert topo.data.domain == new and new in topo.data.domains
    users = set(topo.data.domains[new].users)
    assert users and not users & {"alice", "bob"}
    lan = topo.data.subnets["lan"].cidr
    assert lan != "10.0.0.0/24" and lan.startswith("10.")
    assert topo.data.subnets["wan"].cidr == "203.0.113.0/24", "public (documentation) ranges stay"
    scn = ann.apply(load_file(REPO / "scenarios" / "dmz.yaml").data)
    scn["topology"] = str(path)
    spath = tmp_path / "scn.yaml"
    spath.write_text(dump(scn, "ann's dmz"))
    s = load_scenario(spath)  # the scenario follows: its references still resolve
    send = next(st.params for st in s.steps if st.kind == "send")
    assert send.login.endswith("@" + new) and send.server == f"mail.{new}"


@pytest.mark.parametrize(
    "text,problem",
    [
        ("name\nann\n", "needs a 'student' column"),
        ("student\nann\nann\n", "already on line 2"),
        ("student\n../etc\n", "not a plain name"),
        ("student\nann; rm -rf /\n", "not a plain name"),
    ],
)
def test_bad_rosters(text: str, problem: str, tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text(text)
    _, problems = read_roster(p)
    assert any(problem in pr.message for pr in problems), problems
