"""Keys made fresh for every run: DKIM signing keys, the mail nodes' TLS keys (their TLSA),
the MTA-STS policy ids, and the DNSSEC keys of every zone a DNS node serves (their DNSKEY, DS and trust anchor).

Made in memory, once per run and on first use, so that whichever service needs a key
first (the DNS server publishing a DKIM or TLSA record at stage 30, or the mail node
signing with it later) gets the same one, and template tests render real values without
touching the disk.  The services write the files their daemons read.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import subprocess
import threading
from dataclasses import dataclass, field

import dns.dnssec
import dns.name
import dns.rdatatype
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lab.model.mtasts import txt_value

DKIM_BITS = 2048
ECDSAP256SHA256 = 13


@dataclass(frozen=True)
class DkimKey:
    domain: str
    private_pem: bytes
    txt: str  # the DNS TXT value: v=DKIM1; k=rsa; p=...


@dataclass(frozen=True)
class ZoneKey:
    """One zone's signing key (a CSK: flags 257, signs everything), as BIND's files hold it."""

    zone: str  # "." or "projet.dz"
    tag: int
    dnskey: str  # "257 3 13 <base64>"
    ds: str  # "<tag> 13 2 <hex>"
    key_file: str  # K<zone>.+013+<tag>.key text
    private_file: str  # K<zone>.+013+<tag>.private text

    @property
    def basename(self) -> str:
        origin = self.zone.rstrip(".") + "." if self.zone != "." else "."
        return f"K{origin}+{ECDSAP256SHA256:03d}+{self.tag:05d}"


def _spki_der(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class LabKeys:
    dkim_keys: dict[str, DkimKey] = field(default_factory=dict)
    tls_keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    zone_keys: dict[tuple[str, str], ZoneKey] = field(default_factory=dict)
    sts_ids: dict[str, str] = field(default_factory=dict)
    _pending: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # services of one stage come up side by side, and two of them may want the same key
    # (both DNS servers publish projet.dz's DKIM key): one lock, so each key is made once
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def prepare(self, domains: list[str]) -> None:
        """Start making the DKIM keys of these domains in the background: an RSA key takes
        0.1 to 0.5 s of CPU, which the network build hides.  ``openssl genpkey`` processes,
        not threads: key generation in this process would hold the interpreter's lock and
        stall the build itself."""
        for d in domains:
            if d not in self.dkim_keys and d not in self._pending:
                self._pending[d] = subprocess.Popen(
                    ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{DKIM_BITS}"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL,
                )

    def dkim(self, domain: str) -> DkimKey:
        with self._lock:
            return self._dkim(domain)

    def _dkim(self, domain: str) -> DkimKey:
        if domain not in self.dkim_keys:
            pending = self._pending.pop(domain, None)
            pem = pending.communicate(timeout=60)[0] if pending is not None else b""
            self.dkim_keys[domain] = _dkim_key(domain, pem)
        return self.dkim_keys[domain]

    def close(self) -> None:
        """Stop key generation nobody used (a bring-up that failed early)."""
        for p in self._pending.values():
            p.kill()
            p.wait()
        self._pending.clear()

    def tls_key(self, node: str) -> ec.EllipticCurvePrivateKey:
        """The key of a mail node's certificate (the lab CA signs it at deploy)."""
        with self._lock:
            if node not in self.tls_keys:
                self.tls_keys[node] = ec.generate_private_key(ec.SECP256R1())
            return self.tls_keys[node]

    def tlsa(self, node: str) -> str:
        """TLSA 3 1 1 (DANE-EE, the SubjectPublicKeyInfo, SHA-256) of a mail node's key."""
        return "3 1 1 " + hashlib.sha256(_spki_der(self.tls_key(node).public_key())).hexdigest()

    def zone_key(self, server: str, zone: str) -> ZoneKey:
        """The key ``server`` signs ``zone`` with (split horizon: each copy has its own)."""
        with self._lock:
            if (server, zone) not in self.zone_keys:
                self.zone_keys[(server, zone)] = _make_zone_key(zone)
            return self.zone_keys[(server, zone)]

    def sts_id(self, domain: str) -> str:
        """The id of a domain's MTA-STS policy (RFC 8461: 1 to 32 letters and digits): new
        every run, as a real domain changes it with every new policy."""
        with self._lock:
            if domain not in self.sts_ids:
                stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
                self.sts_ids[domain] = stamp + secrets.token_hex(4)
            return self.sts_ids[domain]

    def published(self, key: str) -> str | None:
        """The value of a per-run record if this run made it (the report shows it), else
        None: never makes a key only to show it."""
        kind, _, rest = key.partition(":")
        server, _, zone = rest.partition(":")
        made = {
            "dkim": rest in self.dkim_keys,
            "tlsa": rest in self.tls_keys,
            "ds": (server, zone) in self.zone_keys,
            "sts": rest in self.sts_ids,
        }
        return self.fill(key) if made.get(kind) else None

    def fill(self, key: str) -> str:
        """The value of a record the plan marks as made per run (``Record.key``)."""
        kind, _, rest = key.partition(":")
        if kind == "dkim":
            return self.dkim(rest).txt
        if kind == "tlsa":
            return self.tlsa(rest)
        if kind == "sts":
            return txt_value(self.sts_id(rest))
        if kind == "ds":
            server, _, zone = rest.partition(":")
            return self.zone_key(server, zone).ds
        raise ValueError(f"unknown per-run record key {key!r}")


def _dkim_key(domain: str, pem: bytes) -> DkimKey:
    """The key ``openssl genpkey`` made (PEM), or a new one when it made none."""
    try:
        loaded = serialization.load_pem_private_key(pem, password=None) if pem else None
    except ValueError:
        loaded = None
    if isinstance(loaded, rsa.RSAPrivateKey):
        key = loaded
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=DKIM_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    p = base64.b64encode(_spki_der(key.public_key())).decode()
    return DkimKey(domain, pem, f"v=DKIM1; k=rsa; p={p}")


def _make_zone_key(zone: str) -> ZoneKey:
    priv = ec.generate_private_key(ec.SECP256R1())
    name = dns.name.from_text(zone)
    dnskey = dns.dnssec.make_dnskey(priv.public_key(), ECDSAP256SHA256, flags=257)
    tag = dns.dnssec.key_id(dnskey)
    ds = dns.dnssec.make_ds(name, dnskey, "SHA256")
    scalar = priv.private_numbers().private_value.to_bytes(32, "big")
    stamp = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y%m%d%H%M%S")
    owner = name.to_text()
    key_file = (
        f"; This is a key-signing key, keyid {tag}, for {owner}\n"
        f"; made by mail-lab for this run\n{owner} IN DNSKEY {dnskey.to_text()}\n"
    )
    private_file = (
        "Private-key-format: v1.3\n"
        "Algorithm: 13 (ECDSAP256SHA256)\n"
        f"PrivateKey: {base64.b64encode(scalar).decode()}\n"
        f"Created: {stamp}\nPublish: {stamp}\nActivate: {stamp}\n"
    )
    assert dnskey.rdtype == dns.rdatatype.DNSKEY
    return ZoneKey(zone, tag, dnskey.to_text(), ds.to_text(), key_file, private_file)
