"""The templates of the thesis's server (topologies/seed.yaml): Apache + Roundcube, sshd,
Radicale, rendered with the contexts the services build, and their security lines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lab.model.load import load_topology
from lab.model.plan import Plan, make_plan
from lab.services.base import TEMPLATES
from lab.services.calendar import Radicale
from lab.services.ssh import Sshd, account_lines
from lab.services.webmail import Apache

from .test_templates import templates_of

REPO = Path(__file__).resolve().parents[2]


def seed_plan() -> Plan:
    return make_plan(load_topology(REPO / "topologies" / "seed.yaml"))


def seed_contexts() -> list[tuple[Path, str, dict[str, Any]]]:
    plan = seed_plan()
    out = []
    for cls in (Apache, Sshd, Radicale):
        for name, t in templates_of(plan, cls, "mail").items():
            out.append((TEMPLATES, name, t.context))
    return out


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    plan = seed_plan()
    return {name: t.text() for cls in (Apache, Sshd, Radicale) for name, t in templates_of(plan, cls, "mail").items()}


def test_sshd_is_key_only(rendered: dict[str, str]) -> None:
    cf = rendered["sshd_config.j2"]
    for line in (
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin no",
        "PubkeyAuthentication yes",
        "AllowUsers admin",
        "ListenAddress 10.0.1.10:22",
    ):
        assert re.search(rf"^{line}$", cf, re.M), line
    assert "/var/lib/mail-lab/runs/x/nodes/mail/ssh/host_ed25519" in cf


def test_apache_https_only(rendered: dict[str, str]) -> None:
    cf = rendered["apache2.conf.j2"]
    port80 = cf.split("<VirtualHost *:80>")[1].split("</VirtualHost>")[0]
    # port 80 answers ACME challenges and redirects the rest to HTTPS; it serves no webmail
    assert 'RedirectMatch permanent "^/(?!\\.well-known/acme-challenge/)(.*)$" "https://mail.projet.dz/$1"' in port80
    assert "roundcube" not in port80
    port443 = cf.split("<VirtualHost *:443>")[1]
    assert "SSLEngine on" in port443 and "Alias /mail /var/lib/roundcube/public_html" in port443
    assert "SSLProtocol -all +TLSv1.2 +TLSv1.3" in cf
    assert "/nodes/mail/tls/server.crt" in port443


def test_roundcube_verifies_the_mail_server(rendered: dict[str, str]) -> None:
    php = rendered["roundcube.config.inc.php.j2"]
    assert "$config['imap_host'] = 'ssl://mail.projet.dz:993';" in php
    assert "$config['smtp_host'] = 'tls://mail.projet.dz:587';" in php
    assert php.count("'verify_peer' => true") == 2 and "verify_peer' => false" not in php
    assert re.search(r"\$config\['des_key'\] = '[0-9a-f]{24}';", php)


def test_radicale_https_and_owner_only(rendered: dict[str, str]) -> None:
    cf = rendered["radicale.conf.j2"]
    for line in ("ssl = True", "type = owner_only", "htpasswd_encryption = bcrypt", "hosts = 10.0.1.10:5232"):
        assert re.search(rf"^{re.escape(line)}$", cf, re.M), line


def test_admin_accounts() -> None:
    pw, gr, sh = account_lines({"admin": None, "ops": None}, {"admin": "$6$x$y"})
    assert pw.splitlines() == [
        "admin:x:2001:2001:mail-lab administrator:/home/admin:/bin/sh",
        "ops:x:2002:2002:mail-lab administrator:/home/ops:/bin/sh",
    ]
    assert gr.splitlines()[0] == "admin:x:2001:"
    assert sh.splitlines()[0].startswith("admin:$6$x$y:") and sh.splitlines()[1].startswith("ops:*:")
