"""The walking skeleton on a real lab: the default scenario, and the mail node's
security basics checked with real clients from real hosts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from lab.model import scenario as S
from lab.model.scenario import load_scenario
from lab.scenario.steps import ACTIONS

from .conftest import REPO, footprint

LAB = [sys.executable, "-m", "lab.cli"]


def test_default_scenario_passes_and_leaves_nothing(shipped, no_leaks):
    scn = load_scenario(REPO / "scenarios" / "star.yaml")
    result, _summary, report = shipped("star.yaml")
    failed = [(s.name, s.message) for s in result.steps if s.status != "passed"]
    assert result.error == "" and not failed, (result.error, failed)
    assert result.status == "passed"
    summary = json.loads((report / "summary.json").read_text())
    wire_checks = [x for x in summary["steps"] if x["kind"] == "wire"]
    assert len(wire_checks) == 3
    accounting = [x for x in summary["steps"] if x["kind"] == "accounting"]
    assert [a["message"] for a in accounting] == ["2 accepted, 2 delivered, 0 lost, 0 duplicated over 2 mailbox(es)"]
    assert summary["counts"]["passed"] == len(scn.steps) + len(wire_checks) + 1
    # every link was captured, nothing dropped, readable pcaps in the report
    assert {c["link"] for c in summary["captures"]} == {"dns-s1", "dhcp-s1", "mail-s1", "pc1-s1", "pc2-s1"}
    for c in summary["captures"]:
        assert c["dropped"] == 0 and c["packets"] > 0 and (report / c["file"]).stat().st_size > 24, c
    # the capture reports the TLS version and cipher the client itself negotiated
    send = next(x for x in summary["steps"] if x["kind"] == "send")
    client_port = None
    for f in summary["wire"]["tls"]:
        if f["flow"].endswith(":587") and f["link"] == "pc1-s1":
            client_port = f["flow"]
            assert f["mode"] == "starttls"
            assert f["version"] == send["details"]["tls_version"], (f, send["details"])
            assert f["cipher"] == send["details"]["cipher"], (f, send["details"])
            assert f["cert_subject"] == "CN=mail.projet.dz"
    assert client_port is not None, "the submission was not seen on pc1's link"
    assert summary["environment"]["postfix"].startswith("3.")
    cases = ET.parse(report / "junit.xml").getroot().findall(".//testcase")
    assert len(cases) == len(scn.steps) + len(wire_checks) + 1
    # rendered configs and daemon logs of every service are in the report
    for rel in (
        "nodes/mail/config/postfix/main.cf",
        "nodes/mail/config/dovecot/dovecot.conf",
        "nodes/dns/config/named/db.projet.dz",
        "nodes/dhcp/config/kea-dhcp4/kea-dhcp4.conf",
        "nodes/mail/logs/postfix.log",
        "nodes/mail/logs/dovecot.log",
        "nodes/dns/logs/named.log",
    ):
        assert (report / rel).is_file(), rel
    assert "status=sent (250 2.0.0" in (report / "nodes/mail/logs/postfix.log").read_text()
    leases = {le["node"]: le for le in summary["leases"]}
    assert set(leases) == {"pc1", "pc2"}
    assert summary["teardown"]["problems"] == []


def run(ctx, kind, **params):
    model = S.ACTIONS[kind].model_validate(params)
    return ACTIONS[kind](ctx, model)


def test_dhcp_clients_got_router_dns_and_a_working_resolver(ctx, star_lab):
    for host in ("pc1", "pc2"):
        lease = star_lab.dhclients[host].lease()
        assert lease["address"].startswith("10.0.0.") and 100 <= int(lease["address"].split(".")[-1]) <= 199
        assert lease["router"] == "10.0.0.1", lease
        assert lease["dns"] == "10.0.0.2", lease
        assert lease["search"] == "projet.dz", lease
        # resolution through the host's own /etc/resolv.conf (no server given)
        out = run(ctx, "dns", on=host, query="mail", type="A", expect=["10.0.0.10"])
        assert out.status == "passed", out.message
        assert out.details["nameservers"] == ["10.0.0.2"]
    addrs = {star_lab.dhclients[h].lease()["address"] for h in ("pc1", "pc2")}
    assert len(addrs) == 2, "two clients got the same address"


def test_mx_and_ptr_resolve(ctx):
    assert run(ctx, "dns", on="pc1", query="projet.dz", type="MX", expect=["10 mail.projet.dz."]).status == "passed"
    assert (
        run(ctx, "dns", on="pc1", query="10.0.0.10.in-addr.arpa", type="PTR", expect=["mail.projet.dz."]).status
        == "passed"
    )
    assert run(ctx, "dns", on="pc2", query="nosuch.projet.dz", rcode="NXDOMAIN").status == "passed"
    # a wrong expectation must fail: the check can fail
    assert run(ctx, "dns", on="pc1", query="projet.dz", type="MX", expect=["10 other.projet.dz."]).status == "failed"


def test_auth_is_not_offered_before_starttls_on_587(ctx):
    out = run(
        ctx,
        "send",
        on="pc1",
        server="mail.projet.dz",
        port=587,
        login="alice@projet.dz",
        to=["bob@projet.dz"],
        subject="auth check",
    )
    assert out.status == "passed", out.message
    assert "starttls" in out.details["ehlo_before_tls"]
    assert "auth" not in out.details["ehlo_before_tls"], out.details["ehlo_before_tls"]
    assert out.details["auth_before_tls"] == []
    assert set(out.details["auth_methods"]) >= {"PLAIN", "LOGIN"}
    assert out.details["tls_version"] in ("TLSv1.2", "TLSv1.3")


def test_wrong_password_gets_535_and_delivers_nothing(ctx, star_lab):
    store = ctx.mailbox_store("bob@projet.dz")
    # earlier tests' mail must be delivered before counting
    assert run(ctx, "wait_for", condition="queue_empty", node="mail", timeout=10).status == "passed"
    before = len(store.maildir_messages("bob@projet.dz"))
    out = run(
        ctx,
        "send",
        on="pc1",
        server="mail.projet.dz",
        login="alice@projet.dz",
        password="wrong",
        to=["bob@projet.dz"],
        subject="must not arrive",
        message="badpw",
        reject={"code": 535, "stage": "auth"},
    )
    assert out.status == "passed", out.message
    assert out.details["code"] == 535
    # the same send without the expectation is reported as a failure
    out = run(
        ctx,
        "send",
        on="pc1",
        server="mail.projet.dz",
        login="alice@projet.dz",
        password="wrong",
        to=["bob@projet.dz"],
        subject="must not arrive",
    )
    assert out.status == "failed" and "535" in out.message
    postfix = next(s for s in star_lab.services if s.daemon == "postfix")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # give a wrongly accepted message time to show up
        assert len(store.maildir_messages("bob@projet.dz")) == before
        assert postfix.queue() == []
        time.sleep(0.2)


def test_unknown_recipient_is_refused_at_rcpt(ctx):
    out = run(
        ctx,
        "send",
        on="pc2",
        server="mail.projet.dz",
        login="bob@projet.dz",
        to=["nobody@projet.dz"],
        reject={"code": 550, "stage": "rcpt"},
    )
    assert out.status == "passed", (out.message, out.details)


def test_port_25_is_not_an_open_relay(ctx):
    out = run(
        ctx,
        "send",
        on="pc2",
        server="mail.projet.dz",
        port=25,
        tls="starttls",
        **{"from": "someone@elsewhere.example"},
        to=["victim@foreign.example"],
        reject={"code": 554, "stage": "rcpt"},
    )
    assert out.status == "passed", (out.message, out.details)
    assert "auth" not in out.details["ehlo"], "port 25 must not offer AUTH"


def test_alice_cannot_send_as_bob(ctx):
    out = run(
        ctx,
        "send",
        on="pc1",
        server="mail.projet.dz",
        login="alice@projet.dz",
        **{"from": "bob@projet.dz"},
        to=["bob@projet.dz"],
        reject={"code": 553},
    )
    assert out.status == "passed", (out.message, out.details)


def test_no_plaintext_login_on_143_and_110(ctx):
    for proto in ("imap", "pop3"):
        # with STARTTLS the login works ...
        out = run(ctx, "fetch", on="pc1", server="mail.projet.dz", protocol=proto, login="alice@projet.dz")
        assert out.status == "passed", (proto, out.message)
    # ... and a raw plaintext login is refused by the server itself
    node = ctx.lab.node("pc1")
    script = (
        "import socket,sys\n"
        "s=socket.create_connection(('10.0.0.10',143),5); f=s.makefile('rb')\n"
        "f.readline(); s.sendall(b'a1 LOGIN alice@projet.dz alice-secret\\r\\n')\n"
        "while True:\n"
        "    line=f.readline().decode().strip(); print(line)\n"
        "    if not line or line.startswith('a1 '): break\n"
    )
    r = node.run([sys.executable, "-c", script])
    tagged = r.stdout.strip().splitlines()[-1]
    assert tagged.startswith("a1 NO"), r.stdout + r.stderr
    assert "Plaintext authentication disallowed" in tagged


def test_ctrl_c_tears_everything_down(tmp_path):
    before = footprint()
    proc = subprocess.Popen(
        [*LAB, "run", "--reports", str(tmp_path)], cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "lab ready" in line:
            break
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(lines) + err
    assert footprint() == before


def test_sigkill_then_lab_clean_removes_the_leftovers(tmp_path):
    before = footprint()
    proc = subprocess.Popen(
        [*LAB, "run", "--reports", str(tmp_path)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "lab ready" in line:
            break
    proc.kill()
    proc.wait()
    left = footprint()
    assert left != before, "a SIGKILLed run should have left something for 'lab clean' to do"
    r = subprocess.run([*LAB, "clean"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "cleaned 1 lab" in r.stdout, r.stdout
    assert footprint() == before
    r = subprocess.run([*LAB, "clean"], cwd=REPO, capture_output=True, text=True)
    assert r.stdout.startswith("nothing to clean"), r.stdout


def test_a_broken_zone_is_caught_by_the_config_check_with_the_log(tmp_path, no_leaks, monkeypatch):
    from lab.deploy.lab import Lab
    from lab.errors import ServiceError
    from lab.model.load import load_topology
    from lab.model.plan import make_plan
    from lab.services.dns import Bind

    real_render = Bind.render

    def broken_render(self):
        real_render(self)
        zone = self.home / "db.projet.dz"
        zone.write_text(zone.read_text() + "mail IN A 10.0.0.999\n")

    monkeypatch.setattr(Bind, "render", broken_render)
    lab = Lab(make_plan(load_topology(REPO / "topologies" / "star.yaml")))
    try:
        lab.up()
        raise AssertionError("a broken zone must stop the build")
    except ServiceError as exc:
        text = str(exc)
        assert text.startswith("dns: named: named-checkconf failed"), text
        assert "10.0.0.999" in text or "bad dotted quad" in text, text
        assert exc.exit_code == 4
    finally:
        lab.down()


def test_two_labs_run_at_once_without_colliding(tmp_path, no_leaks):
    procs = [
        subprocess.Popen(
            [*LAB, "run", "--json", "--reports", str(tmp_path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert [r["status"] for r in results] == ["passed", "passed"], results
    assert results[0]["run_id"] != results[1]["run_id"]
    prefixes = {json.loads((Path(r["report"]) / "summary.json").read_text())["prefix"] for r in results}
    assert len(prefixes) == 2, prefixes
