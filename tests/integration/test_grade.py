"""`lab grade` on a class of three: the reference campus, a weakened one, a hostile one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

MARKER = Path("/tmp/mail-lab-hostile-marker")


def make_class(root: Path) -> Path:
    subs = root / "submissions"
    for name in ("reference", "weakened", "hostile"):
        (subs / name).mkdir(parents=True)
    (subs / "reference" / "topology.yaml").write_text((REPO / "topologies" / "dmz.yaml").read_text())
    (subs / "weakened" / "topology.yaml").write_text((REPO / "tests" / "data" / "good" / "dmz-weak.yaml").read_text())
    hostile = (
        (REPO / "topologies" / "dmz.yaml")
        .read_text()
        .replace(
            "  mail:     {role: mail, address: 10.0.1.10}",
            "  mail:\n    role: mail\n    address: 10.0.1.10\n    config:\n      dovecot:\n"
            f'        ssl: "yes\\nservice x {{\\n  executable = /bin/touch {MARKER}\\n}}"',
        )
    )
    (subs / "hostile" / "topology.yaml").write_text(hostile)
    return subs


def grade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", "grade", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
        env={**os.environ},
    )


def test_a_class_of_three(tmp_path, no_leaks):
    MARKER.unlink(missing_ok=True)
    subs, out = make_class(tmp_path), tmp_path / "grades"
    r = grade(str(subs), "--rubric", "rubrics/dmz.yaml", "--out", str(out), "--jobs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    cls = json.loads((out / "class.json").read_text())
    ranked = [(g["student"], g["score"], g["status"]) for g in cls["students"]]
    assert [s for s, _, _ in ranked] == ["reference", "weakened", "hostile"], ranked
    assert ranked[0][1] == cls["max"] and 0 < ranked[1][1] < ranked[0][1]
    assert ranked[2][1:] == (0.0, "refused")
    hostile = json.loads((out / "hostile" / "grade.json").read_text())
    assert "does not validate" in hostile["reason"] and "line break" in hostile["reason"]
    assert not (out / "hostile" / "runs").exists(), "a refused submission never runs"
    assert not MARKER.exists()
    weak = json.loads((out / "weakened" / "grade.json").read_text())
    lost = {c["id"] for c in weak["checks"] if not c["passed"]}
    assert {"no-open-relay", "submission-tls-first", "no-plaintext-logins", "no-spoofing"} <= lost
    assert weak["groups"]["tls-on-submission"] is False
    hints = {c["id"]: c["hint"] for c in weak["checks"]}
    assert "mynetworks" in hints["no-open-relay"]
    for f in ("class.csv", "class.html"):
        assert (out / f).is_file()
    assert (out / "weakened" / "submission" / "topology.yaml").read_text() == (
        subs / "weakened" / "topology.yaml"
    ).read_text()
    assert "mynetworks: 0.0.0.0/0" in (out / "weakened" / "diff.txt").read_text()
    assert "<failure" in (out / "weakened" / "junit.xml").read_text()
    html = (out / "class.html").read_text()
    assert "reject_sender_login_mismatch" in html and "most common failures" in html

    # an interrupted or repeated grading keeps what was graded: nothing runs again
    runs = sorted(p.name for p in out.glob("*/runs/*/*"))
    again = grade(str(subs), "--rubric", "rubrics/dmz.yaml", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "weakened: graded before" in again.stderr
    assert sorted(p.name for p in out.glob("*/runs/*/*")) == runs, "no scenario ran again"


def test_shards_merge_into_one_class(tmp_path, no_leaks):
    subs = make_class(tmp_path)
    (subs / "weakened").rename(tmp_path / "weakened-aside")  # keep it short: reference + hostile
    for k in (1, 2):
        r = grade(
            str(subs), "--rubric", "rubrics/dmz.yaml", "--out", str(tmp_path / f"s{k}"), "--shard", f"{k}/2", "-q"
        )
        assert r.returncode == 0, r.stderr[-2000:]
    r = grade(
        "merge",
        str(tmp_path / "s1"),
        str(tmp_path / "s2"),
        "--rubric",
        "rubrics/dmz.yaml",
        "--out",
        str(tmp_path / "all"),
        "-q",
    )
    assert r.returncode == 0, r.stderr
    cls = json.loads((tmp_path / "all" / "class.json").read_text())
    assert [g["student"] for g in cls["students"]] == ["reference", "hostile"]
