"""Regenerate tests/data/pcap/vpn/ from a run of the VPN lab (root, for the run).

    sudo .venv/bin/lab run scenarios/vpn.yaml --reports /tmp/vpn-run
    .venv/bin/python tests/data/pcap/make_vpn_pcaps.py /tmp/vpn-run/<run-id> [OUTDIR]

Copies three of the run's captures: ``rb-isp.pcap`` (site B's router on the outside:
the campus tunnel's UDP datagrams, nothing else of the tunnel), ``rb-vpn0.pcap`` (the
same router's TUN device: the inner packets, no Ethernet header) and
``student-vpn0.pcap`` (the road warrior's TUN device: its submission to the campus
server's private address).  ``facts.json`` holds what the run's summary said about them:
the tunnel wire checks' flows, the VPNs' ports and the messages sent.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("rb-isp.pcap", "rb-vpn0.pcap", "student-vpn0.pcap")


def main(report: Path, out: Path) -> None:
    summary = json.loads((report / "summary.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(report / "pcap" / name, out / name)
    links = {Path(n).stem for n in FILES}
    tunnels = {}
    for s in summary["steps"]:
        d = s.get("details") or {}
        if s["kind"] == "wire" and "tunnel" in d:
            tunnels[s["name"]] = {
                "tunnel": [x for x in d["tunnel"] if x["link"] in links],
                "inside": [x for x in d["inside"] if x["link"] in links],
            }
    keep = ("sender", "to", "server", "port", "tls", "on")
    facts = {
        "run": summary["run_id"],
        "tunnels": tunnels,
        "messages": {k: {f: m.get(f) for f in keep} for k, m in summary["messages"].items()},
    }
    (out / "facts.json").write_text(json.dumps(facts, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "vpn")
