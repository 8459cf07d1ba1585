"""The captures of one run: tcpdump on every link, then the analysis and the wire checks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lab.deploy.lab import Lab, Progress
from lab.model.scenario import Scenario
from lab.report.results import RunResult, StepResult

log = logging.getLogger(__name__)


class Captures:
    """tcpdump on every link for one run: started once the network exists, stopped
    after the last step, then analysed (pure functions over the pcaps)."""

    def __init__(self, report_dir: Path, say: Progress):
        self.dir = report_dir / "pcap"
        self.say = say
        self.handle: Any = None
        self.links: list[dict[str, Any]] = []
        self.stats: list[dict[str, Any]] = []
        self.macs: dict[str, str] = {}

    def start(self, lab: Lab) -> None:
        from lab.capture.capture import CaptureSpec, start_captures

        assert lab.network is not None
        self.links = lab.network.capture_points()
        self.macs = {n: node.mac or "" for n, node in lab.nodes.items()}
        specs = [CaptureSpec(lk["link"], lk["iface"], lk["netns_pid"]) for lk in self.links]
        self.say(f"capturing {len(specs)} link(s)")
        self.handle = start_captures(specs, self.dir)

    def stop(self) -> None:
        if self.handle is None:
            return
        stats = self.handle.stop()
        self.handle = None
        subnet = {lk["link"]: lk["subnet"] for lk in self.links}
        self.stats = []
        for st in stats:
            d = st.to_dict()
            d["subnet"] = subnet.get(d["link"])
            d["file"] = str(Path(d["file"]).relative_to(self.dir.parent)) if d.get("file") else None
            d.pop("stderr", None)
            self.stats.append(d)

    def analyse(self, result: RunResult, scn: Scenario, lab: Lab, ctx: Any) -> None:

        from lab.capture.analyse import analyse_captures
        from lab.capture.pcap import parse
        from lab.scenario import wire

        base = self.dir.parent
        pcaps = {st["link"]: base / st["file"] for st in self.stats if st.get("file")}
        parsed = {link: parse(path, link=link) for link, path in pcaps.items()}
        keylog = base / "keylog.txt" if (base / "keylog.txt").exists() else None
        analysis = analyse_captures(parsed, keylog)
        (base / "wire.json").write_text(json.dumps(analysis, indent=1, default=str))
        result.captures = self.stats
        shown = mail_flows(analysis, parsed, self.links)
        result.wire = {
            "mail_flows": shown,
            "timings": timings(analysis, parsed, shown),
            "tls": analysis["tls"],
            "credentials": analysis["credentials"],
            "ssh": analysis["ssh"],
            "dhcp": {
                link: v.get("dhcp", {}).get("clients", {})
                for link, v in analysis["links"].items()
                if v.get("dhcp", {}).get("clients")
            },
            "dns": [q for v in analysis["links"].values() for q in v.get("dns", [])][:500],
        }
        if scn.wire is not None:
            for name, out in wire.check(scn.wire, analysis, lab.plan, self.links, parsed, self.macs):
                sr = StepResult(len(result.steps), "wire", name, out.status, message=out.message, details=out.details)
                result.steps.append(sr)
                self.say(f"  {sr.status.upper()} {name}: {sr.message}")
        self._layers(result, analysis, parsed, lab)

    def _layers(self, result: RunResult, analysis: dict[str, Any], parsed: dict[str, Any], lab: Lab) -> None:
        """The packet-by-packet views of the flows the report shows (layers.json): a view,
        so a failure here is a note in the report, never a failed run."""
        from lab.scenario import layersel

        try:
            layersel.write(result, analysis, parsed, lab.plan, self.links, self.macs, self.dir.parent)
        except Exception as exc:
            log.warning("could not build the layer views: %s", exc, exc_info=True)
            result.notes.append(f"the layer views could not be built: {type(exc).__name__}: {exc}")


def mail_flows(analysis: dict[str, Any], parsed: dict[str, Any], links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every mail/HTTPS TCP flow once, with its TLS facts and its path: the links it
    was seen on in order (across NAT, with the addresses there) and the TTL drop."""
    from lab.capture.analyse import path

    subnet = {lk["link"]: lk["subnet"] for lk in links}
    seen: set[str] = set()
    out = []
    for f in sorted(analysis["tls"], key=lambda x: x.get("tls_packet") or 0):
        if f["flow"] in seen or f.get("client_bytes", 1) == 0:
            continue
        p = path(parsed, f["flow"])
        forward = [e for e in p["links"] if e.get("c2s_packets", 0) > 0]
        for e in p["links"]:
            seen.add(e["flow"])
        ttls = [max(e["ttl_c2s"]) for e in forward if e["ttl_c2s"]]
        out.append(
            {
                "flow": f["flow"],
                "protocol": f.get("protocol"),
                "tls": f.get("tls"),
                "mode": f.get("mode"),
                "version": f.get("version"),
                "cipher": f.get("cipher"),
                "sni": f.get("sni"),
                "cert_subject": f.get("cert_subject"),
                "path": [
                    {
                        "link": e["link"],
                        "subnet": subnet.get(e["link"]),
                        "flow": e["flow"],
                        "ttl": max(e["ttl_c2s"]) if e["ttl_c2s"] else None,
                    }
                    for e in forward
                ],
                "routers": (max(ttls) - min(ttls)) if ttls else 0,
            }
        )
    return out


def timings(analysis: dict[str, Any], parsed: dict[str, Any], shown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The handshake phases of each shown flow, on the first link it crossed (its client's)."""
    from lab.capture.analyse import flow_key
    from lab.capture.timing import connection_timings

    tls_at = {(t["link"], t["flow"]): t.get("tls_packet") for t in analysis["tls"]}
    by_link: dict[str, list[dict[str, Any]]] = {}
    for f in shown:
        if not f["path"]:
            continue
        first = f["path"][0]
        by_link.setdefault(first["link"], []).append(
            {
                "key": flow_key(first["flow"]),
                "flow": f["flow"],
                "link": first["link"],
                "protocol": f.get("protocol"),
                "tls_packet": tls_at.get((first["link"], first["flow"])),
            }
        )
    out = []
    for link, flows in by_link.items():
        if link in parsed:
            out += connection_timings(parsed[link], flows)
    return out
