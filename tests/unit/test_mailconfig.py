"""A mail node's config overrides are data: checked names, one-line values, no programs or paths."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from lab.model import mailconfig as M
from lab.model.tlspolicy import INTERMEDIATE_TLS12
from lab.services.base import MAILNODE, render_template

CTX = {
    "hostname": "mail.projet.dz",
    "domains": ["projet.dz"],
    "address": "10.0.0.10",
    "cert_file": "/etc/postfix/tls/server.crt",
    "key_file": "/etc/postfix/tls/server.key",
    "ca_file": "/etc/postfix/tls/ca.crt",
    "vmail_uid": 8,
    "vmail_gid": 8,
    "relay_retry": True,
    "filtering": True,
    "milter": "inet:127.0.0.1:11332",
    "dane": False,
    "mta_sts": False,
    "mta_sts_port": 8461,
    "tls_policy": "intermediate",
    "intermediate_ciphers": ":".join(INTERMEDIATE_TLS12),
}


def refused(section: str, key: str, value: str = "x") -> str:
    out = M.check(section, {key: value})
    assert out, f"{section}.{key}={value!r} was accepted"
    return out[0].message


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix is not installed")
def test_postfix_list_is_the_installed_one() -> None:
    names = {
        ln.split(" =")[0]
        for ln in subprocess.run(["postconf", "-d"], capture_output=True, text=True, check=True).stdout.splitlines()
    }
    assert M.known("postfix") == names, "run scripts/daemon-params"


@pytest.mark.skipif(shutil.which("doveconf") is None, reason="Dovecot is not installed")
def test_dovecot_list_is_the_installed_one() -> None:
    out = subprocess.run(["doveconf", "-d"], capture_output=True, text=True, check=True).stdout
    names = {m.group(1) for m in re.finditer(r"^([a-z_0-9]+) =", out, re.M)}
    assert M.known("dovecot") == names, "run scripts/daemon-params"


@pytest.mark.parametrize(
    "section,key,value,why",
    [
        ("dovecot", "ssl", "yes\nservice x {\n  executable = /bin/sh\n}", "line break"),
        ("dovecot", "ssl", "yes }", "brace"),
        ("dovecot", "ssl_cert", "</etc/shadow", "file"),
        ("dovecot", "login_greeting", "</etc/shadow", "read a file"),
        ("dovecot", "mail_plugins", "quota", "program"),
        ("dovecot", "login_greeting", "hi $ssl_key", "another file or setting"),
        ("dovecot", "imapc_host", "10.9.9.9", "server the lab does not run"),
        ("dovecot", "mail_uid", "0", "users and groups"),
        ("dovecot", "service", "x", "not a Dovecot"),
        ("postfix", "mailbox_command", "/bin/sh -c id", "program"),
        ("postfix", "content_filter", "pipe:dummy", "server the lab does not run"),
        ("postfix", "smtpd_milters", "inet:8.8.8.8:25", "server the lab does not run"),
        ("postfix", "header_checks", "regexp:/x", "lookup table"),
        ("postfix", "smtpd_recipient_restrictions", "check_client_access hash:/etc/shadow", "lookup table"),
        ("postfix", "smtpd_recipient_restrictions", "check_policy_service inet:1.2.3.4:9", "lookup table"),
        ("postfix", "smtpd_client_restrictions", "check_policy_service unix:private/p", "lookup table"),
        ("postfix", "smtpd_banner", "hi $(id)", "command substitution"),
        ("postfix", "smtpd_banner", "hi `id`", "command substitution"),
        ("postfix", "smtpd_banner", "hi ${name?x}", "brace"),
        ("postfix", "smtpd_banner", "a\rb", "line break"),
        ("postfix", "queue_directory", "/tmp", "file"),
        ("postfix", "mail_owner", "root", "users and groups"),
        ("postfix", "smtpd_tls_securty_level", "none", "did not"),
        ("postfix", "Smtpd_tls_security_level", "none", "not a setting name"),
        ("postfix", "smtpd_tls_security_level\n", "none", "not a setting name"),
        (
            "postfix_master",
            "submission/inet/smtpd_recipient_restrictions",
            "permit_sasl_authenticated, reject",
            "spaces",
        ),
        ("postfix_master", "nosuch/inet/smtpd_tls_security_level", "may", "no service"),
        ("postfix_master", "submission/inet/content_filter", "smtp:[1.2.3.4]:25", "server the lab does not run"),
        ("postfix_master", "submission/inet", "may", "service/type/parameter"),
    ],
)
def test_refused(section: str, key: str, value: str, why: str) -> None:
    msg = refused(section, key, value)
    assert why in msg or (why == "did not" and "is not a Postfix" in msg), msg


def test_a_typo_gets_a_suggestion() -> None:
    (r,) = M.check("postfix", {"smtpd_tls_securty_level": "none"})
    assert r.hint == "did you mean 'smtpd_tls_security_level'?"


@pytest.mark.parametrize(
    "section,settings",
    [
        (
            "postfix",
            {
                "smtpd_tls_security_level": "none",
                "mynetworks": "0.0.0.0/0",
                "message_size_limit": "1024",
                "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination",
                "relayhost": "[10.0.1.10]:25",
                "smtpd_banner": "$myhostname ESMTP",
            },
        ),
        (
            "postfix_master",
            {"submission/inet/smtpd_tls_security_level": "may", "submissions/inet/smtpd_sender_restrictions": "permit"},
        ),
        (
            "dovecot",
            {
                "ssl": "yes",
                "disable_plaintext_auth": "no",
                "auth_mechanisms": "plain login",
                "login_greeting": "Lab %u ready",
            },
        ),
    ],
)
def test_ordinary_changes_are_accepted(section: str, settings: dict[str, str]) -> None:
    assert M.check(section, settings) == []


def test_the_services_refuse_what_validation_refuses() -> None:
    with pytest.raises(ValueError):
        M.assert_safe("dovecot", "ssl", "yes\n}")
    with pytest.raises(ValueError):
        M.assert_safe("postfix", "a b", "x")
    M.assert_safe("postfix", "smtpd_tls_security_level", "may")


def _main_cf() -> dict[str, str]:
    text = render_template(MAILNODE / "postfix", "main.cf.j2", **CTX)
    return dict(re.findall(r"^([a-z_0-9]+) = ?(.*)$", text, re.M))


def _master_cf() -> dict[str, str]:
    text = render_template(MAILNODE / "postfix", "master.cf.j2", **CTX)
    out, service = {}, None
    for line in text.splitlines():
        m = re.match(r"^([a-z0-9]+)\s+(inet|unix)\s", line)
        if m:
            service = f"{m.group(1)}/{m.group(2)}"
        m = re.match(r"^\s+-o ([a-z_0-9]+)=(.*)$", line)
        if m and service:
            out[f"{service}:{m.group(1)}"] = m.group(2)
    return out


def _dovecot() -> dict[str, str]:
    text = render_template(MAILNODE / "dovecot", "dovecot.conf.j2", **CTX)
    return dict(re.findall(r"^([a-z_0-9]+) = ?(.*)$", text, re.M))


def test_reference_values_are_what_the_templates_ship() -> None:
    main, master, dove = _main_cf(), _master_cf(), _dovecot()
    defaults: dict[str, str] = {}
    if shutil.which("postconf"):
        keys = [k.split(":", 1)[1] for k in M.REFERENCE if k.startswith("postfix:")]
        for line in subprocess.run(["postconf", "-d", *keys], capture_output=True, text=True).stdout.splitlines():
            k, _, v = line.partition(" = ")
            defaults[f"postfix:{k}"] = v
    if shutil.which("doveconf"):
        keys = [k.split(":", 1)[1] for k in M.REFERENCE if k.startswith("dovecot:")]
        for line in subprocess.run(["doveconf", "-d", *keys], capture_output=True, text=True).stdout.splitlines():
            k, _, v = line.partition(" = ")
            defaults[f"dovecot:{k}"] = v
    for key, ref in M.REFERENCE.items():
        daemon, _, name = key.partition(":")
        if daemon == "postfix":
            shipped = main.get(name, defaults.get(key))
        elif daemon == "dovecot":
            shipped = dove.get(name, defaults.get(key))
        else:
            shipped = master.get(key)
        if shipped is None:
            continue  # a default, and the daemon is not installed to say what it is
        assert shipped == ref, f"{key}: the templates ship {shipped!r}, REFERENCE says {ref!r}"


def test_weakening_is_flagged() -> None:
    got = {
        (o.daemon, o.setting): o
        for o in M.overrides(
            "mail",
            {
                "postfix": {
                    "smtpd_tls_security_level": "none",
                    "mynetworks": "0.0.0.0/0",
                    "message_size_limit": "1024",
                    "smtpd_tls_protocols": ">=TLSv1",
                    "smtp_tls_security_level": "encrypt",
                },
                "postfix_master": {
                    "submission/inet/smtpd_tls_security_level": "may",
                    "submission/inet/smtpd_sender_restrictions": "permit",
                },
                "dovecot": {"ssl": "yes", "disable_plaintext_auth": "no", "ssl_min_protocol": "TLSv1.3"},
            },
        )
    }
    weak = sorted(k for k, o in got.items() if o.weakens)
    assert weak == [
        ("dovecot", "disable_plaintext_auth"),
        ("dovecot", "ssl"),
        ("postfix", "mynetworks"),
        ("postfix", "smtpd_tls_protocols"),
        ("postfix", "smtpd_tls_security_level"),
        ("postfix master.cf submission/inet", "smtpd_sender_restrictions"),
        ("postfix master.cf submission/inet", "smtpd_tls_security_level"),
    ]
    assert got[("postfix", "smtpd_tls_security_level")].reference == "may"
    assert got[("postfix", "message_size_limit")].protects is None
    assert got[("postfix master.cf submission/inet", "smtpd_tls_security_level")].reference == "encrypt"
    assert "WEAKENS SECURITY" in got[("dovecot", "ssl")].line()
