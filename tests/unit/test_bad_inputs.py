"""The golden corpus: every malformed file in tests/data/bad/ gives its exact located error.

Each ``X.yaml`` has an ``X.expected`` holding what the loader reports.  Files are loaded
with paths relative to the repository root (as a user types them); absolute paths under
the repository are normalised to ``<repo>``.

The CLI half runs ``lab validate`` (once, over the whole corpus) and ``lab run`` (per
scenario file, plus a sample of topology files) as subprocesses, concurrently, and
checks exit code 2, the same located error, and that nothing was built: no report
directory entry and no state directory (``MAIL_LAB_STATE``) appear.  When the tests run
as root the subprocesses drop to uid/gid 65534 (``setpriv``), which shows that bad input
is refused before anything that needs root.

``UPDATE_GOLDEN=1`` rewrites the goldens from the current output (except KNOWN_BUGS).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.errors import InputError
from lab.model.load import load_topology
from lab.model.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "data" / "bad"
CASES = sorted(p.stem for p in BAD.glob("*.yaml"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

#: Cases whose golden holds the correct text the loader does not produce yet.
KNOWN_BUGS: dict[str, str] = {}
#: (command, case) pairs where the CLI, not the loader, is wrong.
CLI_BUGS: dict[tuple[str, str], str] = {}


def rel(case: str) -> str:
    return f"tests/data/bad/{case}.yaml"


def normalise(text: str) -> str:
    return text.replace(str(REPO), "<repo>")


def golden(case: str) -> str:
    return (BAD / f"{case}.expected").read_text().rstrip("\n")


def loader(case: str):  # type: ignore[no-untyped-def]
    return load_scenario if case.startswith("scen-") else load_topology


def marks(case: str, command: str | None = None) -> list[pytest.MarkDecorator]:
    reason = KNOWN_BUGS.get(case) or (CLI_BUGS.get((command, case)) if command else None)
    return [pytest.mark.xfail(reason=reason, strict=True)] if reason else []


def params(command: str | None = None) -> list[object]:
    return [pytest.param(c, id=c, marks=marks(c, command)) for c in CASES]


def test_corpus_is_complete() -> None:
    assert len(CASES) >= 30
    missing = [c for c in CASES if not (BAD / f"{c}.expected").exists()]
    stray = sorted(p.stem for p in BAD.glob("*.expected") if p.stem not in CASES)
    assert not missing and not stray, f"missing goldens {missing}, goldens without input {stray}"
    for c in CASES:
        assert c.split("-")[0] in ("yaml", "topo", "scen"), c
        text = (BAD / f"{c}.yaml").read_text()
        assert text == "" or text.startswith("# "), f"{c}: say what is wrong in a first-line comment"


@pytest.mark.parametrize("case", params())
def test_loader(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(InputError) as info:
        loader(case)(rel(case))
    got = normalise(str(info.value))
    if UPDATE and case not in KNOWN_BUGS:
        (BAD / f"{case}.expected").write_text(got + "\n")
    assert got == golden(case)
    # every problem is located: in this file (or the scenario's topology), with a line
    for p in info.value.problems:
        assert p.line is not None, str(p)


# --- the CLI, as subprocesses ----------------------------------------------------------


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    reports: Path
    state: Path


def _unprivileged() -> list[str]:
    """A command prefix that drops root, if we are root and can; else []."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return []
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import lab.cli"], cwd=REPO, capture_output=True, stdin=subprocess.DEVNULL
    )
    return prefix if probe.returncode == 0 else []


#: `lab run` takes a scenario; for topology files a few samples are enough (each run
#: is a subprocess of ~0.25 s and the suite must stay fast).
RUN_TOPOLOGY_SAMPLE = ("topo-not-a-mapping", "topo-duplicate-address", "topo-node-key-typo")
RUN_CASES = [c for c in CASES if not c.startswith("topo-") or c in RUN_TOPOLOGY_SAMPLE]


def _refuses(case: str) -> None:
    """Never hand `lab run` a file the loader accepts: as root it would build a lab."""
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(REPO)
            load_scenario(rel(case))
    except InputError:
        return
    raise AssertionError(f"{case}: load_scenario accepted it; refusing to run `lab run` on it")


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Ran]:
    """Run `lab validate` on the whole corpus (one process) and `lab run` on each of
    RUN_CASES, in parallel; the tests below only read the results."""
    prefix = _unprivileged()
    base = tmp_path_factory.mktemp("cli")
    jobs: list[tuple[tuple[str, str], list[str], Path, Path]] = []
    for case in RUN_CASES:
        _refuses(case)
        work = base / f"run-{case}"
        (work / "reports").mkdir(parents=True)
        args = [
            sys.executable,
            "-m",
            "lab.cli",
            "run",
            rel(case),
            "--reports",
            str(work / "reports"),
            "--prefix",
            "mlt9",
            "-q",
        ]
        jobs.append((("run", case), [*prefix, *args], work / "reports", work / "state"))
    work = base / "validate"
    (work / "reports").mkdir(parents=True)
    jobs.append(
        (
            ("validate", "*"),
            [*prefix, sys.executable, "-m", "lab.cli", "validate", *map(rel, CASES)],
            work / "reports",
            work / "state",
        )
    )

    def one(job: tuple[tuple[str, str], list[str], Path, Path]) -> tuple[tuple[str, str], Ran]:
        key, args, reports, state = job
        env = {**os.environ, "MAIL_LAB_STATE": str(state), "PYTHONDONTWRITEBYTECODE": "1"}
        r = subprocess.run(
            args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
        return key, Ran(r.returncode, r.stdout, r.stderr, reports, state)

    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 1) as pool:
        return dict(pool.map(one, jobs))


def nothing_built(ran: Ran) -> None:
    assert list(ran.reports.iterdir()) == [], "a report directory was created"
    assert not ran.state.exists(), "a state directory (prefix claim) was created"


def test_cli_validate_corpus(cli: dict[tuple[str, str], Ran]) -> None:
    """One `lab validate` over every bad file: exit 2, nothing on stdout, the goldens in order."""
    ran = cli[("validate", "*")]
    assert (ran.returncode, ran.stdout) == (2, "")
    err = "\n" + normalise(ran.stderr)
    at = [err.find("\n" + golden(c) + "\n") for c in CASES if ("validate", c) not in CLI_BUGS and c not in KNOWN_BUGS]
    assert -1 not in at and at == sorted(at)
    nothing_built(ran)


@pytest.mark.parametrize("case", params("validate"))
def test_cli_validate(case: str, cli: dict[tuple[str, str], Ran]) -> None:
    assert "\n" + golden(case) + "\n" in "\n" + normalise(cli[("validate", "*")].stderr)


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c, marks=[] if c.startswith("topo-") else marks(c, "run")) for c in RUN_CASES]
)
def test_cli_run(case: str, cli: dict[tuple[str, str], Ran]) -> None:
    ran = cli[("run", case)]
    assert (ran.returncode, ran.stdout) == (2, ""), ran.stderr
    err = normalise(ran.stderr)
    if case.startswith("topo-"):
        # `run` takes a scenario: a topology file is refused, located in that file
        assert err.startswith(f"lab: {rel(case)}:"), err
        assert "this is a topology, not a scenario" in err or "must be a mapping" in err, err
    else:
        assert err == "lab: " + golden(case) + "\n"
    nothing_built(ran)
