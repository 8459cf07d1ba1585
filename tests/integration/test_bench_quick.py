"""The benchmark entry point works: ``bench/bench.py --quick`` measures every figure.

No timing is asserted here (this machine may be busy with other labs); only that every
figure, and the baseline measured beside it, is a number in the JSON, and that the
benchmark's labs and bare networks are gone afterwards.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

QUICK_FIGURES = {
    # figure: has a baseline measured beside it
    "ready_default": True,
    "teardown_default": True,
    "ready_star_10": True,
    "scenario_default": False,
    "scenario_star": False,
    "mail_submission_c1": True,
    "mail_submission_c4": True,
    "mail_submission_c16": True,
    "mail_relay_c4": True,
    "pcap_analysis": True,
    "ospf_ring4_convergence": False,
    "ospf_ring4_reroute": False,
    "ospf_ring4_reroute_unsettled": False,
    "peak_rss_labs": False,
    "peak_rss": False,
}


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _ours_left() -> list[str]:
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    left = [n for n in names if n.startswith("mlb")]
    if Path("/var/lib/mail-lab/prefixes/mlb").exists():
        left.append("claim mlb")
    return left


def test_bench_quick(tmp_path: Path) -> None:
    for cmd in ("tshark", "smtp-source", "vtysh"):
        if shutil.which(cmd) is None:
            pytest.skip(f"'{cmd}' is missing: run scripts/setup.sh")
    assert not _ours_left(), "a previous benchmark left its labs behind"
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert r.returncode == 0, f"bench.py --quick failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr[-4000:]}"
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["errors"] == {}
    figures = data["figures"]
    assert set(QUICK_FIGURES) <= set(figures), f"missing figures: {set(QUICK_FIGURES) - set(figures)}"
    for key, has_baseline in QUICK_FIGURES.items():
        f = figures[key]
        assert _number(f["median"]), f"{key}: median {f['median']!r}"
        assert f["values"] and all(_number(v) for v in f["values"]), f"{key}: values {f['values']!r}"
        if has_baseline:
            assert f["baseline"] is not None and _number(f["baseline"]["median"]), f"{key}: baseline {f['baseline']!r}"
            assert _number(f["ratio"]), f"{key}: ratio {f['ratio']!r}"
        if f["target"] is not None:
            assert f["met"] in (True, False), f"{key}: met {f['met']!r}"
    # the table names every figure
    for key in QUICK_FIGURES:
        assert figures[key]["label"] in r.stdout
    assert not _ours_left(), f"the benchmark left behind: {_ours_left()}"
