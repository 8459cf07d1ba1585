"""The pytest plugin, run as a user would run it: a real pytest in a subprocess."""
from __future__ import annotations

import subprocess
import sys

from .conftest import REPO


def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_example_test_file_passes(no_leaks):
    r = pytest_run("examples/test_with_plugin.py")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "3 passed" in r.stdout


def test_scenario_steps_are_test_items(no_leaks):
    r = pytest_run("--lab-scenarios", "scenarios/star.yaml")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "12 passed" in r.stdout
    assert "PASSED scenarios/star.yaml::03 alice submits a message to bob" in r.stdout


def test_a_failing_wire_check_is_a_failed_item(no_leaks, tmp_path):
    r = pytest_run("--lab-scenarios", "tests/data/good/weak-auth.yaml", "--lab-reports", str(tmp_path))
    assert r.returncode == 1, r.stdout[-3000:]
    assert "2 failed, 2 passed" in r.stdout, r.stdout[-2000:]
    assert "FAILED tests/data/good/weak-auth.yaml::wire: credentials" in r.stdout
    assert "SMTP AUTH PLAIN" in r.stdout
    assert (tmp_path / "weak-auth" / "pcap").is_dir()
