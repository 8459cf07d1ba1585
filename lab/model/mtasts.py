"""MTA-STS (RFC 8461): what a domain publishes so that senders insist on verified TLS.

Two things, both derived from the topology: a DNS record ``_mta-sts.<domain> TXT
"v=STSv1; id=..."`` (its id is made per run: ``Record.key = "sts:<domain>"``) and a
policy file served over HTTPS at ``https://mta-sts.<domain>/.well-known/mta-sts.txt``
naming the domain's MX hosts.  A sender that found both (``mta-sts-daemon`` beside its
Postfix) relays to those hosts only over TLS with a certificate it can verify, so a
middlebox hiding STARTTLS gets the message deferred, never sent in clear.  It needs no
DNSSEC: the trust comes from the web PKI (here the run's lab CA).
"""

from __future__ import annotations

STS_HOST = "mta-sts"  # the policy's host name in every domain (RFC 8461 section 3.3)
STS_RECORD = "_mta-sts"
WELL_KNOWN = "/.well-known/mta-sts.txt"
MODE = "enforce"
MAX_AGE = 86400  # one day: the resolver caches it that long
RESOLVER_PORT = 8461  # mta-sts-daemon's socketmap, on the mail node's loopback


def policy_text(mx: list[str]) -> str:
    """The policy file: CRLF line ends as RFC 8461 writes them (LF is accepted too)."""
    lines = ["version: STSv1", f"mode: {MODE}", *(f"mx: {h}" for h in mx), f"max_age: {MAX_AGE}"]
    return "\r\n".join(lines) + "\r\n"


def txt_value(policy_id: str) -> str:
    return f"v=STSv1; id={policy_id}"
