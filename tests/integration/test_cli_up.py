"""lab up / lab exec / lab down on every shipped topology, through the real command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO

LAB = [sys.executable, "-m", "lab.cli"]
TOPOLOGIES = sorted(p.name for p in (REPO / "topologies").glob("*.yaml"))


def lab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAB, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_up_exec_down(topology, no_leaks):
    r = lab("up", f"topologies/{topology}", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout)
    try:
        nodes = info["nodes"]
        src = next(n for n, v in nodes.items() if v["role"] in ("host", "mail", "dns"))
        # ping a node on the same subnet (routing may still be converging elsewhere)
        net = nodes[src]["addresses"][0].rsplit(".", 1)[0]
        dst, ip = next(
            (n, a) for n, v in nodes.items() if n != src for a in v["addresses"] if a.rsplit(".", 1)[0] == net
        )
        for _ in range(20):  # an STP ring forwards only once its ports have settled
            r = lab("exec", "--lab", info["prefix"], src, "--", "ping", "-c", "1", "-W", "1", ip)
            if r.returncode == 0:
                break
        assert r.returncode == 0, (src, dst, r.stdout, r.stderr)
        # the command really ran inside the node: it sees the node's own address
        r = lab("exec", "--lab", info["prefix"], src, "--", "ip", "-4", "-o", "addr", "show")
        assert nodes[src]["addresses"][0] in r.stdout, r.stdout
        listed = json.loads(lab("list", "--json").stdout)
        assert info["prefix"] in [x["prefix"] for x in listed]
    finally:
        r = lab("down", "--lab", info["prefix"])
    assert r.returncode == 0, r.stderr
    assert "is down" in r.stdout


def test_exec_on_an_unknown_node_says_which_exist(no_leaks):
    r = lab("up", "topologies/bus.yaml", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    try:
        r = lab("exec", "--lab", info["prefix"], "pc9", "--", "true")
        assert r.returncode == 3
        assert "no node 'pc9'" in r.stderr and "did you mean" in r.stderr
    finally:
        lab("down", "--lab", info["prefix"])


def test_up_with_a_bad_topology_builds_nothing(tmp_path, no_leaks):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "topologies" / "bus.yaml").read_text().replace("{a: pc4, b: bus}", "{a: pc4, b: buss}"))
    r = lab("up", str(bad))
    assert r.returncode == 2
    assert "links[3].b: unknown node 'buss'" in r.stderr
