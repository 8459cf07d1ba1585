"""Issue 6: security checks fail against a weakened server, the harness survives
SIGKILL at random points, daemons that never answer are named, and no packet of
a lab reaches the machine's real interfaces."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest

from lab.model.scenario import load_scenario
from lab.scenario.runner import run_scenario

from .conftest import REPO, footprint

LAB = [sys.executable, "-m", "lab.cli"]


def test_security_scenario_fails_against_a_weakened_campus(tmp_path, no_leaks):
    scn = load_scenario(
        REPO / "scenarios" / "security.yaml", topology=REPO / "tests" / "data" / "good" / "dmz-weak.yaml"
    )
    result, _ = run_scenario(scn, tmp_path)
    status = {s.name: s.status for s in result.steps}
    must_fail = [name for name in status if name.startswith("no relay:")] + [
        "submission offers STARTTLS and no AUTH before it",
        "no login in clear on IMAP 143",
        "no login in clear on POP3 110",
        "alice cannot send as bob",
        "an unknown recipient is refused at RCPT, not bounced later",
        "firewall matrix of fw on tcp/25, tcp/587, tcp/993, tcp/22, udp/53",
    ]
    assert len(must_fail) == 13
    assert {n: status[n] for n in must_fail} == {n: "failed" for n in must_fail}
    relay = next(s for s in result.steps if s.name == "no relay: the percent hack")
    assert relay.message.startswith("OPEN RELAY")
    # what the weakening did not touch still passes
    assert status["a wrong password gets 535"] == "passed"
    assert status["an authenticated student may relay to another domain"] == "passed"


def test_sigkill_at_random_points_then_clean_leaves_nothing(tmp_path):
    """20 runs killed with SIGKILL somewhere between start and teardown."""
    before = footprint()
    rng = random.Random(20261129)
    leftovers_seen = 0
    killed_processes = 0
    for i in range(20):
        proc = subprocess.Popen(
            [*LAB, "run", "scenarios/star.yaml", "--reports", str(tmp_path), "-q"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if footprint() != before:
            leftovers_seen += 1
        r = subprocess.run([*LAB, "clean"], cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        if "process(es)" in r.stdout:
            killed_processes += int(r.stdout.split(": ")[1].split()[0])
        after = footprint()
        assert after == before, f"kill #{i}: 'lab clean' left {after}"
    print(
        f"\n20 SIGKILLs: {leftovers_seen} left something, 'lab clean' removed {killed_processes} processes; "
        f"afterwards 0 namespaces, links, mounts, processes or claims of the lab remained"
    )
    assert leftovers_seen >= 10, "most kills should have left something for 'lab clean'"


def test_a_daemon_that_never_answers_is_named_with_its_log(tmp_path, no_leaks, monkeypatch):
    from lab.deploy.lab import Lab
    from lab.errors import ServiceError
    from lab.model.load import load_topology
    from lab.model.plan import make_plan
    from lab.services.dns import Bind

    real_render = Bind.render

    def loopback_only(self):  # named starts, but listens where nobody asks
        real_render(self)
        conf = self.home / "named.conf"
        conf.write_text(
            conf.read_text().replace(
                f"listen-on port 53 {{ {self.node.ip}; 127.0.0.1; }}", "listen-on port 53 { 127.0.0.1; }"
            )
        )

    monkeypatch.setattr(Bind, "render", loopback_only)
    monkeypatch.setattr(Bind, "ready_timeout", 2.0)
    lab = Lab(make_plan(load_topology(REPO / "topologies" / "star.yaml")))
    try:
        with pytest.raises(ServiceError) as info:
            lab.up()
    finally:
        lab.down()
    text = str(info.value)
    assert text.startswith("dns: named: did not answer a DNS query for projet.dz within 2 s"), text
    assert "named.log" in text or "early.log" in text, text


def test_no_lab_packet_reaches_the_real_interfaces(tmp_path, no_leaks):
    """tcpdump on every interface of the root namespace that is not the lab's, during
    a DMZ run: not one packet to or from a lab address."""
    # every lab's links are veth pairs and Linux bridges (this lab's, and those of other
    # labs on a shared machine, whatever their name stem): the real interfaces are the rest
    links = subprocess.run(["ip", "-d", "-j", "link", "show"], capture_output=True, text=True).stdout
    real = [
        x["ifname"]
        for x in json.loads(links)
        if x["ifname"] != "lo"
        and x.get("linkinfo", {}).get("info_kind") not in ("veth", "bridge")
        and "UP" in x.get("flags", [])
    ]
    if not real:
        pytest.skip("this machine has no real interface up")
    lab_nets = "net 10.0.0.0/8 or net 203.0.113.0/24 or net 198.51.100.0/24"
    procs = []
    for ifname in real:
        p = subprocess.Popen(
            ["tcpdump", "-i", ifname, "-n", "-l", "--immediate-mode", lab_nets],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert p.stderr is not None
        first = p.stderr.readline()
        assert "listening" in first or "listening" in p.stderr.readline(), first
        procs.append((ifname, p))
    try:
        result, _ = run_scenario(load_scenario(REPO / "scenarios" / "dmz.yaml"), tmp_path)
        assert result.status == "passed"
    finally:
        seen = {}
        for ifname, p in procs:
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=10)
            seen[ifname] = (out.strip().splitlines(), err)
    for ifname, (lines, err) in seen.items():
        assert lines == [], f"lab packets on {ifname}: {lines[:5]}"
        assert "0 packets captured" in err, (ifname, err)
