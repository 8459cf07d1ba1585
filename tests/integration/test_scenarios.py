"""Every shipped scenario builds its topology, passes every step and wire check, and
leaves nothing behind; the negative scenarios fail for the right reason."""

from __future__ import annotations

import json

import pytest

from lab.model.scenario import load_scenario
from lab.scenario.runner import run_scenario

from .conftest import REPO

SHIPPED = sorted(p.name for p in (REPO / "scenarios").glob("*.yaml"))


def run(path, tmp_path):
    result, report = run_scenario(load_scenario(path), tmp_path)
    return result, json.loads((report / "summary.json").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_passes(name, shipped, no_leaks):
    result, summary, _ = shipped(name)
    bad = [(s.index, s.name, s.message) for s in result.steps if s.status != "passed"]
    assert not result.error and not bad, (result.error, bad)
    for c in summary["captures"]:
        assert c["dropped"] == 0, c


def by_name(summary, needle):
    return [s for s in summary["steps"] if needle in s["name"]]


def test_dmz_details(shipped, no_leaks):
    """The DMZ campus: firewall matrix both ways, NAT seen on the wire, mail both ways."""
    result, summary, _ = shipped("dmz.yaml")
    assert result.status == "passed", [(s.name, s.message) for s in result.steps if s.status != "passed"]
    probes = {
        (s["details"]["target"], s["details"]["port"]): s["details"]["state"]
        for s in summary["steps"]
        if s["kind"] == "probe"
    }
    assert probes[("10.0.1.10", 587)] == "open"  # lan -> dmz submission: allowed
    assert probes[("10.0.1.10", 22)] == "filtered"  # lan -> dmz ssh: denied
    assert probes[("203.0.113.2", 25)] == "open"  # the port forward
    nat = by_name(summary, "NAT on fw")[0]
    mapping = nat["details"]["mapping"]
    assert any(v.startswith("203.0.113.2:") for v in mapping.values()), mapping  # the outside saw the fw
    # the relay from the dmz to the partner left masqueraded behind the firewall's address
    relay = by_name(summary, "path mail -> ext-mail")[0]["details"]
    outside = [e for e in relay["links"] if e["link"] in ("inet-s3", "ext-mail-s4")]
    assert outside and all(e["flow"].startswith("tcp 203.0.113.2:") for e in outside), outside
    assert relay["routers_crossed"] == 2


def test_weakened_server_leaks_the_password_and_the_wire_says_so(tmp_path, no_leaks):
    result, summary = run(REPO / "tests" / "data" / "good" / "weak-auth.yaml", tmp_path)
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["wire: no credentials in clear"]["status"] == "failed"
    finding = steps["wire: no credentials in clear"]["details"]["findings"][0]
    assert finding["protocol"] == "smtp" and finding["user"] == "alice@projet.dz", finding
    assert isinstance(finding["packet"], int) and finding["link"] in ("pc1-s1", "mail-s1")
    assert "587" in finding["flow"]
    assert "alice-secret" not in json.dumps(summary), "the report must not repeat the password"
    assert steps["wire: TLS >= 1.2 on ports 587"]["status"] == "failed"
    assert result.status == "failed"


def test_relay_on_the_wrong_route_fails_the_path_check(tmp_path, no_leaks):
    _result, summary = run(REPO / "tests" / "data" / "good" / "ring-mail-path.yaml", tmp_path)
    mail_steps = [s for s in summary["steps"] if s["kind"] != "wire"]
    assert all(s["status"] == "passed" for s in mail_steps), "the mail itself must arrive"
    check = [s for s in summary["steps"] if s["kind"] == "wire"][0]
    assert check["status"] == "failed"
    assert check["details"]["subnets"] == ["lan1", "r4-r1", "r3-r4", "lan3"], check["details"]
    assert "expected lan1 -> r1-r2 -> r2-r3 -> lan3" in check["message"]
