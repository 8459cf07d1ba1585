"""The `lab` command: help texts, exit codes, `validate` on good and bad files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.cli import EXIT_CODES, main

REPO = Path(__file__).resolve().parents[2]
GOOD = ["topologies/star.yaml", "scenarios/star.yaml", "tests/data/good/lan.yaml", "tests/data/good/scenario.yaml"]


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["run", "--help"], ["validate", "--help"], ["clean", "--help"]],
    ids=["lab", "run", "validate", "clean"],
)
def test_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lab")
    if argv[0] in ("--help", "run"):
        assert EXIT_CODES in out  # the exit codes are documented where they matter
    if argv[0] == "--help":
        for command in ("run", "validate", "clean"):
            assert command in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == "mail-lab 0.1.0"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_validate_good_files(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate", *GOOD]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [
        "topologies/star.yaml: valid topology 'campus-star' (6 nodes, 5 links)",
        "scenarios/star.yaml: valid scenario 'star' (9 steps, topology campus-star)",
        "tests/data/good/lan.yaml: valid topology 'test-lan' (6 nodes, 5 links)",
        "tests/data/good/scenario.yaml: valid scenario 'test-scenario' (5 steps, topology test-lan)",
    ]


def test_validate_goes_on_after_a_bad_file(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate", "tests/data/bad/topo-bad-cidr.yaml", "topologies/star.yaml", "nope.yaml"]) == 2
    out, err = capsys.readouterr()
    assert out == "topologies/star.yaml: valid topology 'campus-star' (6 nodes, 5 links)\n"
    assert err.splitlines() == [
        "tests/data/bad/topo-bad-cidr.yaml:6:5: subnets.lan.cidr: '10.0.0/24' is not an IPv4 network in CIDR form",
        "  hint: write it as 10.0.0.0/24",
        "nope.yaml: no such file",
    ]


def test_run_with_bad_input_returns_2_before_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MAIL_LAB_STATE", str(tmp_path / "state"))
    (tmp_path / "reports").mkdir()
    assert main(["run", "tests/data/bad/scen-bad-port.yaml", "--reports", str(tmp_path / "reports")]) == 2
    assert capsys.readouterr().err.startswith("lab: tests/data/bad/scen-bad-port.yaml:5:45: steps[0].send.port:")
    assert list(tmp_path.iterdir()) == [tmp_path / "reports"]
    assert list((tmp_path / "reports").iterdir()) == []


@pytest.mark.parametrize("argv", [["--help"], ["validate", *GOOD]], ids=["help", "validate"])
def test_entry_points(argv: list[str]) -> None:
    """`python -m lab.cli` and the installed `lab` script behave like main()."""
    lab_script = Path(sys.executable).parent / "lab"
    commands = [[sys.executable, "-m", "lab.cli"]] + ([[str(lab_script)]] if lab_script.exists() else [])
    for cmd in commands:
        r = subprocess.run(
            [*cmd, *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        assert (r.returncode, r.stderr) == (0, ""), (cmd, r.stderr)
        assert r.stdout.startswith("usage: lab") if argv == ["--help"] else r.stdout.count(": valid ") == len(GOOD)


def test_validate_json_gives_located_problems() -> None:
    import json as _json
    import subprocess as _sp
    import sys as _sys

    repo = Path(__file__).resolve().parents[2]
    r = _sp.run(
        [
            _sys.executable,
            "-m",
            "lab.cli",
            "validate",
            "--json",
            "tests/data/bad/topo-link-unknown-node.yaml",
            "topologies/star.yaml",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    bad, good = _json.loads(r.stdout)
    assert good == {"file": "topologies/star.yaml", "valid": True, "kind": "topology", "problems": [], "overrides": []}
    (p,) = bad["problems"]
    assert (p["line"], p["column"], p["field"], p["message"]) == (24, 6, "links[5].a", "unknown node 'pc3'")
    assert p["hint"] == "did you mean 'pc2'?"
