"""The network views of report.html: the firewall matrix as a zones x zones grid, the
links a run cut, and the flows a reader can light up on the diagram.

Plain values only (the template lays them out).  A flow is a named set of topology
link indexes and node names: from a wire path step (the links its packets were seen
on), a traceroute path step (its hops, joined through the switches between them) or a
traced mail's relays (the links its SMTP connections crossed).
"""

from __future__ import annotations

from typing import Any

from lab.model.paths import links_between
from lab.model.plan import Plan


def cuts(summary: dict[str, Any]) -> dict[int, str]:
    """Link index -> "down at step 04, up again at step 07" for every link a step cut."""
    out: dict[int, str] = {}
    for s in summary.get("steps", []):
        d = s.get("details") or {}
        if s.get("kind") != "link" or not isinstance(d.get("link"), int) or s.get("status") != "passed":
            continue
        k, idx = d["link"], f"{int(s.get('index', 0)):02d}"
        if d.get("state") == "down":
            out[k] = f"down at step {idx}"
        elif k in out:
            out[k] += f", up again at step {idx}"
    return out


def _link_index(plan: Plan) -> dict[str, int]:
    names = {}
    for k, link in enumerate(plan.topology.data.links):
        names[f"{link.a}-{link.b}"] = k
        names[f"{link.b}-{link.a}"] = k
    return names


def _hop_flow(plan: Plan, s: dict[str, Any]) -> dict[str, Any] | None:
    d = s.get("details") or {}
    start = str(d.get("source") or str(s.get("name", "")).split(":", 1)[0])
    hops = [h.get("node") for h in d.get("hops", []) if isinstance(h, dict)]
    nodes = [n for n in [start, *hops] if isinstance(n, str) and n in plan.nodes]
    if len(nodes) < 2:
        return None
    links = [k for a, b in zip(nodes, nodes[1:]) for k in links_between(plan, a, b)]
    return {"nodes": nodes, "links": links}


def _wire_flow(plan: Plan, s: dict[str, Any]) -> dict[str, Any] | None:
    names = _link_index(plan)
    seen = [x.get("link") for x in (s.get("details") or {}).get("links", []) if isinstance(x, dict)]
    links = [names[n] for n in seen if n in names]
    if not links:
        return None
    ends = {e for k in links for e in (plan.topology.data.links[k].a, plan.topology.data.links[k].b)}
    return {"nodes": sorted(n for n in ends if plan.nodes[n].role != "switch"), "links": links}


def flows(summary: dict[str, Any], plan: Plan | None, traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every flow of the run that the diagram can highlight: name, links, nodes."""
    if plan is None:
        return []
    out = []
    for s in summary.get("steps", []):
        kind = s.get("kind")
        name = str(s.get("name", ""))
        flow = _hop_flow(plan, s) if kind == "path" else _wire_flow(plan, s) if kind == "wire" else None
        if flow:
            out.append({"name": f"{int(s.get('index', 0)):02d} {name}", **flow})
    names = _link_index(plan)
    for t in traces:
        links = sorted(
            {names[w["link"]] for h in t.get("hops", []) for w in h.get("wire", []) if w.get("link") in names}
        )
        nodes = sorted({h["node"] for h in t.get("hops", []) if h.get("node") in plan.nodes})
        if links or len(nodes) > 1:
            out.append({"name": f"mail {t.get('label', '')}", "links": links, "nodes": nodes})
    for f in out:
        f["links_attr"] = " ".join(str(k) for k in f["links"])
        f["nodes_attr"] = " ".join(f["nodes"])
    return out


def matrices(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each firewall_matrix step as a grid: rows are source zones, columns destinations,
    a cell lists its ports (policy, what the probe saw, whether they agree); a cell
    with notes gets their numbers, the notes (each said once) stand under the grid."""
    out = []
    for s in summary.get("steps", []):
        d = s.get("details") or {}
        if s.get("kind") != "firewall_matrix" or not isinstance(d.get("matrix"), list):
            continue
        zones: list[str] = []
        for r in d["matrix"]:
            for z in (r.get("from"), r.get("to")):
                if z not in zones:
                    zones.append(z)
        cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
        marks: dict[tuple[str, str], list[str]] = {}
        notes: list[str] = []
        for r in d["matrix"]:
            pair = (r["from"], r["to"])
            text = f"{r['from']} → {r['to']}: {r['note']}" if r.get("note") else ""
            if text and text not in notes:
                notes.append(text)
            if text and str(notes.index(text) + 1) not in marks.setdefault(pair, []):
                marks[pair].append(str(notes.index(text) + 1))
            cells.setdefault(pair, []).append(
                {
                    "port": r.get("port", ""),
                    "policy": r.get("policy", ""),
                    "seen": r.get("seen", ""),
                    "ok": bool(r.get("ok")),
                }
            )
        reps = d.get("representatives") or {}
        out.append(
            {
                "step": f"{int(s.get('index', 0)):02d}",
                "name": s.get("name", ""),
                "zones": [{"name": z, "host": reps.get(z, "")} for z in zones],
                "rows": [
                    [
                        {"ports": cells.get((a, b), []), "notes": marks.get((a, b), [])} if a != b else None
                        for b in zones
                    ]
                    for a in zones
                ],
                "notes": notes,
                "missing": d.get("zones_without_a_host") or [],
            }
        )
    return out
