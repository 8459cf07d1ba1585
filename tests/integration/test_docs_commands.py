"""Every command the README and the docs show, run as a reader would type it.

``lab`` is ``python -m lab.cli`` (what ``.venv/bin/lab`` runs), the reader's own files
(``my-ring.yaml``, ``student.yaml``, ``bad.yaml``) are copies of shipped topologies in a
temporary folder, and the commands on a running lab run on one ``lab up
topologies/dmz.yaml``, in the order the docs give them.  A plain ``lab run
scenarios/X.yaml`` is the command tests/integration/test_scenarios.py runs for every
shipped scenario: it is checked to be among them, not run twice.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.doccommands import DocCommand, commands

from .conftest import REPO
from .test_scenarios import SHIPPED

CMDS = commands()
LAB = [sys.executable, "-m", "lab.cli"]

#: what a command's run must show, where exit 0 alone would not say it worked
EXPECT: dict[str, tuple[int, str]] = {
    "lab exec pc1 -- ping -c1 -t 2 ext-pc.partenaire.dz": (1, "Time to live exceeded"),
    "lab exec pc1 -- ip route": (0, "default via 10.0.0.1"),
    "lab exec pc1 -- dig MX projet.dz": (0, "mail.projet.dz."),
    "lab exec pc1 -- dig +short MX projet.dz": (0, "10 mail.projet.dz."),
    "lab exec pc1 -- traceroute ext-pc.partenaire.dz": (0, "fw.projet.dz"),
    "lab exec fw -- nft list ruleset": (0, "table inet labfw"),
    "lab exec mail -- ss -ltn": (0, ":587"),
    "lab exec pc1 -- swaks --to bob@projet.dz": (0, "250 2.0.0 Ok: queued"),
    "lab exec ext-pc -- swaks --to bob@projet.dz": (0, "250 2.0.0 Ok: queued"),
    "lab exec pc2 -- s-nail -H": (0, "alice@projet.dz"),
    "lab exec fw -- tcpdump -ni eth2 -c 5 tcp port 25": (0, ".25:"),
    "lab list": (0, "campus-dmz"),
    "lab down": (0, "is down"),
    "lab exec mail -- doveadm search -u bob@projet.dz all": (0, ""),
    "lab exec pc1 -- openssl s_client -starttls smtp -connect mail.projet.dz:587 -CAfile /root/.lab-ca.pem": (
        0,
        "Verify return code: 0 (ok)",
    ),
}
#: what a command reads on its standard input (an interactive one, driven)
STDIN = {"lab exec pc1": "hostname\nexit\n", "lab cli": "net\nhelp\nexit\n", "lab exec pc2 -- s-nail": "h\nq\n"}


def _argv(cmd: DocCommand, files: dict[str, str], prefix: str | None = None) -> list[str]:
    argv = [files.get(w, w) for w in cmd.argv]
    if prefix:
        argv = [prefix if w == "ml1" and argv[k - 1] == "--lab" else w for k, w in enumerate(argv)]
    if argv[0] == "lab":
        return [*LAB, *argv[1:]]
    if argv[0] == "scripts/lab":
        return [str(REPO / "scripts" / "lab"), *argv[1:]]
    return argv


def _run(argv: list[str], stdin: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=REPO, input=stdin or "", capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )


@pytest.fixture
def readers_files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "my-ring.yaml").write_text((REPO / "topologies" / "ring-l3.yaml").read_text())
    (tmp_path / "student.yaml").write_text((REPO / "topologies" / "dmz.yaml").read_text())
    star = (REPO / "topologies" / "star.yaml").read_text()
    (tmp_path / "bad.yaml").write_text(star.replace("{a: pc1,  b: s1}", "{a: pc1,  b: s2}"))
    (tmp_path / "roster.csv").write_text("student\nalice\nbob\n")
    names = ("my-ring.yaml", "student.yaml", "bad.yaml", "roster.csv", "ring.svg", "variants/")
    return {n: str(tmp_path / n) for n in names}


def test_offline_commands(readers_files, no_leaks) -> None:
    for cmd in (c for c in CMDS if c.how == "offline"):
        r = _run(_argv(cmd, readers_files))
        if cmd.text == "lab validate bad.yaml":
            shown = _readme_output(cmd)
            assert r.returncode == 2, r.stderr
            assert r.stderr.replace(readers_files["bad.yaml"], "bad.yaml").strip() == shown, (r.stderr, shown)
            continue
        assert r.returncode == 0, (cmd.where, cmd.text, r.stdout[-2000:], r.stderr[-2000:])
    assert Path(readers_files["ring.svg"]).read_text().startswith("<svg")
    assert sorted(p.name for p in Path(readers_files["variants/"]).iterdir()) == ["alice", "bob", "variants.json"]


def _readme_output(cmd: DocCommand) -> str:
    """The lines the doc shows under ``$ <cmd>``, up to the block's end."""
    lines = (REPO / cmd.file).read_text().splitlines()[cmd.line :]
    return "\n".join(lines[: next(k for k, x in enumerate(lines) if x.startswith("```"))]).strip()


def test_run_commands(readers_files, tmp_path, no_leaks) -> None:
    ran = 0
    for cmd in (c for c in CMDS if c.how == "run"):
        argv = cmd.argv
        scenario = next((w for w in argv if w.startswith("scenarios/")), None)
        if "--topology" not in argv and scenario is not None:
            assert Path(scenario).name in SHIPPED, f"{cmd.where}: {scenario} is run by no test"
            continue
        if scenario is None and ran and "--topology" not in argv:
            continue  # the default lab again (scripts/lab run): ran once
        r = _run([*_argv(cmd, readers_files), "--reports", str(tmp_path / "reports"), "-q"])
        assert r.returncode == 0, (cmd.where, cmd.text, r.stdout[-3000:], r.stderr[-3000:])
        if "--json" in argv:
            assert json.loads(r.stdout)["status"] == "passed"
        ran += 1
    assert ran >= 3


def test_the_plugin_command(tmp_path, no_leaks) -> None:
    [cmd] = [c for c in CMDS if c.how == "plugin"]
    argv = [sys.executable, "-m", *cmd.argv, "-p", "no:cacheprovider", "-q", "--lab-reports", str(tmp_path)]
    r = _run(argv, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    assert re.search(r"\d+ passed", r.stdout)


def test_live_commands_on_the_running_lab(readers_files, no_leaks) -> None:
    live = [c for c in CMDS if c.how == "live"]
    [up] = [c for c in live if c.argv[1] == "up"]
    r = _run([*_argv(up, readers_files), "--json"])
    assert r.returncode == 0, r.stderr[-3000:]
    prefix = json.loads(r.stdout)["prefix"]
    downs = [c for c in live if c.argv[1] == "down"]
    try:
        _session([c for c in live if c.argv[1] not in ("up", "down")], readers_files, prefix)
    finally:
        r = _run(_argv(downs[0], readers_files, prefix) + ["--lab", prefix])
    assert r.returncode == 0 and "is down" in r.stdout, r.stderr


def _session(cmds: list[DocCommand], files: dict[str, str], prefix: str) -> None:
    background: subprocess.Popen[str] | None = None
    for cmd in cmds:
        argv = _argv(cmd, files, prefix)
        if "tcpdump" in cmd.argv:  # it waits for packets: the next command sends them
            background = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1.5)
            continue
        r = _run(argv, cmd.stdin or STDIN.get(cmd.text), timeout=60)
        rc, shows = EXPECT.get(cmd.text, (0, ""))
        assert r.returncode == rc and shows in r.stdout + r.stderr, (cmd.where, cmd.text, r.stdout[-2000:], r.stderr)
        if cmd.text == "lab exec pc1":
            assert r.stdout.strip().endswith("pc1"), r.stdout
        if background is not None:
            out, err = background.communicate(timeout=30)
            rc, shows = EXPECT["lab exec fw -- tcpdump -ni eth2 -c 5 tcp port 25"]
            assert background.returncode == rc and shows in out, (out, err)
            background = None
        if cmd.text.startswith("lab exec pc1 -- swaks") or cmd.text.startswith("echo "):
            time.sleep(1.5)  # delivered before the next command reads the inbox
