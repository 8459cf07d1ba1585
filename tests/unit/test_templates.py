"""The daemon templates, rendered with the contexts the services build, and {SSHA512}.

The services only format values the plan prepared (see lab/services/*.py); these tests
render every template the way its service does and check the security policy lines,
so a template edit that weakens TLS or AUTH fails here, without root or daemons.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import jinja2.meta
import pytest

from lab.errors import InputError
from lab.model.load import load_topology
from lab.model.plan import Plan
from lab.runtime.node import LabNode
from lab.services.base import MAILNODE, TEMPLATES, Deployment, Service, Template, render_template
from lab.services.clamav import Clamd
from lab.services.dhcp import Kea
from lab.services.dns import Bind
from lab.services.fail2ban import Fail2ban
from lab.services.frr import Frr
from lab.services.mail import VMAIL_GID, VMAIL_UID, Postfix, ssha512
from lab.services.mailclient import client_context
from lab.services.middlebox import StartTlsStrip
from lab.services.mtasts import StsPolicy, StsResolver
from lab.services.rspamd import Rspamd

# --- contexts: the services' own templates(), on stand-ins for the node and the run --------


def templates_of(
    plan: Plan,
    cls: type[Service],
    node: str,
    tmp: Path = Path("/var/lib/mail-lab/runs/x/nodes"),
    fast_retry: bool = True,
) -> dict[str, Template]:
    """What ``cls`` renders on ``node``, keyed by template name (zone files by their file name)."""
    ln = LabNode(plan.nodes[node], None, tmp / node, "ml0")
    dep = Deployment(plan, None, None, {node: ln}, fast_retry)  # type: ignore[arg-type]
    svc = cls.from_plan(ln, dep)
    return {t.path.name if t.name == "zone.db.j2" else t.name: t for t in svc.templates()}


def postfix_context(plan: Plan, fast_retry: bool = True) -> dict[str, Any]:
    return templates_of(plan, Postfix, "mail", fast_retry=fast_retry)["main.cf.j2"].context


def kea_context(plan: Plan, **over: Any) -> dict[str, Any]:
    return {**templates_of(plan, Kea, "dhcp")["kea-dhcp4.conf.j2"].context, **over}


def named_context(plan: Plan) -> dict[str, Any]:
    return templates_of(plan, Bind, "dns")["named.conf.j2"].context


def zone_context(plan: Plan, name: str) -> dict[str, Any]:
    return {**templates_of(plan, Bind, "dns")[f"db.{name}"].context, "serial": 2024010101}


def frr_context(mode: str, template: str) -> dict[str, Any]:
    from lab.model.load import load_topology
    from lab.model.plan import make_plan

    plan = make_plan(load_topology(Path(__file__).resolve().parents[2] / "topologies" / "ring-l3.yaml", routing=mode))
    return templates_of(plan, Frr, "r1")[template].context


def settings(text: str) -> dict[str, str]:
    """``key = value`` lines of main.cf / dovecot.conf at the top level (no duplicates allowed)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_][\w]*)\s*=\s*(.*?)\s*$", line)
        if m:
            assert m.group(1) not in out, f"{m.group(1)} is set twice"
            out[m.group(1)] = m.group(2)
    return out


def master_services(text: str) -> dict[tuple[str, str], list[str]]:
    """master.cf: (service, type) -> its '-o' overrides."""
    out: dict[tuple[str, str], list[str]] = {}
    current: tuple[str, str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            assert current is not None, line
            flag, _, value = line.strip().partition(" ")
            assert flag == "-o", line
            out[current].append(value)
        else:
            name, kind = line.split()[:2]
            current = (name, kind)
            assert current not in out, f"{current} defined twice"
            out[current] = []
    return out


# --- Postfix ---------------------------------------------------------------------


class TestPostfix:
    def test_context(self, star_plan: Plan) -> None:
        ctx = postfix_context(star_plan)
        assert ctx["hostname"] == "mail.projet.dz" and ctx["domains"] == ["projet.dz"]
        assert ctx["address"] == "10.0.0.10" and (ctx["vmail_uid"], ctx["vmail_gid"]) == (VMAIL_UID, VMAIL_GID)

    def test_main_cf_policy(self, star_plan: Plan) -> None:
        cf = settings(render_template(MAILNODE / "postfix", "main.cf.j2", **postfix_context(star_plan)))
        assert cf["myhostname"] == "mail.projet.dz"
        assert cf["virtual_mailbox_domains"] == "projet.dz"
        assert cf["mydestination"] == ""  # nothing is local
        assert cf["mynetworks"] == "127.0.0.0/8"  # the LAN is not trusted: no open relay
        assert cf["smtpd_relay_restrictions"] == "permit_mynetworks, reject_unauth_destination"
        assert cf["smtpd_sasl_auth_enable"] == "no"  # AUTH only where master.cf enables it
        assert cf["smtpd_tls_auth_only"] == "yes"
        assert cf["smtpd_tls_security_level"] == "may"  # port 25 offers STARTTLS
        assert cf["smtp_tls_security_level"] == "may"  # relays use TLS when offered
        assert cf["smtpd_tls_protocols"] == ">=TLSv1.2"
        assert cf["smtpd_tls_cert_file"] == "/etc/postfix/tls/server.crt"
        assert cf["smtpd_tls_key_file"] == "/etc/postfix/tls/server.key"
        assert cf["smtp_tls_CAfile"] == "/etc/postfix/tls/ca.crt"
        assert cf["virtual_transport"] == "lmtp:unix:private/dovecot-lmtp"
        assert cf["smtpd_sasl_type"] == "dovecot" and cf["smtpd_sasl_path"] == "private/auth"

    def test_main_cf_several_domains(self, star_plan: Plan) -> None:
        ctx = postfix_context(star_plan) | {"domains": ["projet.dz", "autre.dz"]}
        cf = settings(render_template(MAILNODE / "postfix", "main.cf.j2", **ctx))
        assert cf["virtual_mailbox_domains"] == "projet.dz, autre.dz"

    @pytest.mark.parametrize("fast", [True, False])
    def test_main_cf_retry_timing(self, star_plan: Plan, fast: bool) -> None:
        cf = settings(render_template(MAILNODE / "postfix", "main.cf.j2", **postfix_context(star_plan, fast)))
        assert ("queue_run_delay" in cf) is fast
        if fast:
            assert cf["maximal_backoff_time"] == "10s"

    def test_master_cf_policy(self, star_plan: Plan) -> None:
        svc = master_services(render_template(MAILNODE / "postfix", "master.cf.j2", **postfix_context(star_plan)))
        assert svc[("smtp", "inet")] == []  # port 25: main.cf policy, no AUTH
        sub = svc[("submission", "inet")]
        assert "smtpd_tls_security_level=encrypt" in sub  # STARTTLS required on 587
        assert "smtpd_sasl_auth_enable=yes" in sub
        assert "smtpd_tls_auth_only=yes" in sub
        assert "smtpd_relay_restrictions=permit_sasl_authenticated,reject" in sub
        assert any("reject_sender_login_mismatch" in o for o in sub)
        subs = svc[("submissions", "inet")]
        assert "smtpd_tls_wrappermode=yes" in subs  # implicit TLS on 465
        assert "smtpd_sasl_auth_enable=yes" in subs
        assert "smtpd_relay_restrictions=permit_sasl_authenticated,reject" in subs
        for needed in [("lmtp", "unix"), ("postlog", "unix-dgram"), ("smtp", "unix"), ("qmgr", "unix")]:
            assert needed in svc

    def test_master_cf_no_chroot(self, star_plan: Plan) -> None:
        text = render_template(MAILNODE / "postfix", "master.cf.j2", **postfix_context(star_plan))
        rows = [ln.split() for ln in text.splitlines() if ln and not ln[0].isspace() and not ln.startswith("#")]
        assert rows and all(r[4] == "n" for r in rows), [r[:5] for r in rows if r[4] != "n"]


# --- Dovecot ---------------------------------------------------------------------


class TestDovecot:
    @pytest.fixture
    def conf(self, star_plan: Plan) -> str:
        return render_template(MAILNODE / "dovecot", "dovecot.conf.j2", **postfix_context(star_plan))

    def test_policy(self, conf: str) -> None:
        cf = settings(conf)
        assert cf["ssl"] == "required"
        assert cf["disable_plaintext_auth"] == "yes"
        assert cf["ssl_min_protocol"] == "TLSv1.2"
        assert cf["ssl_cert"] == "</etc/postfix/tls/server.crt"
        assert cf["ssl_key"] == "</etc/postfix/tls/server.key"
        assert cf["hostname"] == "mail.projet.dz"
        assert cf["protocols"] == "imap pop3 lmtp"
        assert cf["first_valid_uid"] == cf["last_valid_uid"] == str(VMAIL_UID)
        assert cf["first_valid_gid"] == cf["last_valid_gid"] == str(VMAIL_GID)

    def test_listeners_and_sockets(self, conf: str) -> None:
        for port in ("993", "995"):
            assert re.search(rf"port = {port}\n\s+ssl = yes", conf), f"implicit TLS on {port}"
        assert "unix_listener /var/spool/postfix/private/dovecot-lmtp" in conf
        assert "unix_listener /var/spool/postfix/private/auth" in conf
        assert f"default_fields = uid={VMAIL_UID} gid={VMAIL_GID}" in conf

    def test_braces_balance(self, conf: str) -> None:
        depth = 0
        for ch in conf.replace("\\Drafts", ""):
            depth += {"{": 1, "}": -1}.get(ch, 0)
            assert depth >= 0
        assert depth == 0


# --- Kea, BIND, dhclient -----------------------------------------------------------


class TestKea:
    @pytest.mark.parametrize("routers", [[], ["10.0.0.1"]], ids=["no-router", "router"])
    def test_valid_json(self, star_plan: Plan, routers: list[str]) -> None:
        conf = json.loads(render_template(TEMPLATES, "kea-dhcp4.conf.j2", **kea_context(star_plan, routers=routers)))
        d4 = conf["Dhcp4"]
        assert d4["interfaces-config"] == {"interfaces": ["eth0"], "dhcp-socket-type": "raw"}
        (subnet,) = d4["subnet4"]
        assert subnet["subnet"] == "10.0.0.0/24"
        assert subnet["pools"] == [{"pool": "10.0.0.100 - 10.0.0.199"}]
        assert subnet["option-data"] == ([{"name": "routers", "data": "10.0.0.1"}] if routers else [])
        assert {"name": "domain-name-servers", "data": "10.0.0.2"} in d4["option-data"]
        assert {"name": "domain-name", "data": "projet.dz"} in d4["option-data"]
        assert (d4["valid-lifetime"], d4["renew-timer"], d4["rebind-timer"]) == (3600, 1800, 3150)
        assert d4["lease-database"]["name"].endswith("leases.csv")
        assert d4["loggers"][0]["output_options"][0]["output"].endswith("kea.log")

    def test_reservations_and_several_dns_servers(self, star_plan: Plan) -> None:
        res = [
            SimpleNamespace(hw="02:00:00:00:00:01", ip="10.0.0.50", hostname="pc1"),
            SimpleNamespace(hw="02:00:00:00:00:02", ip="10.0.0.51", hostname="pc2"),
        ]
        conf = json.loads(
            render_template(
                TEMPLATES,
                "kea-dhcp4.conf.j2",
                **kea_context(star_plan, reservations=res, dns_servers=["10.0.0.2", "10.0.0.4"]),
            )
        )
        assert [r["ip-address"] for r in conf["Dhcp4"]["subnet4"][0]["reservations"]] == ["10.0.0.50", "10.0.0.51"]
        assert {"name": "domain-name-servers", "data": "10.0.0.2, 10.0.0.4"} in conf["Dhcp4"]["option-data"]

    def test_strings_are_json_escaped(self, star_plan: Plan) -> None:
        conf = json.loads(
            render_template(
                TEMPLATES, "kea-dhcp4.conf.j2", **kea_context(star_plan, lease_file='/tmp/a "quoted" dir/leases.csv')
            )
        )
        assert conf["Dhcp4"]["lease-database"]["name"] == '/tmp/a "quoted" dir/leases.csv'


class TestBind:
    def test_named_conf(self, star_plan: Plan) -> None:
        conf = render_template(TEMPLATES, "named.conf.j2", **named_context(star_plan))
        assert "listen-on port 53 { 10.0.0.2; 127.0.0.1; };" in conf
        assert "recursion no;" in conf and "allow-transfer { none; };" in conf
        home = "/var/lib/mail-lab/runs/x/nodes/dns/named"
        assert f'include "{home}/rndc.key";' in conf
        zones = re.findall(r'zone "([^"]+)" \{\n\s+type primary;\n\s+file "([^"]+)";', conf)
        assert zones == [
            ("projet.dz", f"{home}/db.projet.dz"),
            ("0.0.10.in-addr.arpa", f"{home}/db.0.0.10.in-addr.arpa"),
        ]
        assert conf.count("{") == conf.count("}")

    def test_forward_zone_file(self, star_plan: Plan) -> None:
        text = render_template(TEMPLATES, "zone.db.j2", **zone_context(star_plan, "projet.dz"))
        assert "$ORIGIN projet.dz.\n" in text and "$TTL 300\n" in text
        assert re.search(r"^@\tIN\tSOA\tdns\.projet\.dz\. hostmaster\.projet\.dz\. \(", text, re.M)
        assert re.search(r"^\t\t2024010101\t; serial$", text, re.M)
        lines = set(text.splitlines())
        for rec in (
            "@\tIN\tNS\tdns.projet.dz.",
            "@\tIN\tMX\t10 mail.projet.dz.",
            "mail\tIN\tA\t10.0.0.10",
            "dns\tIN\tA\t10.0.0.2",
            "dhcp\tIN\tA\t10.0.0.3",
        ):
            assert rec in lines, rec

    def test_reverse_zone_file(self, star_plan: Plan) -> None:
        text = render_template(TEMPLATES, "zone.db.j2", **zone_context(star_plan, "0.0.10.in-addr.arpa"))
        assert "$ORIGIN 0.0.10.in-addr.arpa.\n" in text
        assert "10\tIN\tPTR\tmail.projet.dz." in text.splitlines()


def test_dhclient_conf() -> None:
    text = render_template(TEMPLATES, "dhclient.conf.j2", hostname="pc1")
    assert 'send host-name "pc1";' in text
    assert "timeout 15;" in text and "domain-name-servers" in text


# --- StrictUndefined: a context that lacks a key fails loudly -----------------------

ZEBRA_CONTEXT = frr_context("ospf", "frr-zebra.conf.j2")
OSPF_CONTEXT = frr_context("ospf", "frr-ospfd.conf.j2")
RIP_CONTEXT = frr_context("rip", "frr-ripd.conf.j2")


def all_contexts(plan: Plan) -> list[tuple[Path, str, dict[str, Any]]]:
    # every branch on: filtering, DANE, MTA-STS, a validating resolver with its trust anchor
    mail_ctx = {**postfix_context(plan), "filtering": True, "dane": True, "mta_sts": True}
    named_ctx = {
        **named_context(plan),
        "forwards": True,
        "root_file": "/d/db.root.signed",
        "dnssec": True,
        "trust_anchor": {"flags": "257", "protocol": "3", "algorithm": "13", "key": "AAAA"},
    }
    extra = [
        (t.directory, t.name, t.context)
        for cls in (Rspamd, Clamd, Fail2ban, StartTlsStrip, StsPolicy, StsResolver)
        for t in templates_of(plan, cls, "mail").values()
    ]
    # the star publishes no MTA-STS policy: give its policy server one site, so every
    # variable inside the loop is used
    extra = [
        (d, n, {**c, "sites": [{"name": "mta-sts.projet.dz"}]} if n == "mta-sts-nginx.conf.j2" else c)
        for d, n, c in extra
    ]
    return [
        (TEMPLATES, "frr-zebra.conf.j2", ZEBRA_CONTEXT),
        (TEMPLATES, "frr-ospfd.conf.j2", OSPF_CONTEXT),
        (TEMPLATES, "frr-ripd.conf.j2", RIP_CONTEXT),
        (MAILNODE / "postfix", "main.cf.j2", mail_ctx),
        (MAILNODE / "postfix", "master.cf.j2", mail_ctx),
        (MAILNODE / "dovecot", "dovecot.conf.j2", mail_ctx),
        (TEMPLATES, "kea-dhcp4.conf.j2", kea_context(plan)),
        (TEMPLATES, "named.conf.j2", named_ctx),
        (TEMPLATES, "zone.db.j2", zone_context(plan, "projet.dz")),
        (TEMPLATES, "dhclient.conf.j2", {"hostname": "pc1"}),
        (TEMPLATES, "s-nail.rc.j2", client_context(plan, plan.nodes["pc1"])),
        (TEMPLATES, "swaksrc.j2", client_context(plan, plan.nodes["pc1"])),
        *extra,
        *seed_contexts(),
    ]


def seed_contexts() -> list[tuple[Path, str, dict[str, Any]]]:
    from .test_templates_seed import seed_contexts as seed

    return seed()


def test_every_template_is_covered() -> None:
    found = {p.relative_to(p.parents[1]).as_posix() for p in [*MAILNODE.glob("*/*.j2"), *TEMPLATES.glob("*.j2")]}
    covered = {f"{d.name}/{n}" for d, n, _ in all_contexts(load_star())}
    # nftables.conf.j2 is rendered through render_ruleset (test_firewall_ruleset below); the
    # proxy, web and VPN templates in test_proxy_vpn_model
    from tests.unit.test_proxy_vpn_model import COVERED

    assert found == covered | {"templates/nftables.conf.j2"} | COVERED


def test_missing_key_raises(star_plan: Plan) -> None:
    """Drop each variable a template uses, in turn: rendering must raise, never print ''."""
    checked = 0
    for directory, name, ctx in all_contexts(star_plan):
        env = jinja2.Environment()
        used = jinja2.meta.find_undeclared_variables(env.parse((directory / name).read_text()))
        assert used <= set(ctx), f"{name}: the context lacks {used - set(ctx)}"
        for var in sorted(used):
            partial = {k: v for k, v in ctx.items() if k != var}
            # '| tojson' (Kea) meets the undefined inside json.dumps: a TypeError naming it
            with pytest.raises((jinja2.UndefinedError, TypeError)) as info:
                render_template(directory, name, **partial)
            assert isinstance(info.value, jinja2.UndefinedError) or "StrictUndefined" in str(info.value), (
                name,
                var,
                info.value,
            )
            checked += 1
    assert checked >= 20


def test_missing_attribute_raises(star_plan: Plan) -> None:
    ctx = zone_context(star_plan, "projet.dz")
    ctx["records"] = [SimpleNamespace(owner="@", type="NS")]  # no .value
    with pytest.raises(jinja2.UndefinedError):
        render_template(TEMPLATES, "zone.db.j2", **ctx)


# --- {SSHA512} ---------------------------------------------------------------------


class TestSsha512:
    def test_structure(self) -> None:
        h = ssha512("alice-secret")
        assert h.startswith("{SSHA512}")
        raw = base64.b64decode(h.removeprefix("{SSHA512}"), validate=True)
        assert len(raw) == 64 + 8  # sha512 digest, then the 8-byte salt
        digest, salt = raw[:64], raw[64:]
        assert digest == hashlib.sha512(b"alice-secret" + salt).digest()
        assert hashlib.sha512(b"wrong" + salt).digest() != digest

    def test_given_salt_is_deterministic(self) -> None:
        salt = bytes(range(16))
        h = ssha512("bob-secret", salt)
        assert h == ssha512("bob-secret", salt)
        raw = base64.b64decode(h.removeprefix("{SSHA512}"))
        assert raw[64:] == salt and raw[:64] == hashlib.sha512(b"bob-secret" + salt).digest()

    def test_salt_is_random(self) -> None:
        assert len({ssha512("same") for _ in range(5)}) == 5

    def test_non_ascii_password_is_utf8(self) -> None:
        salt = b"12345678"
        raw = base64.b64decode(ssha512("mot-de-passé", salt).removeprefix("{SSHA512}"))
        assert raw[:64] == hashlib.sha512("mot-de-passé".encode() + salt).digest()


def test_named_conf_with_a_lab_root() -> None:
    """A server that must find other lab domains recurses through its own root zone."""
    base = {"dir": "/d", "listen": "10.0.1.2", "zones": [], "root_file": "/d/db.root", "dnssec": False}
    text = render_template(TEMPLATES, "named.conf.j2", **base, forwards=True, trust_anchor=None)
    assert "recursion yes;" in text and 'zone "." {' in text and "type primary;" in text
    assert "recursion no;" not in text and "dnssec-validation no;" in text
    text = render_template(TEMPLATES, "named.conf.j2", **base, forwards=False, trust_anchor=None)
    assert "recursion no;" in text and 'zone "."' not in text


def load_star() -> Plan:
    from lab.model.load import load_topology
    from lab.model.plan import make_plan

    return make_plan(load_topology(Path(__file__).resolve().parents[2] / "topologies" / "star.yaml"))


def test_ospf_and_rip_templates() -> None:
    ospf = render_template(TEMPLATES, "frr-ospfd.conf.j2", **OSPF_CONTEXT)
    assert re.search(r"ospf router-id 10\.\d+\.\d+\.\d+", ospf)  # the router's first address
    assert "network 10.255.0.0/30 area 0" in ospf and "network 10.1.1.0/24 area 0" in ospf
    assert "ip ospf network point-to-point" in ospf and "ip ospf passive" in ospf
    assert "ip ospf hello-interval 1" in ospf and "ip ospf dead-interval 4" in ospf
    rip = render_template(TEMPLATES, "frr-ripd.conf.j2", **RIP_CONTEXT)
    assert "version 2" in rip and "timers basic 5 15 10" in rip and "passive-interface " in rip


def test_firewall_ruleset_from_the_dmz_topology() -> None:
    from lab.model.load import load_topology
    from lab.model.plan import make_plan
    from lab.services.firewall import render_ruleset

    plan = make_plan(load_topology(Path(__file__).resolve().parents[2] / "topologies" / "dmz.yaml"))
    text = render_ruleset(plan.firewalls["fw"])
    assert "table inet labfw" in text
    assert "policy drop;" in text and "ct state established,related" in text
    assert "dnat ip to 10.0.1.10:25" in text
    assert text.count("masquerade") >= 2
    assert "oifname @zone_wan" in text


# --- the mail programs of a host --------------------------------------------------


def test_mail_programs_are_set_up_for_the_hosts_user(star_plan: Plan) -> None:
    assert star_plan.nodes["pc1"].user == "alice@projet.dz" and star_plan.nodes["pc2"].user == "bob@projet.dz"
    ctx = client_context(star_plan, star_plan.nodes["pc1"])
    rc = render_template(TEMPLATES, "s-nail.rc.j2", **ctx)
    assert "set mta=smtp://alice%40projet.dz:alice-secret@mail.projet.dz:587" in rc
    assert "set inbox=imaps://alice%40projet.dz:alice-secret@mail.projet.dz:993" in rc
    swaks = render_template(TEMPLATES, "swaksrc.j2", **ctx)
    assert "auth-user alice@projet.dz" in swaks and "auth-password alice-secret" in swaks


def test_a_hostile_password_stays_inside_its_value(star_plan: Plan) -> None:
    """Quotes, spaces, URL and s-nail syntax in a password cannot add a setting."""
    hostile = "x@y:z/ 'set mta=evil' ;|`$(id)` #"
    user = next(u for m in star_plan.mail.values() for u in m.users if u.name == "alice")
    user.password = hostile
    ctx = client_context(star_plan, star_plan.nodes["pc1"])
    rc = render_template(TEMPLATES, "s-nail.rc.j2", **ctx)
    assert hostile not in rc and "evil" in rc  # percent-encoded inside the URLs
    assert all(ln.startswith(("#", "set ")) or not ln for ln in rc.splitlines())
    assert [ln for ln in rc.splitlines() if "mta=" in ln] == [
        f"set mta=smtp://alice%40projet.dz:{urllib.parse.quote(hostile, safe='')}@mail.projet.dz:587"
    ]
    swaks = render_template(TEMPLATES, "swaksrc.j2", **ctx)
    assert "auth-password" not in swaks.replace("# the password has spaces", "") and hostile not in swaks


def test_a_password_with_a_control_character_is_refused(tmp_path: Path) -> None:
    text = (
        (Path(__file__).resolve().parents[2] / "topologies" / "star.yaml")
        .read_text()
        .replace("{password: alice-secret}", '{password: "a\\nb"}')
    )
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(InputError) as info:
        load_topology(tmp_path / "t.yaml")
    assert "domains.projet.dz.users.alice.password" in str(info.value)
