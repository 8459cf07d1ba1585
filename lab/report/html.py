"""report.html: one self-contained page per run, for people.

Everything the page shows is prepared here as plain values; the template
(``templates/report.html.j2``, autoescaped) only lays them out.  The page embeds its
CSS and the topology SVG, shows every rendered config inline and links the logs,
captures and machine-readable files by relative path, so the report folder can be
copied or opened offline as it is.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from lab.model.plan import Plan
from lab.report import layerview, linkviews, mailtrace, netviews
from lab.report.svg import topology_svg

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
CONFIG_LIMIT = 256 * 1024  # bytes of one config shown inline
LOG_LIMIT = 512 * 1024  # bytes of one log embedded (its first part; the file has the rest)
STATUS_MARK = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _secs(value: Any) -> str:
    try:
        return f"{float(value):.2f} s"
    except (TypeError, ValueError):
        return "–"


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1048576:.1f} MiB"


def _table(rows: list[dict[str, Any]], prefer: tuple[str, ...] = ()) -> dict[str, Any]:
    """Columns (preferred first, then in order of appearance) and cells as strings."""
    cols = [c for c in prefer if any(c in r for r in rows)]
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    cells = [[_cell(r.get(c, "")) for c in cols] for r in rows]
    return {"columns": cols, "rows": cells}


def _cell(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True, default=str)
    return "" if v is None else str(v)


class _Readable(yaml.SafeDumper):
    """YAML for people: text with newlines as literal blocks, no sorting, no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value.replace("\r\n", "\n"), style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Readable.add_representer(str, _text)
_Readable.add_multi_representer(list, lambda d, v: d.represent_list(list(v)))


def readable(value: Any) -> str:
    """A step's details as YAML a student can read (not JSON with escaped newlines)."""
    try:
        return yaml.dump(value, Dumper=_Readable, sort_keys=False, allow_unicode=True, width=100)
    except yaml.YAMLError:
        return json.dumps(value, indent=2, default=str)


def _dialogue(lines: Any) -> list[dict[str, str]]:
    """C:/S:/-- lines of a client's dialogue, each with who said it."""
    if not isinstance(lines, list):
        return []
    who = {"C: ": "client", "S: ": "server", "-- ": "note"}
    return [{"who": who.get(str(x)[:3], "note"), "text": str(x)} for x in lines]


def _steps(summary: dict[str, Any], report_dir: Path | None = None) -> list[dict[str, Any]]:
    out = []
    for s in summary.get("steps", []):
        status = str(s.get("status", ""))
        details = s.get("details") or {}
        tb = details.get("traceback") if isinstance(details, dict) else None
        hidden = ("traceback", "dialogue")
        shown = {k: v for k, v in details.items() if k not in hidden} if isinstance(details, dict) else details
        out.append(
            {
                "index": f"{int(s.get('index', 0)):02d}",
                "kind": s.get("kind", ""),
                "name": s.get("name", ""),
                "status": status,
                "mark": STATUS_MARK.get(status, status.upper()),
                "bad": status in ("failed", "error"),
                "duration": _secs(s.get("duration")),
                "message": s.get("message", ""),
                "line": s.get("line"),
                "details": readable(shown) if shown else "",
                "dialogue": _dialogue(details.get("dialogue")) if isinstance(details, dict) else [],
                "traceback": tb or "",
                "shots": _shots(details, report_dir),
            }
        )
    return out


def _shots(details: Any, report_dir: Path | None) -> list[dict[str, str]]:
    """A browser step's screenshots, embedded (the page stays one self-contained file);
    each links to its PNG in the report folder."""
    shots = details.get("screenshots") if isinstance(details, dict) else None
    out = []
    for x in shots or []:
        rel = x.get("file") if isinstance(x, dict) else None
        if not isinstance(rel, str) or rel.startswith(("/", "..")) or report_dir is None:
            continue
        try:
            png = (report_dir / rel).read_bytes()
        except OSError:
            continue
        if png.startswith(b"\x89PNG"):
            data = "data:image/png;base64," + base64.b64encode(png).decode()
            out.append({"stage": str(x.get("stage", "")), "file": rel, "data": data})
    return out


def _probes(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for s in summary.get("steps", []):
        if s.get("kind") != "probe":
            continue
        d = s.get("details") or {}
        rows.append(
            {
                "step": f"{int(s.get('index', 0)):02d}",
                "name": s.get("name", ""),
                "target": f"{d.get('proto', '?')}/{d.get('port', '?')} on {d.get('target', '?')}",
                "state": d.get("state", ""),
                "status": s.get("status", ""),
                "mark": STATUS_MARK.get(str(s.get("status")), ""),
                "message": s.get("message", ""),
            }
        )
    return rows


def _routes(summary: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for s in summary.get("steps", []):
        d = s.get("details") or {}
        if s.get("kind") != "routes" or not isinstance(d.get("routes"), list):
            continue
        node = str(s.get("name", "")).split(":", 1)[0]
        out.append(
            {
                "title": f"step {int(s.get('index', 0)):02d}: {s.get('name', '')}",
                "node": node,
                "table": _table(d["routes"], ("dst", "gateway", "dev", "protocol", "metric", "prefsrc", "scope")),
            }
        )
    return out


def _firewalls(summary: dict[str, Any]) -> list[dict[str, Any]]:
    fws = summary.get("firewalls")
    if not fws:
        return []
    items = fws.items() if isinstance(fws, dict) else ((f.get("node", f"firewall {k}"), f) for k, f in enumerate(fws))
    out = []
    for name, fw in items:
        entry: dict[str, Any] = {"name": name, "ruleset": "", "counters": None, "policy": "", "other": ""}
        if isinstance(fw, dict):
            entry["ruleset"] = str(fw.get("ruleset", "") or "")
            counters = fw.get("counters")
            if isinstance(counters, list) and all(isinstance(c, dict) for c in counters):
                entry["counters"] = _table(counters)
            elif counters:
                entry["other"] = json.dumps(counters, indent=2, default=str)
            if fw.get("policy"):
                entry["policy"] = json.dumps(fw["policy"], indent=2, default=str)
            rest = {k: v for k, v in fw.items() if k not in ("ruleset", "counters", "policy", "node")}
            if rest:
                entry["other"] = (entry["other"] + "\n" if entry["other"] else "") + json.dumps(
                    rest, indent=2, default=str
                )
        else:
            entry["ruleset"] = str(fw)
        out.append(entry)
    return out


def _captures(summary: dict[str, Any], report_dir: Path) -> list[dict[str, Any]]:
    caps = summary.get("captures")
    if isinstance(caps, dict):
        caps = caps.get("files") or caps.get("captures") or []
    out = []
    for c in caps or []:
        if not isinstance(c, dict):
            continue
        f = str(c.get("file", "") or "")
        out.append(
            {
                "link": c.get("link", ""),
                "file": f,
                "exists": bool(f) and (report_dir / f).is_file(),
                "packets": c.get("packets", ""),
                "dropped": c.get("dropped", ""),
                "bad": bool(c.get("dropped")),
            }
        )
    return out


def anchor(rel: str) -> str:
    """The element id of an embedded file: ``log-nodes-mail-logs-postfix-log``."""
    return "log-" + re.sub(r"[^a-z0-9]+", "-", rel.lower()).strip("-")


def _artefacts(summary: dict[str, Any], report_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Configs grouped by node and logs, each with its text (embedded, so a copied
    report.html keeps them); a log's lines get anchors the mail trace links to."""
    configs: dict[str, list[dict[str, Any]]] = {}
    logs = []
    for a in summary.get("artefacts", []):
        rel = str(a.get("path", ""))
        path = report_dir / rel
        size = path.stat().st_size if path.is_file() else None
        item = {
            "node": a.get("node", ""),
            "daemon": a.get("daemon", ""),
            "path": rel,
            "shown_as": a.get("shown_as", ""),
            "size": _size(size) if size is not None else "missing",
            "missing": size is None,
            "text": "",
            "truncated": False,
        }
        if a.get("kind") == "config":
            if size is not None:
                raw = path.read_bytes()[:CONFIG_LIMIT]
                item["text"] = raw.decode("utf-8", errors="replace")
                item["truncated"] = size > CONFIG_LIMIT
            configs.setdefault(str(a.get("node", "")), []).append(item)
        elif a.get("kind") == "log":
            item["id"] = anchor(rel)
            item["lines"] = []
            if size is not None:
                raw = path.read_bytes()[:LOG_LIMIT]
                item["lines"] = raw.decode("utf-8", errors="replace").splitlines()
                item["truncated"] = size > LOG_LIMIT
            logs.append(item)
    return [{"node": n, "files": fs} for n, fs in configs.items()], logs


def _traces(summary: dict[str, Any], report_dir: Path, layers: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        traces = mailtrace.trace(report_dir, summary)
    except Exception as exc:  # a log we cannot read must not cost the whole report
        log.warning("mail trace failed: %s", exc)
        return [{"label": "(trace failed)", "error": f"{type(exc).__name__}: {exc}", "hops": []}]
    for t in traces:
        for h in t["hops"]:
            tls = h.get("tls")
            h["tls_text"] = f"{tls['version']} {tls['cipher']}" if isinstance(tls, dict) else ""
            h["bad"] = h.get("status") not in ("ok", None)
            h["log_name"] = str(h.get("log", "")).rsplit("/", 1)[-1]
            h["href"] = f"#{anchor(str(h.get('log', '')))}-L{h.get('lineno')}" if h.get("log") else ""
            if not h.get("log") and isinstance(h.get("step"), int):  # the MUA's hop: its scenario step
                h["log_name"] = f"step {h['step']:02d}"
                h["href"] = f"#step-{h['step']:02d}"
            h["wire_text"] = "; ".join(
                " ".join(
                    str(x)
                    for x in (
                        w.get("flow"),
                        w.get("link") and f"on {w['link']}",
                        w.get("mode"),
                        w.get("version"),
                        w.get("cipher"),
                    )
                    if x
                )
                for w in h.get("wire", [])
            )
            h["layer_links"] = [
                {"id": a, "flow": str(w.get("flow", ""))}
                for w in h.get("wire", [])
                if (a := layerview.anchor(layers, str(w.get("flow", "")), str(w.get("link", ""))))
            ]
        t.setdefault("error", "")
        t["roles_text"] = " → ".join(
            f"{r['role']} {r['node']}" + (f" ({r['via']})" if r.get("via") else "") for r in t.get("roles") or []
        )
    return traces


def _timings(summary: dict[str, Any]) -> dict[str, Any]:
    timings = summary.get("timings") or {}
    teardown = summary.get("teardown") or {}
    phases = [{"name": k, "seconds": _secs(v)} for k, v in timings.items() if k not in ("ready", "teardown")]
    return {
        "ready": _secs(timings.get("ready")) if "ready" in timings else "–",
        "whole": _secs(summary.get("duration")),
        "teardown": _secs(teardown.get("seconds", timings.get("teardown")))
        if teardown or "teardown" in timings
        else "–",
        "phases": phases,
        "problems": [str(p) for p in teardown.get("problems", []) or []],
    }


def build_context(summary: dict[str, Any], plan: Plan | None, report_dir: Path) -> dict[str, Any]:
    """Everything the template shows, as plain values (strings, lists, dicts)."""
    report_dir = Path(report_dir)
    leases = {str(x["node"]): str(x["address"]) for x in summary.get("leases", []) if x.get("address")}
    diagram = ""
    cut = netviews.cuts(summary)
    if plan is not None:
        try:
            diagram = topology_svg(plan, leases=leases, cut=cut)
        except Exception as exc:  # the page is still useful without its picture
            log.warning("topology diagram failed: %s", exc)
    configs, logs = _artefacts(summary, report_dir)
    counts = summary.get("counts") or {}
    layers = layerview.load(summary, report_dir)
    steps = _steps(summary, report_dir)
    for s in steps:
        s["layers"] = layers["by_step"].get(s["index"], [])
    traces = _traces(summary, report_dir, layers)
    handshakes = linkviews.handshakes(summary)
    for row in handshakes:
        row["layers"] = layerview.anchor(layers, row["flow"], row["link"])
    files = [f for f in ("summary.json", "junit.xml") if (report_dir / f).is_file()]
    status = str(summary.get("status", "unknown"))
    return {
        "title": f"{summary.get('scenario', '?')} on {summary.get('topology', '?')}: {status.upper()}",
        "run": {
            k: summary.get(k, "")
            for k in ("run_id", "scenario", "scenario_file", "topology", "topology_file", "started", "prefix", "schema")
        },
        "status": status,
        "error": summary.get("error", ""),
        "notes": [str(n) for n in summary.get("notes") or []],
        "counts": [{"name": k, "n": v} for k, v in counts.items()],
        "timings": _timings(summary),
        "diagram": Markup(diagram) if diagram else "",
        "steps": steps,
        "failed_steps": [s for s in steps if s["bad"]],
        "traces": traces,
        "flows": netviews.flows(summary, plan, traces),
        "cut": [
            {"link": f"{plan.topology.data.links[k].a}-{plan.topology.data.links[k].b}", "when": v}
            for k, v in sorted(cut.items())
            if plan is not None and k < len(plan.topology.data.links)
        ],
        "matrices": netviews.matrices(summary),
        "impairments": linkviews.impairments(summary),
        "rtts": linkviews.rtts(summary),
        "handshakes": handshakes,
        "layers": layers,
        "proxies": linkviews.proxy_logs(summary, report_dir),
        "leases": _table(summary.get("leases", []), ("node", "address", "router", "dns", "search")),
        "dns": _table(summary.get("dns_records", []), ("zone", "server", "owner", "type", "value")),
        "firewalls": _firewalls(summary),
        "probes": _probes(summary),
        "routes": _routes(summary),
        "captures": _captures(summary, report_dir),
        "environment": [{"name": k, "value": v} for k, v in (summary.get("environment") or {}).items()],
        "configs": configs,
        "logs": logs,
        "files": files,
        "overrides": [
            {**o, "reference": "the default" if o.get("reference") is None else o["reference"]}
            for o in sorted(summary.get("overrides") or [], key=lambda o: not o.get("weakens"))
        ],
        "css": Markup((TEMPLATES / "report.css").read_text()),
    }


def render_html(summary: dict[str, Any], plan: Plan | None, report_dir: Path) -> str:
    return _env().get_template("report.html.j2").render(**build_context(summary, plan, Path(report_dir)))


def write_html(summary: dict[str, Any], plan: Plan | None, report_dir: Path) -> Path:
    """Write ``report_dir/report.html`` and return its path."""
    path = Path(report_dir) / "report.html"
    path.write_text(render_html(summary, plan, Path(report_dir)), encoding="utf-8")
    return path
