"""Issue 13 without root: the security knobs and their checks, the records the plan
derives, per-run keys, the TLS policy verdict, the override rules for milters, the new
step models, and the wire facts (offered suites, mail in clear)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import InputError
from lab.model import mailconfig as M
from lab.model.load import load_topology
from lab.model.plan import make_plan
from lab.model.tlspolicy import INTERMEDIATE_TLS12, Offered, violations, weakness
from lab.model.zones import txt_strings
from lab.services.keys import LabKeys

REPO = Path(__file__).resolve().parents[2]


def plan_of(name: str):
    return make_plan(load_topology(REPO / name))


def test_dmz_publishes_spf_dmarc_and_a_dkim_placeholder() -> None:
    plan = plan_of("topologies/dmz.yaml")
    inside = next(z for z in plan.zones if z.name == "projet.dz" and z.server == "dns")
    txt = {(r.owner, r.value, r.key) for r in inside.records if r.type == "TXT"}
    assert ("@", "v=spf1 ip4:10.0.1.10 ip4:203.0.113.2 -all", None) in txt
    assert ("_dmarc", "v=DMARC1; p=reject; adkim=r; aspf=r", None) in txt
    assert ("lab._domainkey", "", "dkim:projet.dz") in txt
    assert all(h.filtering and not h.dane for h in plan.mail.values())


def test_attacks_campus_dane_only_where_the_resolver_validates() -> None:
    plan = plan_of("topologies/dmz-attacks.yaml")
    assert plan.mail["mail"].dane and not plan.mail["ext-mail"].dane
    assert "authoritatively (no AD bit)" in plan.mail["ext-mail"].notes[0]
    partner = next(z for z in plan.zones if z.name == "partenaire.dz")
    assert any(r.type == "TLSA" and r.key == "tlsa:ext-mail" for r in partner.records)
    assert plan.forwards["dns"][0].server == "ext-dns"


def test_dane_without_dnssec_and_a_middlebox_on_a_host_are_located(tmp_path: Path) -> None:
    text = (REPO / "topologies" / "dmz.yaml").read_text()
    text = text.replace("security:\n  filtering: true", "security:\n  filtering: true\n  dane: true")
    text = text.replace(
        "  pc1:      {role: host, address: dhcp}", "  pc1:      {role: host, address: dhcp, middlebox: starttls-strip}"
    )
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as info:
        load_topology(f)
    msgs = [str(p) for p in info.value.problems]
    assert any("security.dane: DANE needs DNSSEC" in m for m in msgs), msgs
    assert any("nodes.pc1.middlebox: 'pc1' is a host" in m for m in msgs), msgs


def test_keys_are_made_once_and_fill_the_records() -> None:
    keys = LabKeys()
    assert keys.fill("dkim:projet.dz") == keys.dkim("projet.dz").txt
    assert keys.dkim("projet.dz").txt.startswith("v=DKIM1; k=rsa; p=MII")
    assert keys.fill("tlsa:mail").startswith("3 1 1 ") and len(keys.fill("tlsa:mail")) == 6 + 64
    zk = keys.zone_key("ext-dns", "partenaire.dz")
    assert keys.fill("ds:ext-dns:partenaire.dz") == zk.ds and zk.ds.startswith(f"{zk.tag} 13 2 ")
    assert zk.dnskey.startswith("257 3 13 ") and zk.basename == f"Kpartenaire.dz.+013+{zk.tag:05d}"
    assert keys.zone_key("dns", "projet.dz") is not keys.zone_key("ext-dns", "projet.dz")  # split horizon


def test_txt_strings_split_at_255() -> None:
    assert txt_strings('v=spf1 "x"') == '"v=spf1 \\"x\\""'
    long = txt_strings("a" * 300)
    assert long.startswith('( "' + "a" * 255 + '" "') and long.endswith('" )')


def test_tls_policy_verdict() -> None:
    good = Offered({"TLSv1.2": True, "TLSv1.3": True}, [("TLSv1.2", c) for c in INTERMEDIATE_TLS12])
    assert violations(good) == []
    assert weakness("TLSv1.2", "ADH-AES256-GCM-SHA384").startswith("anonymous")
    assert weakness("TLSv1.2", "ECDHE-ECDSA-AES128-SHA256") == "CBC in TLS 1.2 (not AEAD)"
    assert weakness("TLSv1.2", "DES-CBC3-SHA") == "3DES/DES"
    assert weakness("TLSv1.3", "TLS_AES_256_GCM_SHA384") is None
    old = Offered({"TLSv1.0": True, "TLSv1.2": True}, [])
    assert violations(old) == ["TLSv1.0 enabled"]


def test_only_the_labs_own_milter_may_be_named() -> None:
    assert M.check("postfix", {"smtpd_milters": ""}) == []
    assert M.check("postfix", {"smtpd_milters": M.LAB_MILTER}) == []
    bad = M.check("postfix", {"non_smtpd_milters": "inet:192.0.2.1:8891"})
    assert bad and "only be the lab's own rspamd" in bad[0].message
    with pytest.raises(ValueError):
        M.assert_safe("postfix", "smtpd_milters", "unix:/tmp/x")
    off = M.overrides("mail", {"postfix": {"smtpd_milters": ""}})
    assert off[0].weakens and "spam and virus" in (off[0].protects or "")


def test_step_models() -> None:
    from lab.model.actions import BruteForce, Scan, Send

    s = Send.model_validate(
        {"on": "pc1", "server": "m", "from": "a@b.c", "to": ["x@b.c"], "attach": [{"name": "e.com", "text": "X"}]}
    )
    assert s.attach[0].name == "e.com"
    with pytest.raises(ValueError):
        Send.model_validate(
            {"on": "pc1", "server": "m", "from": "a@b.c", "to": ["x@b.c"], "attach": [{"name": "../x", "text": "X"}]}
        )
    with pytest.raises(ValueError):
        BruteForce.model_validate({"on": "m", "server": "m", "login": "a@b.c", "expect": "maybe"})
    assert Scan.model_validate({"on": "pc1", "server": "m", "ports": [993]}).expect == "holds"


def test_offered_suites_are_read_from_the_client_hello() -> None:
    from lab.capture.tls import parse_hello

    body = bytes.fromhex("0303") + bytes(32) + b"\x00" + bytes.fromhex("0006c02b1301caca") + b"\x01\x00"
    h = parse_hello(body, client=True)
    assert h.offered == [0xC02B, 0x1301, 0xCACA]


def test_the_lab_suffix_list_keeps_the_rules_that_apply_to_its_domains() -> None:
    from lab.services.rspamd import lab_suffixes

    psl = "// comment\ncom\nuk\nco.uk\n*.ck\n!www.ck\ndz\nnet\nexample\n"
    got = lab_suffixes(psl, ["projet.dz", "shop.co.uk", "a.lab", "www.ck"])
    # each lab domain keeps every rule that ends it, and its top label (the '*' rule)
    assert got == ["uk", "co.uk", "*.ck", "!www.ck", "dz", "lab", "ck"]
    assert "com" not in got and "net" not in got


def test_rspamd_turns_off_what_a_closed_lab_cannot_use_and_keeps_the_trust_modules() -> None:
    from lab.services.rspamd import DISABLED, LOCAL_FILES

    assert {"fuzzy_check", "rbl", "surbl", "neural"} <= set(DISABLED)
    kept = {"dkim_signing", "dmarc", "antivirus", "spf", "dkim", "milter_headers"}
    assert not kept & set(DISABLED)
    assert not {f.removesuffix(".conf") for f in LOCAL_FILES} & set(DISABLED)
