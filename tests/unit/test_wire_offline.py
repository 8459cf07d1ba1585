"""Wire checks, mail flows and accounting on recorded pcaps and mailboxes: no root, no lab.

The pcaps are real captures (tests/data/pcap/, see its README): the star lab with
deliberate plaintext logins among the TLS sessions, and a client behind a NAT router.
These run the same functions the runner runs after a lab, so their logic is tested on
every machine, not only as root.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lab.capture.analyse import analyse_captures
from lab.capture.pcap import Parsed, parse
from lab.model.actions import Wire
from lab.model.load import load_topology
from lab.model.plan import Plan, make_plan
from lab.scenario import wire
from lab.scenario.accounting import account
from lab.scenario.captures import mail_flows
from lab.scenario.context import Context
from lab.services.mail import Dovecot

REPO = Path(__file__).resolve().parents[2]
STAR, NAT = REPO / "tests/data/pcap/star", REPO / "tests/data/pcap/nat"
LINKS = ["dhcp-s1", "dns-s1", "mail-s1", "pc1-s1", "pc2-s1"]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return make_plan(load_topology(REPO / "topologies" / "star.yaml"))


@pytest.fixture(scope="module")
def parsed() -> dict[str, Parsed]:
    return {link: parse(STAR / f"{link}.pcap", link=link) for link in LINKS}


@pytest.fixture(scope="module")
def analysis(parsed: dict[str, Parsed]) -> dict[str, Any]:
    return analyse_captures(parsed, STAR / "keylog.txt")


def links_of(names: list[str]) -> list[dict[str, Any]]:
    return [{"link": n, "subnet": "lan", "ends": n.split("-")} for n in names]


def checks(w: dict[str, Any], plan: Plan, analysis: dict[str, Any], parsed: dict[str, Parsed]) -> dict[str, Any]:
    macs = {n: v["mac"] for n, v in json.loads((STAR / "facts.json").read_text())["nodes"].items()}
    return dict(wire.check(Wire.model_validate(w), analysis, plan, links_of(LINKS), parsed, macs))


def test_tls_check_fails_on_the_plaintext_submission_and_names_it(plan, analysis, parsed) -> None:
    (out,) = checks({"tls": {"ports": [587]}}, plan, analysis, parsed).values()
    assert out.status == "failed"
    assert "plaintext" in out.message and ":587" in out.message
    assert any(f["version"] == "TLSv1.3" for f in out.details["flows"]), "the STARTTLS session is seen too"


def test_tls_check_passes_on_implicit_tls_ports(plan, analysis, parsed) -> None:
    (out,) = checks({"tls": {"min_version": "1.2", "ports": [993, 995]}}, plan, analysis, parsed).values()
    assert out.status == "passed", out.message
    assert "TLSv1.2" in out.message and "TLSv1.3" in out.message


def test_tls_13_minimum_fails_on_the_tls_12_session(plan, analysis, parsed) -> None:
    (out,) = checks({"tls": {"min_version": "1.3", "ports": [993]}}, plan, analysis, parsed).values()
    assert out.status == "failed" and "negotiated TLSv1.2" in out.message


def test_plaintext_credentials_are_caught_with_link_and_packet(plan, analysis, parsed) -> None:
    (out,) = checks({"no_plaintext_auth": True}, plan, analysis, parsed).values()
    assert out.status == "failed"
    found = {f["what"].split(":")[0] for f in out.details["findings"]}
    assert {"IMAP LOGIN", "POP3 USER/PASS", "SMTP AUTH PLAIN"} <= found, found
    assert all(f["link"] in LINKS and f["packet"] for f in out.details["findings"])


def test_dhcp_check_sees_both_clients_do_dora(plan, analysis, parsed) -> None:
    (out,) = checks({"dhcp": {"clients": "all"}}, plan, analysis, parsed).values()
    assert out.status == "passed", out.message
    assert "2 client(s)" in out.message


def test_mail_flows_lists_each_tls_flow_once_with_its_path(analysis, parsed) -> None:
    flows = mail_flows(analysis, parsed, links_of(LINKS))
    keys = [f["flow"] for f in flows]
    assert len(keys) == len(set(keys)) and len(flows) >= 5
    f587 = [f for f in flows if f["flow"].endswith(":587") and f["tls"]]
    assert f587 and f587[0]["mode"] == "starttls" and f587[0]["version"] == "TLSv1.3"
    assert all(f["routers"] == 0 for f in flows), "one LAN: no router on any path"
    assert {e["link"] for f in flows for e in f["path"]} <= set(LINKS)


def test_nat_check_on_the_two_sides_of_a_router() -> None:
    pcaps = {"c-r": parse(NAT / "c-r.pcap", link="c-r"), "r-s": parse(NAT / "r-s.pcap", link="r-s")}
    links = [
        {"link": "c-r", "subnet": "inside", "ends": ["c", "r"]},
        {"link": "r-s", "subnet": "outside", "ends": ["r", "s"]},
    ]
    out = wire._nat("r", links, pcaps)
    assert out.status == "passed" and "snat" in out.message
    alone = wire._nat("c", links, pcaps)
    assert alone.status == "failed"


# --- accounting, on mailboxes given as data -----------------------------------------


class Mailbox(Dovecot):
    """A mailbox store that holds messages in memory instead of a Maildir."""

    def __init__(self, boxes: dict[str, list[str]]):
        self.boxes = boxes

    def maildir_messages(self, address: str) -> list[dict[str, Any]]:
        return [{"message_id": m, "headers": {}, "subject": "", "file": ""} for m in self.boxes.get(address, [])]


def context(plan: Plan, boxes: dict[str, list[str]]) -> Context:
    store = Mailbox(boxes)
    lab = SimpleNamespace(plan=plan, run=None, service=lambda node, cls: store)
    return Context(lab, "r1", Path("/nonexistent"))  # type: ignore[arg-type]


def test_accounting_counts_delivered_lost_and_duplicated(plan) -> None:
    ctx = context(plan, {"bob@projet.dz": ["<a>", "<b>", "<b>"], "alice@projet.dz": ["<a>"]})
    ctx.messages = {
        "one": {"message_id": "<a>", "to": ["bob@projet.dz", "alice@projet.dz"], "fetched": [{"by": "bob@projet.dz"}]},
        "two": {"message_id": "<b>", "to": ["bob@projet.dz"]},
        "three": {"message_id": "<c>", "to": ["bob@projet.dz", "carol@elsewhere.example"]},
    }
    rows, verdict = account(ctx)
    bob = next(r for r in rows if r["recipient"] == "bob@projet.dz")
    assert (bob["accepted"], bob["delivered"], bob["lost"], bob["duplicated"], bob["fetched"]) == (3, 2, 1, 1, 1)
    assert bob["lost_ids"] == ["<c>"] and bob["duplicated_ids"] == ["<b>"]
    assert verdict is not None and verdict.status == "failed"
    assert "1 lost, 1 duplicated" in verdict.message
    assert [r["recipient"] for r in rows] == ["alice@projet.dz", "bob@projet.dz"], "not a lab mailbox: not counted"


def test_accounting_of_a_flood_passes_when_every_message_is_there_once(plan) -> None:
    ids = [f"<f{i}>" for i in range(50)]
    ctx = context(plan, {"bob@projet.dz": list(reversed(ids))})
    ctx.messages = {"flood": {"message_ids": ids, "to": ["bob@projet.dz"]}}
    rows, verdict = account(ctx)
    assert verdict is not None and verdict.status == "passed", verdict.message
    assert rows[0]["delivered"] == 50
