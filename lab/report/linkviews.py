"""The link views of report.html: impairments and how they were applied, round trips
measured against the delays, and how the handshakes of each connection grow with
its round trip.

Plain values only; the template lays them out.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def impairments(summary: dict[str, Any]) -> dict[str, Any]:
    """The impaired link ends (what was asked, by which mechanism, what the helper measured) and the run's notes."""
    rows = [r for r in summary.get("impairments") or [] if isinstance(r, dict)]
    cols = ["link", "end", "direction", "delay", "jitter", "loss", "bw", "delay_by", "loss_by"]
    cols += ["held_packets", "late_mean_ms", "helper_cpu_s"]
    used = [c for c in cols if any(r.get(c) not in (None, "") for r in rows)]
    return {
        "columns": used,
        "rows": [["" if r.get(c) is None else str(r.get(c)) for c in used] for r in rows],
        "notes": [str(n) for n in summary.get("notes") or []],
    }


def rtts(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rtt step: the path, the links' delays, the expected and the measured round trip."""
    out = []
    for s in summary.get("steps", []):
        d = s.get("details") or {}
        if s.get("kind") != "rtt" or "expected_ms" not in d:
            continue
        out.append(
            {
                "step": f"{int(s.get('index', 0)):02d}",
                "name": s.get("name", ""),
                "path": " → ".join(str(n) for n in d.get("path", [])),
                "links": ", ".join(d.get("links", [])),
                "expected": f"{d['expected_ms']:.2f}",
                "median": f"{d.get('median_ms', 0):.2f}",
                "min": f"{d.get('min_ms', 0):.2f}",
                "max": f"{d.get('max_ms', 0):.2f}",
                "error": f"{d.get('error_pct', 0):+.1f}%",
                "status": s.get("status", ""),
            }
        )
    return out


def handshakes(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each timed connection (``summary.wire.timings``), slowest round trip last."""
    rows = [t for t in (summary.get("wire") or {}).get("timings", []) if isinstance(t, dict)]
    rows.sort(key=lambda t: (t.get("rtt_ms") or 0, t.get("flow", "")))

    def ms(v: Any) -> str:
        return "" if v is None else f"{float(v):.1f}"

    return [
        {
            "flow": t.get("flow", ""),
            "link": t.get("link", ""),
            "protocol": t.get("protocol") or "",
            "rtt": ms(t.get("rtt_ms")),
            "tcp": ms(t.get("syn_synack_ms")),
            "greeting": ms(t.get("greeting_ms")),
            "tls": ms(t.get("tls_handshake_ms")),
            "tls_start": ms(t.get("tls_start_ms")),
            "total": ms(t.get("total_ms")),
            "rtts": "" if t.get("total_rtts") is None else f"{t['total_rtts']:.1f}",
        }
        for t in rows
    ]


def proxy_logs(summary: dict[str, Any], report_dir: Path) -> list[dict[str, Any]]:
    """Each proxy's access log (Squid's native format) as rows: who asked for what, and
    what the proxy did (TCP_MISS: fetched it; TCP_TUNNEL: CONNECT; TCP_DENIED: refused)."""
    out = []
    for a in summary.get("artefacts", []):
        if a.get("daemon") != "squid" or a.get("kind") != "log" or not str(a.get("path", "")).endswith("access.log"):
            continue
        try:
            text = (Path(report_dir) / str(a["path"])).read_text(errors="replace")
        except OSError:
            continue
        rows = []
        for line in text.splitlines():
            f = line.split()
            if len(f) < 10:
                continue
            try:
                when = time.strftime("%H:%M:%S", time.localtime(float(f[0]))) + f[0][f[0].find(".") :]
            except ValueError:
                when = f[0]
            rows.append(
                {
                    "time": when,
                    "ms": f[1],
                    "client": f[2],
                    "result": f[3],
                    "bytes": f[4],
                    "method": f[5],
                    "url": f[6],
                    "upstream": f[8],
                    "denied": "DENIED" in f[3],
                }
            )
        out.append({"node": a.get("node", ""), "path": a.get("path", ""), "rows": rows})
    return out
