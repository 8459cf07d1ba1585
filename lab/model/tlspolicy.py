"""The TLS policy of the lab's servers, as data, and the verdict on what a scanner found.

``intermediate`` is Mozilla's "intermediate" server profile (ssl-config.mozilla.org,
version 5.7): TLS 1.2 and 1.3 only; in TLS 1.2 only forward-secret AEAD suites, so no
anonymous (aNULL), NULL, export, RC4, 3DES or CBC suite.  It applies where TLS is
required (465, 587, 993, 995); port 25 stays opportunistic (RFC 7672).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: the TLS 1.2 suites of the profile, in its order (OpenSSL names)
INTERMEDIATE_TLS12 = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
)
OLD_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")
#: the ports where TLS is required, and so where the profile is held
REQUIRED_TLS_PORTS = (465, 587, 993, 995)

_WEAK = (
    (re.compile(r"^(ADH|AECDH)-|anon|aNULL", re.I), "anonymous (aNULL: the server proves nothing)"),
    (re.compile(r"NULL", re.I), "NULL (no encryption)"),
    (re.compile(r"EXP", re.I), "export-grade"),
    (re.compile(r"RC4", re.I), "RC4"),
    (re.compile(r"DES-CBC3|3DES|(^|-)DES-", re.I), "3DES/DES"),
    (re.compile(r"MD5", re.I), "MD5"),
)
_AEAD = re.compile(r"GCM|CHACHA20|CCM|POLY1305", re.I)


@dataclass(frozen=True)
class Offered:
    """What a scanner found one port to accept."""

    protocols: dict[str, bool]  # "TLSv1.2": True ...
    ciphers: list[tuple[str, str]]  # (protocol, OpenSSL name) accepted


def weakness(protocol: str, cipher: str) -> str | None:
    """Why a suite breaks the intermediate profile, or None."""
    for pattern, why in _WEAK:
        if pattern.search(cipher):
            return why
    if protocol in OLD_PROTOCOLS:
        return f"offered over {protocol}"
    if protocol == "TLSv1.2" and not _AEAD.search(cipher):
        return "CBC in TLS 1.2 (not AEAD)"
    return None


def violations(found: Offered) -> list[str]:
    """Every way a port breaks the intermediate profile (empty: it holds)."""
    out = [f"{p} enabled" for p in OLD_PROTOCOLS if found.protocols.get(p)]
    if not found.protocols.get("TLSv1.2") and not found.protocols.get("TLSv1.3"):
        out.append("neither TLS 1.2 nor TLS 1.3 is offered")
    for proto, name in found.ciphers:
        why = weakness(proto, name)
        if why:
            out.append(f"{proto} {name}: {why}")
    return out
