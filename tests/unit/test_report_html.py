"""report.html: one self-contained page, rendered from real summaries in tests/data/report/."""

from __future__ import annotations

import copy
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lab.model.load import load_topology
from lab.model.plan import Plan, make_plan
from lab.report.html import render_html, write_html

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "report"
TOPOLOGY = {"star": "star.yaml", "star-fail": "star.yaml", "dmz": "dmz.yaml", "ring-ospf": "ring-l3.yaml"}


class Page(HTMLParser):
    """Elements with their attributes and text, enough to query the page's structure."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(el)
        if tag not in ("meta", "br", "img", "input", "link", "rect", "circle", "line", "path", "polygon"):
            self._open.append(el)

    def handle_endtag(self, tag: str) -> None:
        for k in range(len(self._open) - 1, -1, -1):
            if self._open[k]["tag"] == tag:
                del self._open[k:]
                break

    def handle_data(self, data: str) -> None:
        for el in self._open:
            el["text"] += data

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, Any]]:
        def match(el: dict[str, Any]) -> bool:
            if tag and el["tag"] != tag:
                return False
            for k, v in attrs.items():
                have = el["attrs"].get(k.replace("_", "-").rstrip("-")) or ""
                if k == "class_" and v not in have.split():
                    return False
                if k != "class_" and have != v:
                    return False
            return True

        return [el for el in self.elements if match(el)]


def _fixture(name: str, tmp_path: Path) -> tuple[dict[str, Any], Plan, Path]:
    d = tmp_path / name
    shutil.copytree(DATA / name, d)
    summary = json.loads((d / "summary.json").read_text())
    return summary, make_plan(load_topology(REPO / "topologies" / TOPOLOGY[name])), d


@pytest.mark.parametrize("name", sorted(TOPOLOGY))
def test_the_page_is_self_contained_and_complete(name: str, tmp_path: Path) -> None:
    summary, plan, d = _fixture(name, tmp_path)
    path = write_html(summary, plan, d)
    assert path == d / "report.html"
    text = path.read_text()
    page = Page(text)
    # nothing to fetch: no external stylesheet, script or image
    assert not page.find("link") and not page.find("img")
    assert not [el for el in page.elements if el["attrs"].get("src")]
    assert not re.search(r"""(href|src)=["']?(https?:)?//""", text)
    # the diagram, with every node
    drawn = {el["attrs"]["data-node"] for el in page.find("g") if "data-node" in el["attrs"]}
    assert drawn == set(plan.nodes)
    # every step, with its status as a class
    for s in summary["steps"]:
        [li] = page.find("li", id=f"step-{s['index']:02d}")
        assert f"st-{s['status']}" in li["attrs"]["class"].split()
        assert s["name"] in li["text"]
    assert summary["run_id"] in page.find("header")[0]["text"]
    assert page.find(id="run-status")[0]["text"] == summary["status"].upper()


def test_failed_steps_are_marked_red_with_message_and_details(tmp_path: Path) -> None:
    summary, plan, d = _fixture("star-fail", tmp_path)
    page = Page(render_html(summary, plan, d))
    bad = page.find("li", class_="st-failed")
    assert [el["attrs"]["id"] for el in bad] == ["step-01", "step-05"]
    assert "answers ['10.0.0.10'], expected ['10.0.0.99']" in bad[0]["text"]
    assert all("step-bad" in el["attrs"]["class"].split() for el in bad)
    assert len(page.find("details", class_="bad-details")) == 2
    assert page.find(id="failures") and "2 step(s) did not pass" in page.find(id="failures")[0]["text"]
    assert page.find("header", class_="status-failed")


def test_everything_from_the_run_is_escaped(tmp_path: Path) -> None:
    summary, plan, d = _fixture("star-fail", tmp_path)
    text = render_html(summary, plan, d)
    assert "<b>escaped</b>" not in text
    assert "a wrong expectation &lt;b&gt;escaped&lt;/b&gt; &amp; failing" in text
    assert "Hello &lt;bob&gt; &amp; co" in text


def test_mail_trace_rows_are_in_order_with_their_queue_ids(tmp_path: Path) -> None:
    summary, plan, d = _fixture("dmz", tmp_path)
    page = Page(render_html(summary, plan, d))
    [article] = page.find("article", id="msg-outbound")
    i = page.elements.index(article)
    rows = [el for el in page.elements[i:] if el["tag"] == "tr" and "hop" in el["attrs"].get("class", "").split()]
    first = rows[:15]
    assert [(r["attrs"]["data-node"], r["attrs"]["data-stage"]) for r in first[:9]] == [
        ("pc1", "sent"),
        ("mail", "connect"),
        ("mail", "submitted"),
        ("mail", "cleanup"),
        ("mail", "queued"),
        ("mail", "mx"),
        ("mail", "relay"),
        ("mail", "removed"),
        ("ext-mail", "connect"),
    ]
    queue_ids = [r["attrs"]["data-queue-id"] for r in first if r["attrs"]["data-stage"] in ("submitted", "received")]
    assert queue_ids == ["345A8168143", "3BCDF168182"]
    # each hop's role in its own column, the chain of roles above the table
    assert [r["attrs"]["data-role"] for r in first[:3]] == ["MUA", "MSA", "MSA"]
    cells = [el for el in page.elements[i:] if el["tag"] == "td" and "role" in el["attrs"].get("class", "").split()]
    assert [c["text"] for c in cells[:7]] == ["MUA", "MSA", "MSA", "MSA", "MTA", "MTA", "MTA"]
    assert "fetches it over IMAP" in cells[15]["attrs"]["title"]
    [roles] = [el for el in page.elements[i:] if el["tag"] == "p" and el["attrs"].get("class") == "roles"][:1]
    assert roles["text"] == "MUA pc1 → MSA mail → MTA mail → MTA ext-mail → MDA ext-mail → MUA ext-pc (IMAP)"


def test_tables_configs_and_logs(tmp_path: Path) -> None:
    summary, plan, d = _fixture("star", tmp_path)
    page = Page(render_html(summary, plan, d))
    text = "".join(el["text"] for el in page.find("section", id="network"))
    assert "10.0.0.101" in text and "mail.projet.dz." in text and "PTR" in text
    configs = page.find("details", class_="config")
    main_cf = next(el for el in configs if "nodes/mail/config/postfix/main.cf" in el["text"])
    assert "smtpd_tls_security_level" in main_cf["text"] or "myhostname" in main_cf["text"]
    assert any("not in the report folder" in el["text"] for el in configs)  # artefacts not copied to the fixture
    logs = page.find("details", class_="log")
    assert any("nodes/mail/logs/postfix.log" in el["text"] for el in logs)
    env = page.find("section", id="environment")[0]["text"]
    assert "postfix" in env and "3.7.11" in env


def test_probes_routes_firewalls_and_captures(tmp_path: Path) -> None:
    summary, plan, d = _fixture("dmz", tmp_path)
    summary = copy.deepcopy(summary)
    summary["firewalls"] = {
        "fw": {
            "ruleset": "table inet labfw { chain fwd { policy drop; } }",
            "counters": [{"rule": "lan -> dmz tcp/587", "packets": 12, "bytes": 900}],
        }
    }
    (d / "captures").mkdir()
    (d / "captures" / "pc1-s1.pcap").write_bytes(b"")
    summary["captures"] = [
        {"link": "pc1-s1", "file": "captures/pc1-s1.pcap", "packets": 42, "dropped": 0},
        {"link": "fw-s3", "file": "captures/fw-s3.pcap", "packets": 7, "dropped": 3},
    ]
    page = Page(render_html(summary, plan, d))
    fw = page.find("section", id="firewall")[0]["text"]
    assert "policy drop" in fw and "lan -> dmz tcp/587" in fw
    assert "tcp/22 on 10.0.1.10" in fw and "filtered" in fw
    assert page.find("a", href="captures/pc1-s1.pcap")
    assert not page.find("a", href="captures/fw-s3.pcap")  # not in the folder: not linked
    assert page.find("tr", class_="warn")  # dropped packets stand out
    summary2, plan2, d2 = _fixture("ring-ospf", tmp_path)
    routes = Page(render_html(summary2, plan2, d2)).find("section", id="routes")[0]["text"]
    assert "10.1.2.0/24" in routes and "10.255.0.14" in routes and "ospf" in routes


def test_without_a_plan_or_logs_the_page_still_renders(tmp_path: Path) -> None:
    summary = json.loads((DATA / "star" / "summary.json").read_text())
    summary["error"] = "mail: postfix did not answer on port 25 <in time>"
    summary["status"] = "error"
    text = render_html(summary, None, tmp_path)
    page = Page(text)
    assert "no diagram" in page.find("section", id="topology")[0]["text"]
    assert "postfix did not answer on port 25 <in time>" in page.find(id="lab-error")[0]["text"]
    assert "nothing about this message was found" in page.find("section", id="mail")[0]["text"]


def test_logs_are_embedded_and_trace_links_jump_to_their_line(tmp_path: Path) -> None:
    summary, plan, d = _fixture("dmz", tmp_path)
    page = Page(render_html(summary, plan, d))
    assert page.find("details", class_="log", id="log-nodes-mail-logs-postfix-log")
    lines = (d / "nodes/mail/logs/postfix.log").read_text().splitlines()
    for n in (1, len(lines)):
        [span] = page.find("span", id=f"log-nodes-mail-logs-postfix-log-L{n}")
        assert span["text"].endswith(lines[n - 1])
    links = [el["attrs"]["href"] for el in page.find("a", class_="src")]
    assert links and all(h.startswith("#log-") for h in links if not h.startswith("#step-"))
    assert [h for h in links if h.startswith("#step-")] == ["#step-10", "#step-13"]  # the MUAs' send steps
    ids = {el["attrs"].get("id") for el in page.elements}
    assert all(h[1:] in ids for h in links), "every trace link has its line in the page"


def _with_steps(summary: dict[str, Any], *steps: dict[str, Any]) -> dict[str, Any]:
    summary = copy.deepcopy(summary)
    base = len(summary["steps"])
    for k, st in enumerate(steps):
        summary["steps"].append({"index": base + k, "status": "passed", "duration": 0.5, "message": "", **st})
    return summary


def test_a_dialogue_is_shown_as_the_protocol_and_details_as_yaml(tmp_path: Path) -> None:
    summary, plan, d = _fixture("dmz", tmp_path)
    talk = ["S: 220 mail.projet.dz ESMTP Postfix", "C: EHLO pc1.projet.dz", "S: 250-mail.projet.dz", "S: 250 STARTTLS"]
    talk += ["-- TLS TLSv1.3 TLS_AES_256_GCM_SHA384", "C: AUTH (PLAIN) alice ********", "S: 535 5.7.8 failed"]
    summary = _with_steps(
        summary,
        {
            "kind": "send",
            "name": "alice sends",
            "status": "failed",
            "details": {"dialogue": talk, "body": "a\r\nb\r\n"},
        },
    )
    page = Page(render_html(summary, plan, d))
    [box] = page.find("pre", class_="dialogue")
    assert [el["text"] for el in page.find("span", class_="client")] == [talk[1], talk[5]]
    assert "535 5.7.8 failed" in box["text"]
    [step] = page.find("li", id=f"step-{len(summary['steps']) - 1:02d}")
    [yaml_pre] = [el for el in page.find("pre", class_="yaml") if el in page.elements[page.elements.index(step) :]][:1]
    assert "body: |" in yaml_pre["text"] and "\\r" not in yaml_pre["text"] and "dialogue" not in yaml_pre["text"]


def test_the_firewall_matrix_is_a_grid_of_zones_with_notes(tmp_path: Path) -> None:
    summary, plan, d = _fixture("dmz", tmp_path)
    rows = []
    for a in ("lan", "dmz", "wan"):
        for b in ("lan", "dmz", "wan"):
            if a != b:
                allowed = (a, b) in (("lan", "dmz"), ("lan", "wan"))
                seen = "open" if allowed else "filtered"
                rows.append(
                    {
                        "from": a,
                        "to": b,
                        "src": a,
                        "dst": b,
                        "port": "tcp/25",
                        "policy": "allow" if allowed else "deny",
                        "seen": seen,
                        "ok": True,
                        "note": "",
                    }
                )
    rows[-1]["note"] = ""
    wan_dmz = next(r for r in rows if (r["from"], r["to"]) == ("wan", "dmz"))
    wan_dmz["note"] = "the port forward on tcp/25 works on the firewall's own address"
    bad = next(r for r in rows if (r["from"], r["to"]) == ("dmz", "lan"))
    bad.update(seen="open", ok=False)
    summary = _with_steps(
        summary,
        {
            "kind": "firewall_matrix",
            "name": "matrix of fw",
            "status": "failed",
            "details": {"matrix": rows, "representatives": {"lan": "pc1", "dmz": "mail", "wan": "ext-pc"}},
        },
    )
    page = Page(render_html(summary, plan, d))
    [grid] = page.find("table", class_="matrix")
    i = page.elements.index(grid)
    cells = [el for el in page.elements[i:] if el["tag"] == "td"][:9]
    assert [c["attrs"].get("class") for c in cells[::4]] == ["self", "self", "self"]  # the diagonal
    assert "tcp/25 allow" in cells[1]["text"]  # lan -> dmz
    assert page.find("div", class_="disagree") and "saw open" in page.find("div", class_="disagree")[0]["text"]
    notes = page.find("ol", class_="notes")[0]["text"]
    assert "wan → dmz: the port forward" in notes
    assert "see note 1" in page.find("div", class_="cell-notes")[0]["text"]
    assert len(page.find("table", class_="probes")) <= 1  # the matrix is no longer a list of rows


def test_cut_links_are_drawn_and_flows_can_be_lit(tmp_path: Path) -> None:
    summary, plan, d = _fixture("dmz", tmp_path)
    summary["steps"][0]["details"]["source"] = "pc1"
    k = next(i for i, lk in enumerate(plan.topology.data.links) if {lk.a, lk.b} == {"fw", "s3"})
    summary = _with_steps(
        summary,
        {"kind": "link", "name": "link fw-s3 down", "details": {"link": k, "a": "fw", "b": "s3", "state": "down"}},
        {"kind": "link", "name": "link fw-s3 up", "details": {"link": k, "a": "fw", "b": "s3", "state": "up"}},
        {
            "kind": "wire",
            "name": "path mail -> ext-mail",
            "details": {"links": [{"link": "mail-s2"}, {"link": "fw-s3"}]},
        },
    )
    page = Page(render_html(summary, plan, d))
    [cut] = [el for el in page.elements if el["attrs"].get("data-link") == str(k)]
    assert "t-cut" in cut["attrs"]["class"].split()
    assert any("(cut: down at step" in el["text"] and "up again at step" in el["text"] for el in page.find("title"))
    assert "fw-s3" in page.find("p", class_="cut-links")[0]["text"]
    flows = {el["text"]: el["attrs"] for el in page.find("button", class_="flow")}
    wire = next(v for n, v in flows.items() if "path mail -> ext-mail" in n)
    assert str(k) in wire["data-links"].split() and "mail" in wire["data-nodes"].split()
    path = next(v for n, v in flows.items() if n.startswith("00 "))  # the traceroute step: pc1 -> fw -> inet -> ext-pc
    assert path["data-nodes"].split()[:2] == ["pc1", "fw"] and len(path["data-links"].split()) >= 4


def test_the_runs_notes_are_on_the_page(tmp_path: Path) -> None:
    summary, plan, d = _fixture("dmz", tmp_path)
    summary = {**summary, "notes": ["links[3] pc1-s1: 5% loss by an nftables random drop (no tc netem here)"]}
    page = Page(render_html(summary, plan, d))
    assert "nftables random drop" in page.find("section", id="notes")[0]["text"]
