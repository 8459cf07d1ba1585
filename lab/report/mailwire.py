"""The captured connections a mail trace's hops made: the flows, matched to the hops.

The flows come from the summary: ``wire.mail_flows`` (every mail and web connection of
the run once, as its client's link saw it), the facts of the wire checks (steps of kind
``wire``) and, in summaries of older runs, ``wire`` as a plain list.  A connection seen
on several links is attached once: where it was first listed.
"""

from __future__ import annotations

import re
from typing import Any

FLOW_RE = re.compile(r"^(?P<proto>\w+) (?P<c>[\d.]+):(?P<cp>\d+) > (?P<s>[\d.]+):(?P<sp>\d+)")


def wire_flows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every flow the summary knows a mail hop could have made, each once."""
    wire = summary.get("wire")
    if wire is None and isinstance(summary.get("capture"), dict):
        wire = summary["capture"].get("wire") or summary["capture"].get("flows")
    flows: list[dict[str, Any]] = []
    if isinstance(wire, dict):
        for f in wire.get("mail_flows") or []:
            if isinstance(f, dict) and f.get("path"):
                first = f["path"][0]
                names = [str(e.get("flow")) for e in f["path"] if e.get("flow")]
                rest = {k: v for k, v in f.items() if k != "path"}
                # named as its first link saw it; matched by every name it had (NAT renames it)
                flows.append(
                    {**rest, "flow": first.get("flow", f.get("flow")), "link": first.get("link"), "names": names}
                )
    elif isinstance(wire, list):
        flows = [f for f in wire if isinstance(f, dict)]
    # wire assertions (steps of kind "wire") carry the facts of the flows they checked
    for step in summary.get("steps", []):
        details = step.get("details") or {}
        if step.get("kind") == "wire" and isinstance(details.get("flows"), list):
            flows.extend(f for f in details["flows"] if isinstance(f, dict))
    seen, out = set(), []
    for f in flows:
        key = str(f.get("flow"))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def attach_wire(hops: list[dict[str, Any]], flows: list[dict[str, Any]]) -> None:
    """``hop["wire"]``: the flows to the hop's port from its client, else (its client's
    address rewritten by NAT on the way) those to its server."""
    parsed = []
    for f in flows:
        for name in f.get("names") or [str(f.get("flow", ""))]:
            m = FLOW_RE.match(name)
            if m:
                parsed.append((m["c"], m["s"], int(m["sp"]), f))
        if not f.get("names") and not FLOW_RE.match(str(f.get("flow", ""))) and f.get("server"):
            if f.get("sport") is not None:
                parsed.append((str(f.get("client", "")), str(f["server"]), int(f["sport"]), f))
    for hop in hops:
        port, client, server = hop.get("port"), hop.get("client"), hop.get("server")
        if hop["stage"] not in ("submitted", "received", "relay", "fetch") or port is None:
            continue
        # the hop's own client first: a server's address alone matches every client's connection
        match = [f for c, _, sp, f in parsed if sp == port and client and c == client]
        match = match or [f for _, s, sp, f in parsed if sp == port and server and s == server]
        if match:
            hop["wire"] = list({id(f): f for f in match}.values())
