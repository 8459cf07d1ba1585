"""The one TLS certificate a node serves, whichever of its daemons serves it.

Postfix, Dovecot, Apache and Radicale on a node all use the same pair of files,
``<node dir>/tls/server.crt`` and ``server.key`` (the node sees the same paths).  Where
it comes from is the topology's ``certificate:`` for the node: the run's lab CA
(default), the lab's ACME CA through certbot (``lab.services.acme``), or a teaching
variant clients must refuse (expired, wrong name, self-signed).
"""

from __future__ import annotations

import os
import shutil
import ssl
import threading
from pathlib import Path
from typing import Any

from lab.model.plan import Plan
from lab.services.pki import LabCA, ServerCert

_LOCK = threading.Lock()


def source(plan: Plan, node: str) -> str:
    """lab-ca, acme, expired, wrong-name or self-signed."""
    return plan.topology.data.nodes[node].certificate or "lab-ca"


def tls_dir(node_dir: Path) -> Path:
    return node_dir / "tls"


def paths(node_dir: Path) -> tuple[Path, Path]:
    d = tls_dir(node_dir)
    return d / "server.crt", d / "server.key"


def install(node_dir: Path, cert: Path, key: Path) -> tuple[Path, Path]:
    """Copy a certificate (full chain) and its key to where the node's daemons read them."""
    crt, k = paths(node_dir)
    crt.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cert, crt)
    shutil.copyfile(key, k)
    os.chmod(k, 0o600)
    return crt, k


def ensure(plan: Plan, ca: LabCA, node: str, node_dir: Path, ip: str | None, key: Any = None) -> tuple[Path, Path]:
    """The node's certificate files, made once per run (the first daemon to need them
    makes them; an ACME certificate is already there, certbot put it).  Daemons of one
    node may come up side by side (Apache and Radicale): one lock, one certificate."""
    with _LOCK:
        return _ensure(plan, ca, node, node_dir, ip, key)


def _ensure(plan: Plan, ca: LabCA, node: str, node_dir: Path, ip: str | None, key: Any) -> tuple[Path, Path]:
    crt, key_file = paths(node_dir)
    if crt.exists() and key_file.exists():
        return crt, key_file
    src = source(plan, node)
    if src == "acme":
        raise FileNotFoundError(f"{node}: no ACME certificate yet (certbot runs before the daemons that use it)")
    hostname = plan.nodes[node].fqdn
    domains = plan.mail[node].domains if node in plan.mail else []
    # ``key``: the node's TLS key when its public half is already published (a TLSA record)
    issued: ServerCert = ca.issue(hostname, domains, [ip] if ip else [], node_dir / "pki", key=key, variant=src)
    return install(node_dir, issued.cert, issued.key)


def readiness_context(plan: Plan, node: str, ca_file: Path) -> ssl.SSLContext:
    """How the lab asks a daemon whether it answers: verifying its certificate, except
    for the teaching variants, whose refusal by the clients is the lesson (the daemon
    itself is up all the same)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if source(plan, node) in ("expired", "wrong-name", "self-signed"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
