"""Capture every link with tcpdump, then prove things from the packets.

- ``capture``: ``start_captures(specs, outdir)`` -> ``CaptureSet``; ``.stop()`` -> per-link
  tcpdump counters.  ``specs_for_lab(lab)`` derives the specs from a running lab.
- ``pcap``: a fast pure-Python pcap reader; ``parse(path)`` -> flows, streams, datagrams.
- ``analyse``: pure functions over pcaps: ``tls_facts``, ``plaintext_credentials``,
  ``path``, ``nat``, ``dhcp``, ``dns``, and ``analyse_captures`` for ``summary.json``.

The analysis modules never import the runtime: they need only the pcap files (and,
for TLS 1.3 certificates, the clients' key log).
"""

from lab.capture.analyse import (
    analyse_captures,
    analyse_pcap,
    dhcp,
    dns,
    nat,
    nat_mapping,
    path,
    plaintext_credentials,
    tls_facts,
)
from lab.capture.capture import CaptureError, CaptureSet, CaptureStats, LinkCapture, specs_for_lab, start_captures
from lab.capture.pcap import Flow, Parsed, PcapError, flows, parse

__all__ = [
    "CaptureError",
    "CaptureSet",
    "CaptureStats",
    "Flow",
    "LinkCapture",
    "Parsed",
    "PcapError",
    "analyse_captures",
    "analyse_pcap",
    "dhcp",
    "dns",
    "flows",
    "nat",
    "nat_mapping",
    "parse",
    "path",
    "plaintext_credentials",
    "specs_for_lab",
    "start_captures",
    "tls_facts",
]
