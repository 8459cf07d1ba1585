"""Issue 13: mail that can be trusted.  The authenticity, TLS-policy and attacks scenarios
pass on their campuses (test_scenarios runs every shipped scenario); here, what they
prove in detail, and their weakened companions failing step by step for the right reason."""

from __future__ import annotations

import json

from lab.model.scenario import load_scenario
from lab.scenario.runner import run_scenario

from .conftest import REPO

GOOD = REPO / "tests" / "data" / "good"


def run(scenario: str, tmp_path, topology: str | None = None):
    scn = load_scenario(REPO / "scenarios" / scenario, topology=GOOD / topology if topology else None)
    result, report = run_scenario(scn, tmp_path)
    summary = json.loads((report / "summary.json").read_text())
    return result, summary, {s.name: s for s in result.steps}


def closer(shipped, scenario: str):
    """The session's run of a shipped scenario (test_scenarios.py checks it passes)."""
    result, summary, _ = shipped(scenario)
    return result, summary, {s.name: s for s in result.steps}


def test_authenticity_fails_without_filtering(tmp_path, no_leaks):
    _, _, steps = run("authenticity.yaml", tmp_path, "dmz-unfiltered.yaml")
    why = {name: s.message for name, s in steps.items() if s.status == "failed"}
    assert why["projet.dz publishes who may send its mail (SPF)"].startswith("answers [], expected")
    assert why["the partner's DKIM key of this run is published"] == "rcode NXDOMAIN, expected NOERROR"
    for name in (
        "carol's server found SPF, DKIM and DMARC all pass for projet.dz",
        "the campus server found SPF, DKIM and DMARC all pass for partenaire.dz",
    ):
        assert "(it says: no such header)" in why[name], why[name]
    for name in (
        "a forged alice@projet.dz from the internet is refused: SPF and DKIM fail, DMARC says reject",
        "the GTUBE test spam is refused at SMTP time",
        "the EICAR test virus is refused at SMTP time (ClamAV, the lab's own signatures)",
        "a student cannot send the virus out either",
    ):
        assert why[name] == "expected the server to refuse with 554, but it accepted the message", (name, why[name])
    assert why["bob received only the signed message"] == "bob@projet.dz holds 4 message(s), expected 1"
    assert len(why) == 11, why
    # the mail itself still flows
    assert steps["alice writes to carol at the partner (signed by projet.dz)"].status == "passed"


def test_authenticity_details(shipped, no_leaks):
    result, _, steps = closer(shipped, "authenticity.yaml")
    report_dir = shipped("authenticity.yaml")[2]
    assert result.status == "passed", [(s.name, s.message) for s in result.steps if s.status != "passed"]
    assert "Gtube pattern" in steps["the GTUBE test spam is refused at SMTP time"].message
    assert (
        "Lab.Eicar.NDB.UNOFFICIAL"
        in steps["the EICAR test virus is refused at SMTP time (ClamAV, the lab's own signatures)"].message
    )
    report = (report_dir / "report.html").read_text()
    assert "rspamd: no action" in report and "DMARC pass, DKIM pass, SPF pass" in report  # the milter's verdict


def test_tls_policy_scanner_verdict(shipped, no_leaks):
    result, _, steps = closer(shipped, "tls-policy.yaml")
    assert result.status == "passed", [(s.name, s.message) for s in result.steps if s.status != "passed"]
    ports = steps["sslscan: the intermediate profile holds where TLS is required"].details["ports"]
    assert set(ports) == {"465", "587", "993", "995"}
    for port, v in ports.items():
        assert v["verdict"] == "holds" and v["protocols"] == ["TLSv1.2", "TLSv1.3"], (port, v)
        assert not [c for c in v["ciphers"] if "CBC" in c or "ADH" in c or c[-4:] == "-SHA"], v
    wide = steps["sslscan: port 25 is opportunistic (RFC 7672), wider than the profile"].details["ports"]["25"]
    assert any("anonymous" in x for x in wide["violations"]) and any("CBC" in x for x in wide["violations"])


def test_attacks_fail_against_the_weakened_campus(tmp_path, no_leaks):
    _, _, steps = run("attacks.yaml", tmp_path, "dmz-attacks-weak.yaml")
    why = {name: s.message for name, s in steps.items() if s.status == "failed"}
    # (a) no DNSSEC, no TLSA: the stripped message went in clear instead of being deferred
    assert why["DANE: the partner's TLSA record validates (DNSSEC, from the lab root's key)"] == (
        "rcode NXDOMAIN, expected NOERROR"
    )
    deferred = why["stripped: the campus server defers the message rather than send it in clear (DANE)"]
    assert deferred.startswith("never deferred") and "out of its queue (sent" in deferred, deferred
    assert "TLS is required, but was not offered" in why["stripped: the log says why (TLS required, not offered)"]
    clear = why["wire: no mail in clear"]
    assert clear.startswith("1 message(s) crossed in clear") and "'Behind the middlebox'" in clear, clear
    # (b) no fail2ban: every guess answered, the attacker never refused
    for name in (
        "password guessing on submission: fail2ban bans mallory after 3 failures",
        "password guessing on IMAP: fail2ban bans eve after 3 failures",
    ):
        assert why[name].startswith("all 6 guesses were answered") and "nothing stopped the guessing" in why[name]
    assert why["banned: mallory's connections to IMAPS are refused too (nftables rejects every port)"].startswith(
        "tcp/993 on mail (10.0.1.10) is open"
    )
    # (c) no DMARC: the forgery is accepted and lands in bob's mailbox
    assert why["forgery: evil claims to be alice@projet.dz; SPF and DKIM fail, DMARC rejects"] == (
        "expected the server to refuse with 554, but it accepted the message"
    )
    assert why["forgery: bob's mailbox holds nothing from the forger"] == "bob@projet.dz holds 1 message(s), expected 0"
    # (d) an open relay
    relays = [n for n in why if n.startswith("no relay:")]
    assert len(relays) == 7 and all(why[n].startswith("OPEN RELAY") for n in relays)
    assert len(why) == 16, why
    assert steps["a real user on the campus still logs in"].status == "passed"


def test_attacks_details(shipped, no_leaks):
    result, summary, steps = closer(shipped, "attacks.yaml")
    assert result.status == "passed", [(s.name, s.message) for s in result.steps if s.status != "passed"]
    ban = steps["password guessing on submission: fail2ban bans mallory after 3 failures"].details
    assert ban["banned"] == ["10.0.0.66"] and ban["rejected"] > 0, ban
    assert [t["outcome"] for t in ban["tries"]][:3] == ["refused"] * 3, ban["tries"]
    notes = " ".join(summary["notes"])
    assert "DANE not enabled on ext-mail" in notes  # the silent fallback, said out loud
