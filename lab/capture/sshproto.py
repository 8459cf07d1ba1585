"""What an SSH session shows on the wire: the version exchange, the key exchange in
clear, then nothing readable.

An SSH connection begins with one text line from each side (``SSH-2.0-OpenSSH_9.2p1
...``), then binary packets (RFC 4253: uint32 length, padding length, payload whose
first byte is the message type) sent in clear until each side's NEWKEYS (type 21);
every byte after that is encrypted.  ``ssh_facts`` finds both banners and both NEWKEYS
and measures the longest printable run after them: a command or its output in clear
would show as a long run, ciphertext almost never holds 24 printable bytes in a row.
"""

from __future__ import annotations

import re
from typing import Any

from lab.capture.pcap import C2S, S2C, Flow

MSG_NEWKEYS = 21
#: a printable run this long after NEWKEYS is text, not ciphertext ((95/256)^24 ~ 4e-11 a byte)
READABLE_RUN = 24
_PRINTABLE = re.compile(rb"[\x20-\x7e]{%d,}" % READABLE_RUN)


def _side(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"banner": None, "newkeys_at": None, "messages": []}
    end = data.find(b"\n")
    if not data.startswith(b"SSH-") or end < 0:
        return out
    out["banner"] = data[:end].rstrip(b"\r").decode(errors="replace")
    off = end + 1
    while off + 6 <= len(data) and len(out["messages"]) < 16:
        length = int.from_bytes(data[off : off + 4], "big")
        if not 1 <= length <= 35000:
            break
        kind = data[off + 5]
        out["messages"].append(kind)
        off += 4 + length
        if kind == MSG_NEWKEYS:
            out["newkeys_at"] = off
            break
    return out


def ssh_facts(flow: Flow) -> dict[str, Any]:
    """The version exchange, whether both sides switched to encryption (NEWKEYS), and
    the longest readable text after it, per direction."""
    out: dict[str, Any] = {"flow": flow.name, "link": flow.link}
    for name, direction in (("client", C2S), ("server", S2C)):
        data = flow.stream(direction).data
        side = _side(data)
        at = side["newkeys_at"]
        runs = [m.group(0) for m in _PRINTABLE.finditer(data, at)] if at is not None else []
        out[name] = {
            "banner": side["banner"],
            "encrypted_after": at,
            "bytes": len(data),
            "readable_after_kex": [r[:60].decode(errors="replace") for r in runs[:3]],
        }
    out["encrypted"] = all(out[n]["encrypted_after"] is not None for n in ("client", "server"))
    out["readable"] = any(out[n]["readable_after_kex"] for n in ("client", "server"))
    return out
