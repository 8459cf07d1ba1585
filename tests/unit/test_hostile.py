"""The hostile-input corpus (tests/data/hostile/): every case refused with its golden error.

Each case is a file a careless or hostile student could hand the lab (YAML tricks,
sizes, encodings, address plans, routing, firewall policy, proxies, VPNs, link delays,
aliases, scenarios, injections; see tests/data/hostile/make.py).  The loader must raise InputError with the exact located
problems of ``CASE.expected``; the CLI must refuse each with exit 2, no traceback, and
build nothing, in a process limited to 4 GiB of memory (a hang or a blow-up fails too).
``UPDATE_GOLDEN=1`` rewrites the goldens from the current output.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from lab.errors import InputError
from lab.model.load import load_topology
from lab.model.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]
HOSTILE = REPO / "tests" / "data" / "hostile"
sys.path.insert(0, str(HOSTILE))
import make  # noqa: E402  (the corpus definitions)

CASES = sorted(make.CASES)
BIG = sorted(make.BIG)
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
#: problems that are about the file as a whole (it has no line to point at)
FILE_LEVEL = ("is not a regular file", "is a directory", "no such file", "bytes; the lab reads files")
MEMORY = 4 * 1024**3


def is_scenario(name: str) -> bool:
    return name.startswith("scen-") or name.endswith("-in-scenario")


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def refused(path: Path, scenario: bool) -> InputError:
    with pytest.raises(InputError) as info:
        (load_scenario if scenario else load_topology)(rel(path))
    return info.value


def normalise(text: str, tmp: Path | None = None) -> str:
    text = text.replace(str(REPO), "<repo>")
    return text.replace(str(tmp), "<tmp>") if tmp else text


#: the corpus' groups (tests/data/hostile/make.py says what each holds)
GROUPS = {"yaml", "size", "enc", "addr", "route", "fw", "proxy", "vpn", "link", "alias", "sts", "scen", "inj"}


def test_corpus_is_broad_and_written() -> None:
    assert len(CASES) + len(BIG) >= 100
    groups = {c.split("-")[0] for c in CASES + BIG}
    assert groups == GROUPS
    written = {p.stem for p in HOSTILE.glob("*.yaml")}
    assert written == set(CASES), "run: python tests/data/hostile/make.py"
    for name, body in make.CASES.items():
        data = body if isinstance(body, bytes) else body.encode()
        assert (HOSTILE / f"{name}.yaml").read_bytes() == data, f"{name}: run tests/data/hostile/make.py"
    assert len(make.INJECTIONS) >= 20


@pytest.mark.parametrize("case", CASES)
def test_refused_with_its_golden(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    err = refused(HOSTILE / f"{case}.yaml", is_scenario(case))
    got = normalise(str(err))
    golden = HOSTILE / f"{case}.expected"
    if UPDATE:
        golden.write_text(got + "\n")
    assert got == golden.read_text().rstrip("\n")
    for p in err.problems:
        assert p.line is not None or any(s in p.message for s in FILE_LEVEL), str(p)
        assert "\n" not in str(p).split("\n  hint: ")[0], f"a problem is one line: {p}"


@pytest.mark.parametrize("case", BIG)
def test_big_cases(case: str, tmp_path: Path) -> None:
    err = refused(make.big(case, tmp_path), False)
    got = normalise(str(err), tmp_path)
    golden = HOSTILE / f"{case}.expected"
    if UPDATE:
        golden.write_text(got + "\n")
    assert got == golden.read_text().rstrip("\n")


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def test_validate_refuses_the_whole_corpus_in_4_gib(tmp_path: Path) -> None:
    """One `lab validate` over every case: exit 2, only located problems, no traceback, no hang."""
    files = [rel(HOSTILE / f"{c}.yaml") for c in CASES] + [str(make.big(c, tmp_path)) for c in BIG]
    state = tmp_path / "state"
    r = subprocess.run(
        [sys.executable, "-m", "lab.cli", "validate", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limited,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "MAIL_LAB_STATE": str(state)},
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stdout == "" and "Traceback" not in r.stderr and "internal error" not in r.stderr
    for c in CASES:
        first = (HOSTILE / f"{c}.expected").read_text().splitlines()[0]
        assert first in normalise(r.stderr), c
    assert not state.exists()


@pytest.mark.parametrize("case", make.INJECTIONS)
def test_run_refuses_injections_before_anything_is_built(case: str, tmp_path: Path) -> None:
    """`lab run` on a hostile topology (or scenario): exit 2, the golden, no report, no state.
    As root this is the real thing: validation must stop it before any daemon runs
    (tests/integration/test_hostile_run.py also watches the marker file)."""
    path = rel(HOSTILE / f"{case}.yaml")
    args = ["run", path] if is_scenario(case) else ["run", "tests/data/good/scenario.yaml", "--topology", path]
    state, reports = tmp_path / "state", tmp_path / "reports"
    reports.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "lab.cli", *args, "--reports", str(reports), "--prefix", "mlh9", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "MAIL_LAB_STATE": str(state)},
    )
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    first = (HOSTILE / f"{case}.expected").read_text().splitlines()[0]
    assert first in normalise(r.stderr).replace("<repo>/", ""), r.stderr
    assert "Traceback" not in r.stderr
    assert list(reports.iterdir()) == [] and not state.exists()
