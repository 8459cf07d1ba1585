"""The pytest plugin, run as a user would run it: a real pytest in a subprocess."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO


def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_example_test_file_passes(no_leaks):
    r = pytest_run("examples/test_with_plugin.py")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "3 passed" in r.stdout


def test_scenario_steps_are_test_items(no_leaks):
    r = pytest_run("--lab-scenarios", "scenarios/star.yaml")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "13 passed" in r.stdout  # 9 steps, the accounting, 3 wire checks
    assert "PASSED scenarios/star.yaml::03 alice submits a message to bob" in r.stdout


def test_a_failing_wire_check_is_a_failed_item(no_leaks, tmp_path):
    r = pytest_run("--lab-scenarios", "tests/data/good/weak-auth.yaml", "--lab-reports", str(tmp_path))
    assert r.returncode == 1, r.stdout[-3000:]
    assert "2 failed, 3 passed" in r.stdout, r.stdout[-2000:]
    assert "FAILED tests/data/good/weak-auth.yaml::wire: no credentials in clear" in r.stdout
    assert "SMTP AUTH PLAIN" in r.stdout
    assert (tmp_path / "weak-auth" / "pcap").is_dir()


def test_lab_topology_grades_scenario_items_as_lab_run_does(no_leaks, tmp_path):
    """A broken student topology fails the same items under the plugin as steps under `lab run`."""
    import json

    student = "tests/data/good/star-no-tls.yaml"
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab.cli",
            "run",
            "scenarios/star.yaml",
            "--topology",
            student,
            "--reports",
            str(tmp_path / "run"),
            "-q",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 1, ran.stdout[-2000:] + ran.stderr[-2000:]
    summary = json.loads(next((tmp_path / "run").glob("*/summary.json")).read_text())
    failed_steps = sorted(s["name"] for s in summary["steps"] if s["status"] != "passed" and s["kind"] != "wire")
    assert failed_steps, "the broken topology must fail some steps"
    r = pytest_run(
        "--lab-scenarios",
        "scenarios/star.yaml",
        "--lab-topology",
        student,
        "--lab-reports",
        str(tmp_path / "plugin"),
        "--junitxml",
        str(tmp_path / "junit.xml"),
    )
    assert r.returncode == 1, r.stdout[-3000:]
    failed_items = sorted(
        line.split("::", 1)[1].split(" - ")[0].split(" ", 1)[1]
        for line in r.stdout.splitlines()
        if line.startswith("FAILED scenarios/star.yaml::") and "::wire:" not in line
    )
    assert failed_items == failed_steps
    assert "STARTTLS" in r.stdout
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="00 pc1: dns MX projet.dz"' in junit, "step names stay readable as test ids"
