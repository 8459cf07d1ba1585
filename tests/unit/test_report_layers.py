"""The layer views of a run: which flows get one (lab/scenario/layersel.py) and how
report.html shows them (lab/report/layerview.py), on the real star captures
(tests/data/pcap/star/) and the star report fixture (tests/data/report/star/).

The fixture's logs and the pcaps come from two runs of the same lab: the addresses and
ports the mail trace matches on are the same, the client ports are not, so a hop finds its
connection's view by address and port as it does in a real report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lab.capture.analyse import analyse_captures
from lab.capture.pcap import parse
from lab.model.load import load_topology
from lab.model.plan import Plan, make_plan
from lab.report.html import render_html
from lab.report.results import RunResult
from lab.scenario import layersel
from lab.scenario.captures import mail_flows
from tests.unit.test_report_html import Page

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / "tests" / "data" / "pcap" / "star"
REPORT = REPO / "tests" / "data" / "report" / "star"
LINKS = ["dns-s1", "dhcp-s1", "mail-s1", "pc1-s1", "pc2-s1"]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return make_plan(load_topology(REPO / "topologies" / "star.yaml"))


def report_with_layers(tmp_path: Path, plan: Plan) -> tuple[RunResult, Path, dict[str, Any]]:
    """The star report with its captures beside it, analysed as a run analyses them
    (tests/integration/test_report_browser.py shows it in a browser)."""
    d = tmp_path / "star"
    shutil.copytree(REPORT, d)
    shutil.copytree(PCAPS, d / "pcap", ignore=shutil.ignore_patterns("*.json", "*.txt"))
    facts = json.loads((PCAPS / "facts.json").read_text())
    summary = json.loads((d / "summary.json").read_text())
    parsed = {lk: parse(d / "pcap" / f"{lk}.pcap", link=lk) for lk in LINKS}
    analysis = analyse_captures(parsed, PCAPS / "keylog.txt")
    links = [{"link": lk, "subnet": "lan", "ends": lk.split("-")} for lk in LINKS]
    result = RunResult("r", "star", "s.yaml", "campus-star", "t.yaml", "now")
    result.leases = [{"node": n, "address": lease["address"]} for n, lease in facts["leases"].items()]
    result.dns_records = summary["dns_records"]
    result.wire = {"mail_flows": mail_flows(analysis, parsed, links)}
    macs = {n: v["mac"] for n, v in facts["nodes"].items()}
    layersel.write(result, analysis, parsed, plan, links, macs, d)
    return result, d, {"summary": summary, "facts": facts, "analysis": analysis}


@pytest.fixture()
def run(tmp_path: Path, plan: Plan) -> tuple[RunResult, Path, dict[str, Any]]:
    return report_with_layers(tmp_path, plan)


def test_every_shown_flow_gets_one_view_on_its_clients_link(run: tuple[RunResult, Path, dict[str, Any]]) -> None:
    result, d, _ = run
    index = result.wire["layers"]
    views = index["views"]
    assert index["file"] == "layers.json" and index["cap"] == 60 and (d / "layers.json").is_file()
    # no rows in the summary: its index only
    assert all("rows" not in v for v in views) and len(json.dumps(index)) < 20_000
    mail = [v for v in views if v["group"] == "mail"]
    ports = sorted(int(v["flows"][0].rsplit(":", 1)[1]) for v in mail)
    assert ports == [25, 110, 110, 143, 143, 465, 587, 587, 993, 993, 995]
    for v in mail:  # each on the link of its client, never on the server's
        client = v["flows"][0].split()[1].split(":")[0]
        assert v["link"] == {"10.0.0.100": "pc1-s1", "10.0.0.101": "pc2-s1"}[client], v
    assert next(v for v in mail if v["flows"][0].endswith(":587"))["title"].startswith("SMTP submission: pc1 → mail")
    pairs = [(v["flows"][0].split()[1].split(":")[0], v["flows"][0].rsplit(":", 1)[1]) for v in mail]
    once = list(dict.fromkeys(pairs))
    assert len(once) < len(pairs) and pairs[: len(once)] == once  # one per client and port first, repeats after
    dhcp = [v for v in views if v["group"] == "dhcp"]
    assert [(v["link"], v["total"]) for v in dhcp] == [("pc1-s1", 4), ("pc2-s1", 4)]
    dns = [v for v in views if v["group"] == "dns"]
    assert dns and "MX" in dns[0]["title"]  # the lookup a mail relay makes comes first
    assert len({v["id"] for v in views}) == len(views)


def test_layers_json_holds_each_packet_layer_by_layer(run: tuple[RunResult, Path, dict[str, Any]]) -> None:
    _, d, info = run
    views = json.loads((d / "layers.json").read_text())["views"]
    dhcp = next(v for v in views if v["group"] == "dhcp" and v["link"] == "pc1-s1")
    first = dhcp["rows"][0]
    mac = info["facts"]["nodes"]["pc1"]["mac"]
    assert first["l2"]["src"] == mac and first["l3"]["dst"] == "255.255.255.255"
    assert first["l7"][0]["what"] == "DISCOVER" and first["l7"][0]["chaddr"] == mac
    seen = info["analysis"]["links"]["pc1-s1"]["dhcp"]["clients"][mac]["messages"]
    assert first["l7"][0]["xid"] == seen[0]["xid"]
    assert dhcp["file"] == "pcap/pc1-s1.pcap"  # relative: the report folder can move


def test_the_page_shows_the_views_collapsed_with_each_layer_named(
    run: tuple[RunResult, Path, dict[str, Any]], plan: Plan
) -> None:
    result, d, info = run
    summary = {**info["summary"], "wire": result.wire}
    text = render_html(summary, plan, d)
    page = Page(text)
    [section] = page.find("section", id="layers")
    assert page.find("a", href="#layers")
    views = page.find("details", class_="layer-view")
    assert len(views) == len(result.wire["layers"]["views"])
    assert all("open" not in v["attrs"] for v in views)  # collapsed until asked for
    heads = [el["text"] for el in page.find("th") if "OSI" in el["text"]]
    assert [h.split("TCP/IP")[0].strip() for h in heads[:3]] == [
        "OSI 2 · data link",
        "OSI 3 · network",
        "OSI 4 · transport",
    ]
    assert "TCP/IP internet: IPv4" in heads[1]
    sub = next(v for v in views if "SMTP submission: pc1" in v["text"] and "Ready to start TLS" in v["text"])
    assert "220 mail.projet.dz ESMTP Postfix" in sub["text"]
    assert "ClientHello: SNI mail.projet.dz" in sub["text"]
    assert "OSI 5–7" in sub["text"]
    assert "bob-secret" not in text and "alice-secret" not in text
    # the mail trace and the handshake table jump to the views of their connections
    targets = {el["attrs"]["href"][1:] for el in page.find("a", class_="ly")}
    ids = {v["attrs"]["id"] for v in views}
    assert targets and targets <= ids
    hop_links = [el for el in page.find("a", class_="ly") if el["attrs"].get("title", "").endswith(":587")]
    assert hop_links, "the submission hop links to its connection's layers"
    assert section["text"].count("no Ethernet header") == 0


def test_a_layer_file_that_cannot_be_read_costs_only_its_section(
    run: tuple[RunResult, Path, dict[str, Any]], plan: Plan
) -> None:
    result, d, info = run
    (d / "layers.json").write_text("{not json")
    page = Page(render_html({**info["summary"], "wire": result.wire}, plan, d))
    [section] = page.find("section", id="layers")
    assert "could not be read" in section["text"] and not page.find("details", class_="layer-view")
    assert page.find("article", id="msg-welcome")  # the rest of the page is there
    (d / "layers.json").unlink()
    assert "could not be read" in render_html({**info["summary"], "wire": result.wire}, plan, d)
    assert 'id="layers"' not in render_html(info["summary"], plan, d)  # a run without views: no section
