"""The thesis's server without root: step models, the credentials and SSH wire scans, the
teaching certificates, the firewall's inbound rules, the worksheets of issue 12."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from pydantic import ValidationError

from lab.capture.mailproto import scan_credentials
from lab.capture.sshproto import _side
from lab.model.load import load_topology
from lab.model.plan import make_plan
from lab.model.scenario import load_scenario
from lab.model.server_actions import Invite, Ssh
from lab.services.firewall import render_ruleset
from lab.services.pki import LabCA

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "topologies" / "seed.yaml"


def test_ssh_arguments_are_plain() -> None:
    Ssh.model_validate({"on": "pc", "to": "mail", "user": "admin", "command": ["tail", "-n", "5", "/var/log/x.log"]})
    for evil in ("a;b", "$(id)", "`id`", "a b", "x|y", "a&&b", "'q'", "", "a\nb", ">f"):
        with pytest.raises(ValidationError):
            Ssh.model_validate({"on": "pc", "to": "mail", "user": "admin", "command": ["echo", evil]})


def test_meeting_time_is_a_time() -> None:
    base = {"on": "pc1", "organizer": "a@b.dz", "attendees": ["c@b.dz"], "server": "m", "mail_server": "m"}
    Invite.model_validate({**base, "summary": "x", "start": "2026-12-15T10:00", "message": "m"})
    for bad in ("2026-13-01T10:00", "2026-12-15 10:00", "2026-12-15T24:00", "tomorrow"):
        with pytest.raises(ValidationError):
            Invite.model_validate({**base, "summary": "x", "start": bad, "message": "m"})


def test_http_passwords_in_clear_are_found() -> None:
    form = (
        b"POST /mail/?_task=login HTTP/1.1\r\nHost: m\r\n\r\n_token=x&_task=login&_user=alice%40projet.dz&_pass=s3cret"
    )
    (c,) = scan_credentials(form, "http")
    assert c.user == "alice%40projet.dz" and "_pass" in c.what and "s3cret" not in c.evidence
    basic = b"PROPFIND /alice/ HTTP/1.1\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n"
    (c,) = scan_credentials(basic, "http")
    assert c.user == "alice" and c.command == "Authorization: Basic"
    assert scan_credentials(b"GET /mail/ HTTP/1.1\r\nHost: m\r\n\r\n", "http") == []


def _packet(kind: int, body: bytes = b"") -> bytes:
    payload = bytes([kind]) + body
    pad = 8 - (len(payload) + 5) % 8 + 4
    return (len(payload) + pad + 1).to_bytes(4, "big") + bytes([pad]) + payload + b"\0" * pad


def test_ssh_side_finds_the_key_exchange() -> None:
    clear = b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n" + _packet(20, b"curve25519-sha256") + _packet(30) + _packet(21)
    side = _side(clear + b"\x8f\x01" * 40)
    assert side["banner"] == "SSH-2.0-OpenSSH_9.2p1 Debian"
    assert side["messages"] == [20, 30, 21] and side["newkeys_at"] == len(clear)
    assert _side(b"hello\r\n")["banner"] is None


@pytest.mark.parametrize(
    ("variant", "code"), [("expired", 10), ("wrong-name", 62), ("self-signed", 18), ("lab-ca", None)]
)
def test_teaching_certificates(tmp_path: Path, variant: str, code: int | None) -> None:
    ca = LabCA(tmp_path / "ca")
    issued = ca.issue("mail.projet.dz", [], [], tmp_path / variant, variant=variant)
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    now = dt.datetime.now(dt.UTC)
    assert (cert.not_valid_after_utc < now) == (variant == "expired")
    assert (cert.issuer == cert.subject) == (variant == "self-signed")
    # what a verifying client says, without a network: OpenSSL's own verification
    import subprocess

    r = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca.ca_file), "-verify_hostname", "mail.projet.dz", str(issued.cert)],
        capture_output=True,
        text=True,
    )
    assert (r.returncode == 0) == (code is None), r.stdout + r.stderr
    if code is not None:
        assert f"error {code} " in r.stdout + r.stderr


def test_ssh_only_from_the_admin_zone() -> None:
    plan = make_plan(load_topology(SEED))
    fw = plan.firewalls["fw"]
    assert fw.allows("adm", "srv", "tcp", 22) and not fw.allows("lan", "srv", "tcp", 22)
    assert fw.allows("lan", "srv", "tcp", 443) and fw.allows("lan", "srv", "tcp", 80)
    ruleset = render_ruleset(fw)
    inp = ruleset.split("chain input")[1].split("chain forward")[0]
    assert re.search(r'iifname @zone_adm tcp dport 22 counter accept comment "adm->firewall tcp/22"', inp)
    assert "zone_lan tcp dport 22" not in ruleset


def test_seed_plan_runs_the_thesis_components() -> None:
    from lab.services.registry import services_for

    plan = make_plan(load_topology(SEED))
    daemons = [c.daemon for c in services_for(plan.nodes["mail"], plan)]
    assert daemons == ["certbot", "postfix", "dovecot", "apache2", "radicale", "sshd"]
    assert [c.daemon for c in services_for(plan.nodes["ca"], plan)] == ["pebble"]
    assert [c.daemon for c in services_for(plan.nodes["fw"], plan)] == ["nftables", "sshd"]


LABS = ("webmail", "acme", "ssh", "calendar")
SECTIONS = ["## Objective", "## Run", "## Observe", "## Questions", "## Break and fix"]


@pytest.mark.parametrize("lab", LABS)
def test_worksheet(lab: str) -> None:
    text = (REPO / "docs" / "labs" / f"{lab}.md").read_text()
    assert text.startswith("# ") and "\nConcepts: " in text
    at = [text.index(s) for s in SECTIONS]
    assert at == sorted(at), "sections out of order"
    assert (REPO / "docs" / "labs" / "answers" / f"{lab}.md").exists()
    run = text.split("## Run")[1].split("```")[1]
    for line in run.splitlines():
        words = line.split("#")[0].split()
        for w in words:
            if w.endswith(".yaml"):
                assert (REPO / w).exists(), w
    entry = yaml.safe_load((REPO / "docs" / "labs" / "catalogue.yaml").read_text())["labs"][lab]
    load_topology(REPO / entry["topology"])
    load_scenario(REPO / entry["scenario"])
    assert entry["worksheet"] == f"docs/labs/{lab}.md"
    load_topology(REPO / entry["broken"])  # a broken variant is still a valid file


def test_report_embeds_the_browser_screenshots(tmp_path: Path) -> None:
    from lab.report.html import render_html

    from .test_report_html import Page, _fixture

    summary, plan, d = _fixture("star-fail", tmp_path)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    (d / "screenshots" / "01-pc1").mkdir(parents=True)
    for name in ("01-login-page.png", "02-login-refused.png"):
        (d / "screenshots" / "01-pc1" / name).write_bytes(png)
    shots = [
        {"stage": "login-page", "file": "screenshots/01-pc1/01-login-page.png"},
        {"stage": "login-refused", "file": "screenshots/01-pc1/02-login-refused.png"},
        {"stage": "outside", "file": "/etc/passwd"},
    ]
    bad = next(s for s in summary["steps"] if s["status"] == "failed")
    bad["details"] = {"screenshots": shots}
    page = Page(render_html(summary, plan, d))
    imgs = [el["attrs"]["src"] for el in page.find("img")]
    # embedded (the page stays self-contained), the failed step's last one shown large; a path outside the
    # report folder is never read
    assert imgs and all(src.startswith("data:image/png;base64,") for src in imgs)
    assert len(page.find("figure", class_="shot-failed")) == 1 and len(imgs) == 3
