"""TLS records and handshakes, read from reassembled TCP streams.

A small parser of its own rather than scapy's TLS layer: scapy binds TLS to port 443
only and a STARTTLS stream begins in plaintext (docs/architecture.md, "Facts measured on this machine"); here the caller
hands over the bytes where TLS begins, whatever the port.

What is visible without secrets: the ClientHello (SNI, offered versions, ALPN), the
ServerHello (negotiated version and cipher) and, up to TLS 1.2, the server's
Certificate message.  TLS 1.3 encrypts the certificate; with the client's key log
(NSS ``SSLKEYLOGFILE`` format, written by Python's ``SSLContext.keylog_filename``) the
server's handshake records are decrypted here to read it.  Postfix and Dovecot write no
key log, so a server-to-server relay in TLS 1.3 keeps its certificate hidden.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA = 20, 21, 22, 23
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_ENCRYPTED_EXTENSIONS, HS_CERTIFICATE, HS_FINISHED = 1, 2, 8, 11, 20

VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
HANDSHAKE_RECORDS = 8  # encrypted records read per direction: TLS 1.3's encrypted handshake fits
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

# (IANA name, OpenSSL name) of the suites a Debian 12 OpenSSL negotiates
CIPHERS: dict[int, tuple[str, str]] = {
    0x1301: ("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
    0x1302: ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    0x1303: ("TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
    0x1304: ("TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_SHA256"),
    0xC02B: ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    0xC02C: ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    0xC02F: ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
    0xC030: ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
    0xCCA8: ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
    0xCCA9: ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"),
    0xCCAA: ("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "DHE-RSA-CHACHA20-POLY1305"),
    0xC009: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"),
    0xC00A: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"),
    0xC013: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"),
    0xC014: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"),
    0xC023: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"),
    0xC024: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "ECDHE-ECDSA-AES256-SHA384"),
    0xC027: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"),
    0xC028: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ECDHE-RSA-AES256-SHA384"),
    0x009E: ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256"),
    0x009F: ("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "DHE-RSA-AES256-GCM-SHA384"),
    0x009C: ("TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"),
    0x009D: ("TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"),
    0x002F: ("TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"),
    0x0035: ("TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"),
}
ALERTS = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    112: "unrecognized_name",
    116: "certificate_required",
    120: "no_application_protocol",
}


def cipher_name(code: int) -> str:
    return CIPHERS.get(code, (f"0x{code:04X}", ""))[0]


@dataclass
class Record:
    type: int
    version: int
    offset: int  # of the record header within the data handed in
    body: bytes


_RECHDR = struct.Struct("!BHH")
_CTYPES = frozenset({CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA, 24})


def records(data: bytes, encrypted: int = 1 << 30) -> tuple[list[Record], int]:
    """Split ``data`` into TLS records; returns them and where parsing stopped.

    Stops after ``encrypted`` application-data records: the handshake facts never need
    more than the first few, and a 64 KB stream can hold hundreds.
    """
    out: list[Record] = []
    off, end = 0, len(data)
    unpack = _RECHDR.unpack_from
    seen = 0
    while off + 5 <= end:
        ctype, ver, ln = unpack(data, off)
        if ctype not in _CTYPES or ver >> 8 != 3 or off + 5 + ln > end:
            break
        out.append(Record(ctype, ver, off, data[off + 5 : off + 5 + ln]))
        off += 5 + ln
        if ctype == CT_APPDATA:
            seen += 1
            if seen >= encrypted:
                break
    return out, off


def looks_like_tls(data: bytes) -> bool:
    return len(data) >= 3 and data[0] == CT_HANDSHAKE and data[1] == 3 and data[2] <= 4


def handshake_messages(buf: bytes) -> list[tuple[int, bytes]]:
    out = []
    off = 0
    while off + 4 <= len(buf):
        typ = buf[off]
        ln = int.from_bytes(buf[off + 1 : off + 4], "big")
        if off + 4 + ln > len(buf):
            break
        out.append((typ, buf[off + 4 : off + 4 + ln]))
        off += 4 + ln
    return out


@dataclass
class Hello:
    random: bytes = b""
    legacy_version: int = 0
    ciphers: list[int] = field(default_factory=list)  # the server's choice
    offered: list[int] = field(default_factory=list)  # the client's offer
    versions: list[int] = field(default_factory=list)  # supported_versions extension
    sni: str | None = None
    alpn: list[str] = field(default_factory=list)
    hrr: bool = False


def parse_hello(body: bytes, client: bool) -> Hello:
    h = Hello()
    try:
        h.legacy_version = int.from_bytes(body[0:2], "big")
        h.random = body[2:34]
        h.hrr = not client and h.random == HRR_RANDOM
        off = 34
        sid = body[off]
        off += 1 + sid
        if client:
            n = int.from_bytes(body[off : off + 2], "big")
            h.offered = [int.from_bytes(body[i : i + 2], "big") for i in range(off + 2, off + 2 + n - 1, 2)]
            off += 2 + n
            off += 1 + body[off]  # compression methods
        else:
            h.ciphers = [int.from_bytes(body[off : off + 2], "big")]
            off += 3  # cipher + compression method
        if off + 2 > len(body):
            return h
        ext_end = off + 2 + int.from_bytes(body[off : off + 2], "big")
        off += 2
        while off + 4 <= ext_end:
            et, ln = struct.unpack_from("!HH", body, off)
            ed = body[off + 4 : off + 4 + ln]
            off += 4 + ln
            if et == 0 and client and len(ed) >= 5:  # server_name
                n = int.from_bytes(ed[3:5], "big")
                h.sni = ed[5 : 5 + n].decode(errors="replace")
            elif et == 43:  # supported_versions
                if client:
                    h.versions = [int.from_bytes(ed[i : i + 2], "big") for i in range(1, 1 + ed[0], 2)]
                else:
                    h.versions = [int.from_bytes(ed[0:2], "big")]
            elif et == 16 and len(ed) >= 2:  # ALPN
                i = 2
                while i < len(ed):
                    n = ed[i]
                    h.alpn.append(ed[i + 1 : i + 1 + n].decode(errors="replace"))
                    i += 1 + n
    except (IndexError, struct.error):
        pass
    return h


# -- certificates ------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def cert_facts(der: bytes) -> dict[str, Any]:
    """Subject, CN, SANs, issuer and expiry of a DER certificate (cached: a lab has few)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return {"error": f"unreadable certificate: {exc}"}
    out: dict[str, Any] = {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string()}
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    out["cn"] = str(cn[0].value) if cn else None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out["san"] = [
            *san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        ]
    except x509.ExtensionNotFound:
        out["san"] = []
    out["not_after"] = cert.not_valid_after_utc.isoformat()
    out["serial"] = format(cert.serial_number, "x")
    return out


def certificate_list(body: bytes, tls13: bool) -> list[bytes]:
    """DER certificates of a Certificate handshake message."""
    off = 0
    if tls13:
        off = 1 + body[0]  # certificate_request_context
    end = off + 3 + int.from_bytes(body[off : off + 3], "big")
    off += 3
    out = []
    while off + 3 <= min(end, len(body)):
        n = int.from_bytes(body[off : off + 3], "big")
        out.append(body[off + 3 : off + 3 + n])
        off += 3 + n
        if tls13:
            off += 2 + int.from_bytes(body[off : off + 2], "big")  # per-certificate extensions
    return out


# -- key log and TLS 1.3 decryption ----------------------------------------------------------
KeyLog = dict[tuple[str, bytes], bytes]


def read_keylog(paths: str | Path | Iterable[str | Path] | None) -> KeyLog:
    """Parse NSS key log files: ``LABEL <client_random hex> <secret hex>`` per line."""
    if paths is None:
        return {}
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: KeyLog = {}
    for p in paths:
        if not Path(p).is_file():  # no TLS client ran, so none wrote a secret
            continue
        for line in Path(p).read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) != 3 or line.startswith("#"):
                continue
            try:
                out[(parts[0], bytes.fromhex(parts[1]))] = bytes.fromhex(parts[2])
            except ValueError:
                continue
    return out


def _hkdf_expand_label(secret: bytes, label: str, length: int, hash_name: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    full = b"tls13 " + label.encode()
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    algo = hashes.SHA384() if hash_name == "sha384" else hashes.SHA256()
    return HKDFExpand(algorithm=algo, length=length, info=info).derive(secret)


def decrypt_tls13(recs: list[Record], secret: bytes, suite: int) -> tuple[bytes, list[int], str | None]:
    """Decrypt a direction's encrypted records (type 23) with a traffic secret.

    Returns (handshake bytes, inner content types, error).  Decryption stops at the
    first record that does not authenticate (the next key epoch has begun).
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

    hash_name = "sha384" if suite == 0x1302 else "sha256"
    aead_cls: type[ChaCha20Poly1305] | type[AESGCM] | type[AESCCM]
    if suite == 0x1303:
        key_len, aead_cls = 32, ChaCha20Poly1305
    elif suite == 0x1302:
        key_len, aead_cls = 32, AESGCM
    elif suite in (0x1301,):
        key_len, aead_cls = 16, AESGCM
    elif suite == 0x1304:
        key_len, aead_cls = 16, AESCCM
    else:
        return b"", [], f"cipher {cipher_name(suite)} is not a TLS 1.3 suite this decoder knows"
    key = _hkdf_expand_label(secret, "key", key_len, hash_name)
    iv = _hkdf_expand_label(secret, "iv", 12, hash_name)
    aead = aead_cls(key)
    hs = bytearray()
    types: list[int] = []
    seq = 0
    from cryptography.exceptions import InvalidTag

    for r in recs:
        if r.type != CT_APPDATA:
            continue
        nonce = bytes(a ^ b for a, b in zip(iv, seq.to_bytes(12, "big")))
        aad = struct.pack("!BHH", r.type, r.version, len(r.body))
        try:
            plain = aead.decrypt(nonce, r.body, aad)
        except InvalidTag:
            if seq == 0:
                return b"", [], "the key log secret does not decrypt this connection"
            break
        seq += 1
        inner = plain.rstrip(b"\x00")
        if not inner:
            continue
        ctype = inner[-1]
        types.append(ctype)
        if ctype == CT_HANDSHAKE:
            hs += inner[:-1]
            if any(t == HS_FINISHED for t, _ in handshake_messages(bytes(hs))):
                break
        else:
            break
    return bytes(hs), types, None


# -- one connection ----------------------------------------------------------------------------
def _plain_handshake(recs: list[Record]) -> tuple[bytes, dict[str, Any] | None, bool, bool]:
    """Handshake bytes sent in clear, a clear alert if any, CCS seen, encrypted data seen."""
    hs = bytearray()
    alert = None
    ccs = enc = False
    for r in recs:
        if r.type == CT_HANDSHAKE and not ccs and not enc:
            hs += r.body
        elif r.type == CT_ALERT and not ccs and not enc and len(r.body) == 2:
            alert = {
                "level": "fatal" if r.body[0] == 2 else "warning",
                "description": ALERTS.get(r.body[1], str(r.body[1])),
            }
        elif r.type == CT_CCS:
            ccs = True
        elif r.type == CT_APPDATA:
            enc = True
    return bytes(hs), alert, ccs, enc


def _server_certificates(
    out: dict[str, Any],
    vcode: int,
    suite: int,
    ch: Hello | None,
    smsgs: list[tuple[int, bytes]],
    srecs: list[Record],
    keylog: KeyLog | None,
) -> list[bytes]:
    """The server's certificate chain (DER, leaf first), or [] with ``out["cert_note"]`` saying why.

    Where the certificate can be read depends on the version: in clear up to TLS 1.2,
    only through the key log in TLS 1.3; each way has its own reasons to come back
    empty, and ``out`` records which way was taken (``cert_source``, ``decrypted``,
    ``client_random``) so a report can tell the student what to do.
    """
    if vcode < 0x0304:
        msg = next((b for t, b in smsgs if t == HS_CERTIFICATE), None)
        if msg is None:
            out["cert_note"] = "no Certificate message (resumed session, or captured mid-way)"
            return []
        out["cert_source"] = "clear (TLS 1.2 Certificate message)"
        return certificate_list(msg, tls13=False)
    if ch is None:
        out["cert_note"] = "TLS 1.3 encrypts the certificate; the ClientHello is missing"
        return []
    secret = (keylog or {}).get(("SERVER_HANDSHAKE_TRAFFIC_SECRET", ch.random))
    if secret is None:
        note = "TLS 1.3 encrypts the certificate; no key log entry for this connection's client random"
        out["cert_note"] = note + (" (no key log given)" if not keylog else "")
        out["client_random"] = ch.random.hex()
        return []
    hs, _types, err = decrypt_tls13(srecs, secret, suite)
    if err:
        out["cert_note"] = err
        return []
    out["decrypted"] = True
    msg = next((b for t, b in handshake_messages(hs) if t == HS_CERTIFICATE), None)
    if msg is None:
        out["cert_note"] = "decrypted, but no Certificate message (PSK resumption)"
        return []
    out["cert_source"] = "decrypted with the client's key log"
    return certificate_list(msg, tls13=True)


def analyse_tls(c2s: bytes, s2c: bytes, keylog: KeyLog | None = None) -> dict[str, Any]:
    """Facts of one TLS connection from its two directions, starting at the first record."""
    out: dict[str, Any] = {"version": None, "cipher": None, "sni": None}
    # the handshake and the first encrypted records are all that is needed
    crecs, _ = records(c2s, HANDSHAKE_RECORDS)
    srecs, _ = records(s2c, HANDSHAKE_RECORDS)
    chs, calert, _, cenc = _plain_handshake(crecs)
    shs, salert, sccs, senc = _plain_handshake(srecs)
    ch = next((parse_hello(b, True) for t, b in handshake_messages(chs) if t == HS_CLIENT_HELLO), None)
    smsgs = handshake_messages(shs)
    hellos = [parse_hello(b, False) for t, b in smsgs if t == HS_SERVER_HELLO]
    if any(h.hrr for h in hellos) and not [h for h in hellos if not h.hrr]:
        # after a HelloRetryRequest the real ServerHello follows the CCS: look again
        more = bytearray()
        for r in srecs:
            if r.type == CT_HANDSHAKE:
                more += r.body
        smsgs = handshake_messages(bytes(more))
        hellos = [parse_hello(b, False) for t, b in smsgs if t == HS_SERVER_HELLO]
        out["hello_retry"] = True
    sh = next((h for h in hellos if not h.hrr), None)
    if ch is not None:
        out["sni"] = ch.sni
        out["client_versions"] = [VERSIONS.get(v, hex(v)) for v in (ch.versions or [ch.legacy_version])]
        # the suites offered, without the GREASE and signalling values (0x?A?A, 0x00FF, 0x5600)
        out["client_ciphers"] = [
            cipher_name(c) for c in ch.offered if (c & 0x0F0F) != 0x0A0A and c not in (0x00FF, 0x5600)
        ]
        if ch.alpn:
            out["alpn_offered"] = ch.alpn
    if sh is None:
        out["handshake"] = "no ServerHello" if ch else "no ClientHello"
        if salert or calert:
            out["alert"] = salert or calert
        return out
    vcode = sh.versions[0] if sh.versions else sh.legacy_version
    out["version"] = VERSIONS.get(vcode, hex(vcode))
    suite = sh.ciphers[0]
    out["cipher"] = cipher_name(suite)
    out["cipher_openssl"] = CIPHERS.get(suite, ("", ""))[1] or None
    out["cipher_code"] = f"0x{suite:04X}"
    if salert or calert:
        out["alert"] = salert or calert
    out["handshake_complete"] = bool(senc and cenc) or (vcode < 0x0304 and sccs and cenc)
    out["cert_visible"] = False
    certs = _server_certificates(out, vcode, suite, ch, smsgs, srecs, keylog)
    if certs:
        leaf = dict(cert_facts(certs[0]))
        out["cert_visible"] = "error" not in leaf
        out["cert_subject"] = leaf.get("subject")
        out["cert_cn"] = leaf.get("cn")
        out["cert_san"] = leaf.get("san", [])
        out["cert_issuer"] = leaf.get("issuer")
        out["cert_not_after"] = leaf.get("not_after")
        out["cert_serial"] = leaf.get("serial")
        out["cert_chain_length"] = len(certs)
    return out
