"""MTA-STS without root: the key and its checks, the records and policy the plan derives,
the per-run id, the services' templates, Postfix's policy lookup only when asked for, and
a message's log lines with the TLS connection that carried it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.errors import InputError
from lab.model import mtasts
from lab.model.load import load_topology
from lab.model.plan import Plan, make_plan
from lab.scenario.maillog import lines_about
from lab.services.keys import LabKeys
from lab.services.mail import Postfix
from lab.services.mtasts import StsPolicy, StsResolver
from lab.services.registry import services_for

from .test_templates import settings, templates_of

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "topologies" / "mta-sts.yaml"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return make_plan(load_topology(TOPOLOGY))


def test_each_domain_publishes_its_record_and_policy_host(plan: Plan) -> None:
    for dom, server, mx in (("projet.dz", "dns", "10.0.1.10"), ("partenaire.dz", "ext-dns", "198.51.100.10")):
        zone = next(z for z in plan.zones if z.name == dom and z.server == server)
        assert [(r.type, r.value, r.key) for r in zone.records if r.owner == "_mta-sts"] == [("TXT", "", f"sts:{dom}")]
        assert [(r.type, r.value) for r in zone.records if r.owner == "mta-sts"] == [("A", mx)]
        assert not any(r.type == "TLSA" for r in zone.records)  # no DANE here: no DNSSEC
    assert all(h.mta_sts and not h.dane for h in plan.mail.values())


def test_off_by_default_nothing_published() -> None:
    plan = make_plan(load_topology(REPO / "tests" / "data" / "good" / "mta-sts-weak.yaml"))
    owners = {r.owner for z in plan.zones for r in z.records}
    assert not owners & {"_mta-sts", "mta-sts"}
    assert not any(h.mta_sts for h in plan.mail.values())
    ctx = templates_of(plan, Postfix, "mail")["main.cf.j2"]
    assert "smtp_tls_policy_maps" not in settings(ctx.text())
    assert not [c for c in services_for(plan.nodes["mail"], plan) if c in (StsPolicy, StsResolver)]


def test_the_policy_file_and_the_per_run_id() -> None:
    assert mtasts.policy_text(["mx1.b.lab", "mx2.b.lab"]) == (
        "version: STSv1\r\nmode: enforce\r\nmx: mx1.b.lab\r\nmx: mx2.b.lab\r\nmax_age: 86400\r\n"
    )
    keys, other = LabKeys(), LabKeys()
    value = keys.fill("sts:partenaire.dz")
    m = re.fullmatch(r"v=STSv1; id=([A-Za-z0-9]{1,32})", value)
    assert m, value  # RFC 8461 3.1: id is 1-32 letters and digits
    assert keys.fill("sts:partenaire.dz") == value  # once per run
    assert other.fill("sts:partenaire.dz") != value  # new every run


def test_services_and_their_templates(plan: Plan) -> None:
    on_mail = services_for(plan.nodes["ext-mail"], plan)
    assert on_mail.index(StsPolicy) < on_mail.index(Postfix) and StsResolver in on_mail
    assert StsPolicy not in services_for(plan.nodes["pc1"], plan)
    web = templates_of(plan, StsPolicy, "ext-mail")["mta-sts-nginx.conf.j2"].text()
    assert "listen 198.51.100.10:443 ssl default_server;" in web and ":80" not in web  # HTTPS only
    assert "server_name mta-sts.partenaire.dz;" in web
    assert "location = /.well-known/mta-sts.txt {\n            default_type text/plain;" in web
    yml = templates_of(plan, StsResolver, "mail")["mta-sts-daemon.yml.j2"].text()
    assert "host: 127.0.0.1\nport: 8461\n" in yml and "type: internal" in yml
    assert "reuse_port: true" in yml  # 1.1.2 never binds with false
    main = settings(templates_of(plan, Postfix, "mail")["main.cf.j2"].text())
    assert main["smtp_tls_policy_maps"] == "socketmap:inet:127.0.0.1:8461:postfix"
    assert main["smtp_tls_CAfile"] == "/etc/postfix/tls/ca.crt" and main["smtp_tls_security_level"] == "may"


def test_the_policy_server_serves_the_plans_mx(plan: Plan, tmp_path: Path) -> None:
    from lab.runtime.node import LabNode
    from lab.services.base import Deployment

    ln = LabNode(plan.nodes["ext-mail"], None, tmp_path / "ext-mail", "ml0")
    svc = StsPolicy.from_plan(ln, Deployment(plan, None, None, {"ext-mail": ln}))  # type: ignore[arg-type]
    assert svc.policies() == {"mta-sts.partenaire.dz": mtasts.policy_text(["ext-mail.partenaire.dz"])}


def _refused(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as info:
        load_topology(f)
    return [str(p) for p in info.value.problems]


def test_the_policy_host_name_must_be_free(tmp_path: Path) -> None:
    text = TOPOLOGY.read_text().replace(
        "  pc1:      {role: host, address: 10.0.1.100}",
        "  pc1:      {role: host, address: 10.0.1.100, aliases: [mta-sts]}",
    )
    msgs = _refused(tmp_path, text)
    assert any("nodes.pc1.aliases: the name 'mta-sts' is the host of the MTA-STS policy" in m for m in msgs), msgs


def test_the_mx_port_443_must_be_free(tmp_path: Path) -> None:
    text = TOPOLOGY.read_text().replace(
        "  mail:     {role: mail, address: 10.0.1.10}",
        "  mail:     {role: mail, address: 10.0.1.10, services: [webmail]}",
    )
    msgs = _refused(tmp_path, text)
    assert any("domains.projet.dz.mail: mta_sts: 'mail' serves projet.dz's policy on port 443" in m for m in msgs), msgs


def test_mta_sts_is_strict_boolean(tmp_path: Path) -> None:
    msgs = _refused(tmp_path, TOPOLOGY.read_text().replace("  mta_sts: true", '  mta_sts: "yes"'))
    assert any("security.mta_sts" in m for m in msgs), msgs


LOG = """\
Dec 01 17:19:13 mail postfix/cleanup[9060]: 241CC117: message-id=<stripped.r@mail-lab.test>
Dec 01 17:19:13 mail postfix/smtp[9061]: 241CC117: to=<carol@b>, relay=mx.b[198.51.100.10]:25, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host)
Dec 01 17:19:13 mail postfix/smtp[9070]: Verified TLS connection established to other.c[1.2.3.4]:25: TLSv1.3
Dec 01 17:19:13 mail postfix/smtp[9070]: 99AA0001: to=<x@c>, relay=other.c[1.2.3.4]:25, status=sent (250 Ok)
Dec 01 17:19:14 mail postfix/tlsproxy[9078]: Verified TLS connection established to mx.b[198.51.100.10]:25: TLSv1.3
Dec 01 17:19:14 mail postfix/smtp[9061]: Verified TLS connection established to mx.b[198.51.100.10]:25: TLSv1.3
Dec 01 17:19:14 mail postfix/smtp[9061]: 241CC117: to=<carol@b>, relay=mx.b[198.51.100.10]:25, status=sent (250 Ok)
Dec 01 17:19:14 mail postfix/smtpd[9100]: connect from pc[10.0.1.100]
"""


def test_a_message_log_holds_the_connection_that_carried_it() -> None:
    got = lines_about(LOG.splitlines(), {"stripped.r@mail-lab.test"})
    heads = ["241CC117: message-id=", "241CC117: to=", "Verified TLS connection", "241CC117: to="]
    assert [line.split("]: ", 1)[1][: len(h)] for line, h in zip(got, heads, strict=True)] == heads, got
    assert "mx.b" in got[2] and "postfix/smtp[9061]" in got[2]  # its own agent's, not 9070's nor tlsproxy's
    assert lines_about(LOG.splitlines(), {"nobody@x"}) == []


def test_behind_nat_the_public_copy_names_the_public_address_and_a_missing_forward_is_said(tmp_path: Path) -> None:
    text = (REPO / "topologies" / "dmz.yaml").read_text()
    assert "security:\n" in text
    f = tmp_path / "t.yaml"
    f.write_text(text.replace("security:\n", "security:\n  mta_sts: true\n", 1))
    plan = make_plan(load_topology(f))
    outside = next(z for z in plan.zones if z.name == "projet.dz" and z.server == "ext-dns")
    assert [(r.type, r.value) for r in outside.records if r.owner == "mta-sts"] == [("A", "203.0.113.2")]
    assert any("no firewall forwards tcp/443 to mail" in n for n in plan.mail["mail"].notes), plan.mail["mail"].notes
    forwarded = text.replace("security:\n", "security:\n  mta_sts: true\n", 1).replace(
        "      - {zone: wan, port: tcp/25, to: mail}",
        "      - {zone: wan, port: tcp/25, to: mail}\n      - {zone: wan, port: tcp/443, to: mail}",
    )
    f.write_text(forwarded)
    assert not [n for n in make_plan(load_topology(f)).mail["mail"].notes if "MTA-STS" in n]


def test_the_report_shows_only_values_the_run_made() -> None:
    keys = LabKeys()
    assert keys.published("sts:projet.dz") is None and keys.published("tlsa:mail") is None
    assert keys.published("ds:dns:projet.dz") is None and keys.published("dkim:projet.dz") is None
    assert not keys.sts_ids and not keys.tls_keys and not keys.zone_keys and not keys.dkim_keys  # nothing made
    made = keys.fill("sts:projet.dz")
    assert keys.published("sts:projet.dz") == made
