"""A lab certificate authority made fresh for every run.

Clients verify servers against this CA: verification is never turned off.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class ServerCert:
    cert: Path
    key: Path
    names: list[str]


class LabCA:
    def __init__(self, directory: Path, name: str = "mail-lab CA"):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mail-lab")]
        )
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = self.dir / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def trust(self, pem: bytes) -> None:
        """Add another authority (the lab's ACME CA) to the bundle every client trusts."""
        with open(self.ca_file, "ab") as f:
            f.write(pem if pem.endswith(b"\n") else pem + b"\n")

    def issue(
        self,
        hostname: str,
        alt_names: list[str],
        ips: list[str],
        directory: Path,
        key: ec.EllipticCurvePrivateKey | None = None,
        *,
        client: bool = False,
        variant: str = "lab-ca",
        name: str | None = None,
    ) -> ServerCert:
        """A certificate for ``hostname`` signed by this CA: a server's (``key`` when its
        public key is already published, TLSA), or with ``client`` a TLS client's (a VPN
        end); the teaching variants ``expired`` (ended yesterday), ``wrong-name`` (for
        another host) and ``self-signed`` (signed by its own key)."""
        directory.mkdir(parents=True, exist_ok=True)
        key = key or ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        names = [hostname, *alt_names]
        if variant == "wrong-name":
            names, ips = [f"www.wrong-{hostname.split('.', 1)[0]}.invalid"], []
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(names)]
        sans += [x509.IPAddress(ipaddress.IPv4Address(i)) for i in ips]
        start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=30)
        if variant == "expired":
            start, end = now - dt.timedelta(days=90), now - dt.timedelta(days=1)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        signer, issuer = (key, subject) if variant == "self-signed" else (self.key, self.cert.subject)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # OpenVPN's remote-cert-tls checks the key usage: an EC key signs (ECDHE_ECDSA)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_agreement=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .sign(signer, hashes.SHA256())
        )
        cert_file = directory / f"{name or hostname}.pem"
        key_file = directory / f"{name or hostname}.key"
        # full chain: servers send the CA too
        chain = b"" if variant == "self-signed" else self.cert.public_bytes(serialization.Encoding.PEM)
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + chain)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)
        return ServerCert(cert_file, key_file, [hostname, *alt_names])
