"""The proxy, VPN and WAN labs for real: the checks that must fail do fail.

- the direct-web check: on a campus whose firewall lets the lan out on the web ports
  (docs/labs/broken/proxy.yaml), the scenario's "direct web access fails" steps fail;
- the tunnel-down check: with the tunnels stopped, the private addresses are
  unreachable and the outside captures hold no inner address and no clear text;
- the delays are applied by a named mechanism and the round trips measured.
Timings are printed by the benchmarks, never asserted here.
"""

from __future__ import annotations

import json

from lab.model.scenario import load_scenario
from lab.scenario.runner import run_scenario

from .conftest import REPO


def run(path, tmp_path, topology=None):
    result, report = run_scenario(load_scenario(path, topology), tmp_path)
    return result, json.loads((report / "summary.json").read_text())


def steps(summary, needle):
    return [s for s in summary["steps"] if needle in s["name"]]


def test_direct_web_access_check_fails_when_the_firewall_lets_it_through(tmp_path, no_leaks):
    result, summary = run(REPO / "scenarios" / "proxy.yaml", tmp_path, REPO / "docs" / "labs" / "broken" / "proxy.yaml")
    direct = [s for s in summary["steps"] if s["name"].startswith("direct")]
    assert direct and all(s["status"] == "failed" for s in direct), [(s["name"], s["message"]) for s in direct]
    assert all(s["details"]["outcome"] == "ok" for s in direct)  # the page loaded: that is the failure
    # everything through the proxy still works
    proxied = [s for s in summary["steps"] if s["kind"] == "http" and not s["name"].startswith("direct")]
    assert all(s["status"] == "passed" for s in proxied), [(s["name"], s["message"]) for s in proxied]
    assert result.status == "failed"


def test_proxy_log_and_two_connections(shipped, no_leaks):
    result, summary, report = shipped("proxy.yaml")
    assert result.status == "passed", [(s["name"], s["message"]) for s in summary["steps"] if s["status"] != "passed"]
    wire = steps(summary, "two connections")[0]["details"]
    assert wire["client_to_proxy"] and wire["proxy_to_server"] and not wire["direct"]
    log = next(a for a in summary["artefacts"] if a["daemon"] == "squid" and a["path"].endswith("access.log"))
    text = (report / log["path"]).read_text()
    assert "TCP_TUNNEL/200 " in text and "TCP_DENIED/403 " in text and "TCP_MISS/200 " in text
    html = (report / "report.html").read_text()
    assert 'id="proxy"' in html and "TCP_TUNNEL" in html


def test_tunnels_down_nothing_leaks(shipped, no_leaks):
    result, summary, _ = shipped("vpn.yaml")
    assert result.status == "passed", [(s["name"], s["message"]) for s in summary["steps"] if s["status"] != "passed"]
    down = steps(summary, "tunnel down")
    assert len(down) == 3 and all(s["status"] == "passed" for s in down)
    for check in steps(summary, "hides its traffic"):
        d = check["details"]
        assert d["leaks"] == [] and d["clear"] == [] and d["tunnel"] and d["inside"], d
    # the stop steps ran before the last packets: the outside links were captured with the tunnels down too
    assert any(c["link"].endswith("-vpn0") for c in summary["captures"])


def test_wan_delays_by_a_named_mechanism(shipped, no_leaks):
    result, summary, _ = shipped("wan.yaml")
    rtts = [s for s in summary["steps"] if s["kind"] == "rtt"]
    assert len(rtts) == 3 and all(s["status"] == "passed" for s in rtts), [s["message"] for s in rtts]
    assert {s["details"]["expected_ms"] for s in rtts} == {6.0, 20.0, 80.0}
    assert all(r.get("delay_by") for r in summary["impairments"] if r["delay"])
    timings = summary["wire"]["timings"]
    assert timings and all(t["rtt_ms"] is not None for t in timings)
    assert result.status == "passed"
