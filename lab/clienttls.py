"""TLS for the lab's protocol clients: a context that trusts only the lab's CA (and
logs its secrets when asked), and the facts of a session the reports quote."""

from __future__ import annotations

import ssl
from typing import Any


def tls_context(ca_file: str, keylog: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)  # verification stays on
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if keylog:
        ctx.keylog_filename = keylog
    return ctx


def tls_facts(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    try:
        cipher = obj.cipher()
        cert = obj.getpeercert() or {}
        return {
            "tls_version": obj.version(),
            "cipher": cipher[0] if cipher else None,
            "peer_subject": dict(x[0] for x in cert.get("subject", ())).get("commonName"),
            "peer_san": [v for k, v in cert.get("subjectAltName", ())],
        }
    except Exception:
        return {}
