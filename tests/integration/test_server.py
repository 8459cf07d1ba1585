"""The thesis's server, whole (issue 12): Roundcube in a real browser, ACME certificates,
SSH administration, meetings; and the teaching variants clients must refuse."""

from __future__ import annotations

import json

from lab.model.scenario import load_scenario
from lab.scenario.runner import run_scenario

from .conftest import REPO


def run(path, tmp_path, topology=None):
    result, report = run_scenario(load_scenario(path, topology), tmp_path)
    return result, json.loads((report / "summary.json").read_text()), report


def step(summary, needle):
    found = [s for s in summary["steps"] if needle in s["name"]]
    assert found, (needle, [s["name"] for s in summary["steps"]])
    return found[0]


def test_seed_walks_chapter_three(shipped, no_leaks):
    result, summary, report = shipped("seed.yaml")
    bad = [(s.index, s.name, s.message) for s in result.steps if s.status != "passed"]
    assert result.status == "passed", bad
    # every component of the thesis's server is named in the summary
    for name in ("roundcube", "pebble", "certbot", "ssh", "radicale"):
        assert summary["environment"].get(name), (name, summary["environment"])
    # the browser steps kept a screenshot of every stage, in the report, as PNG
    sent = step(summary, "alice logs into Roundcube")["details"]
    stages = [s["stage"] for s in sent["screenshots"]]
    assert stages[:2] == ["login-page", "inbox"] and "sent" in stages and stages[-1] == "logged-out", stages
    for shot in sent["screenshots"]:
        assert (report / shot["file"]).read_bytes().startswith(b"\x89PNG"), shot
    assert sent["http"]["status"] == 301 and sent["http"]["location"].startswith("https://mail.projet.dz/")
    html = (report / "report.html").read_text()
    assert sent["screenshots"][0]["file"] in html
    # SSH: the key works, a password is refused by sshd, the students' LAN is dropped by the firewall
    assert "status=sent" in step(summary, "reads the mail log over SSH")["details"]["output"]
    pw = step(summary, "administrator's password is refused")["details"]
    assert pw["result"] == "refused" and "Permission denied (publickey)" in pw["stderr"]
    lan = step(summary, "students' LAN cannot reach SSH")["details"]
    assert lan["result"] == "blocked" and "timed out" in lan["stderr"]
    # ACME: issued by Pebble, served on every TLS port
    issued = step(summary, "issued by the lab's ACME CA")["details"]
    assert "Pebble" in issued["certificate"]["issuer"] and set(issued["ports"]) == {443, 587, 993, 5232}
    # the meeting: bob accepted, and alice's calendar knows it
    assert step(summary, "alice@projet.dz's calendar")["details"]["event"]["attendees"] == {"bob@projet.dz": "ACCEPTED"}


def test_forced_renewal_puts_a_new_serial_on_every_port(shipped, no_leaks):
    result, summary, _ = shipped("acme.yaml")
    assert result.status == "passed", [(s.name, s.message) for s in result.steps if s.status != "passed"]
    renewed = step(summary, "forced renewal")["details"]
    old = {p: r["certificate"]["serial"] for p, r in renewed["before"].items()}
    new = {p: r["certificate"]["serial"] for p, r in renewed["after"].items()}
    assert len(set(new.values())) == 1 and not set(old.values()) & set(new.values()), (old, new)
    assert "Pebble" in renewed["certificate"]["issuer"]
    # the wire shows the new certificate's serial on 443 (TLS 1.3 read with the clients' key log)
    serials = {f.get("cert_serial") for f in summary["wire"]["tls"] if f["flow"].endswith(":443")}
    assert set(new.values()) <= serials, (new, serials)


def test_bad_certificates_are_refused_with_the_reason(shipped, no_leaks):
    result, summary, _ = shipped("certs.yaml")
    assert result.status == "passed", [(s.name, s.message) for s in result.steps if s.status != "passed"]
    reasons = {
        s["details"]["server"] + f":{s['details']['port']}": s["details"]
        for s in summary["steps"]
        if s["kind"] == "tls"
    }
    assert reasons["web-old.projet.dz:443"]["verify_message"] == "certificate has expired"
    assert "Hostname mismatch" in reasons["web-name.projet.dz:443"]["verify_message"]
    assert reasons["mail.projet.dz:993"]["verify_message"] == "self-signed certificate"
    assert reasons["mail.projet.dz:587"]["reason"] == "self-signed"
    # the certificate presented is in the report
    assert reasons["web-name.projet.dz:443"]["certificate"]["san"] == ["www.wrong-web-name.invalid"]
    browser = [s["details"]["error"] for s in summary["steps"] if s["kind"] == "webmail"]
    assert browser == ["NET::ERR_CERT_DATE_INVALID", "NET::ERR_CERT_COMMON_NAME_INVALID"]


def test_ssh_open_to_the_students_lan_is_caught(tmp_path, no_leaks):
    """The broken worksheet variant: the firewall lets the LAN reach port 22."""
    result, summary, _ = run(REPO / "scenarios" / "seed.yaml", tmp_path, REPO / "docs" / "labs" / "broken" / "ssh.yaml")
    lan = step(summary, "students' LAN cannot reach SSH")
    assert lan["status"] == "failed" and lan["details"]["result"] in ("ok", "refused"), lan
    others = [s for s in result.steps if s.status != "passed" and "students' LAN" not in s.name]
    assert not others, [(s.name, s.message) for s in others]


def test_roundcube_on_its_own_node(tmp_path, no_leaks):
    result, summary, _ = run(REPO / "tests" / "data" / "good" / "webmail-node-scenario.yaml", tmp_path)
    assert result.status == "passed", [(s.name, s.message) for s in result.steps if s.status != "passed"]
    sent = summary["steps"][0]["details"]
    assert sent["http"]["location"].startswith("https://webmail.projet.dz/")
    # a wrong webmail password fails visibly: Roundcube's own message and its screenshot
    wrong = step(summary, "wrong password")["details"]
    assert wrong["stage"] == "login" and "Login failed" in wrong["error"]
    assert wrong["screenshots"][-1]["stage"] == "login-refused"
    # Roundcube (on 10.0.0.11) logged into IMAPS and submitted on 587 at the mail node for alice
    flows = {f["flow"].split(" > ")[1] for f in summary["wire"]["tls"] if " 10.0.0.11:" in f["flow"]}
    assert {"10.0.0.10:993", "10.0.0.10:587"} <= flows, flows
