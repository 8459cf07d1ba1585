"""The mail trace: each message followed through real Postfix/Dovecot/BIND logs of a run.

The fixtures in tests/data/report/ are real reports (summary.json and the logs the
trace reads) from `lab run` of the default, DMZ and a failing scenario.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

from lab.report.mailtrace import trace

DATA = Path(__file__).resolve().parents[1] / "data" / "report"


def _load(name: str) -> tuple[Path, dict[str, Any]]:
    d = DATA / name
    return d, json.loads((d / "summary.json").read_text())


def _by_label(name: str) -> dict[str, dict[str, Any]]:
    d, summary = _load(name)
    return {t["label"]: t for t in trace(d, summary)}


def test_local_delivery_is_traced_from_submission_to_fetch() -> None:
    t = _by_label("star")["welcome"]
    assert [h["stage"] for h in t["hops"]] == [
        "sent",
        "connect",
        "submitted",
        "cleanup",
        "queued",
        "delivery",
        "saved",
        "delivery",
        "saved",
        "removed",
        "fetch",
        "fetch",
    ]
    assert {h["queue_id"] for h in t["hops"] if "queue_id" in h} == {"62617168372"}
    sub = t["hops"][2]
    assert sub["sasl_username"] == "alice@projet.dz" and sub["tls"]["version"] == "TLSv1.3"
    assert sub["client"] == "10.0.0.100" and sub["port"] == 587
    # fetched in the scenario's order: bob over IMAPS, then alice over POP3S
    assert [(h["rcpt"], h["protocol"], h["port"]) for h in t["hops"][-2:]] == [
        ("bob@projet.dz", "imap", 993),
        ("alice@projet.dz", "pop3", 995),
    ]
    assert t["complete"] and t["delivered"] == ["alice@projet.dz", "bob@projet.dz"]
    assert all(h["ts"] is not None for h in t["hops"])
    # the MUA's hop: the client on its host, dated by the connection the server logged
    mua = t["hops"][0]
    assert (mua["node"], mua["role"], mua["client"], mua["port"]) == ("pc1", "MUA", "10.0.0.100", 587)
    assert mua["ts"] == t["hops"][1]["ts"] and mua["log"] == ""


def test_relayed_mail_follows_the_next_servers_queue_id() -> None:
    traces = _by_label("dmz")
    out = traces["outbound"]["hops"]
    stages = [(h["node"], h["stage"]) for h in out]
    assert stages[:8] == [
        ("pc1", "sent"),
        ("mail", "connect"),
        ("mail", "submitted"),
        ("mail", "cleanup"),
        ("mail", "queued"),
        ("mail", "mx"),
        ("mail", "relay"),
        ("mail", "removed"),
    ]
    relay = out[6]
    assert relay["queue_id"] == "345A8168143" and relay["next_queue_id"] == "3BCDF168182"
    assert relay["server"] == "198.51.100.10" and relay["port"] == 25 and relay["tls"]["version"] == "TLSv1.3"
    assert out[5]["text"] == "MX lookup for partenaire.dz from 10.0.1.10 answered by dns"
    nxt = [h for h in out if h["node"] == "ext-mail"]
    assert nxt[0]["stage"] == "connect" and nxt[1]["stage"] == "received"
    assert nxt[1]["queue_id"] == "3BCDF168182" and nxt[1]["client"] == "203.0.113.2"  # NATed by the firewall
    assert [h["stage"] for h in nxt][-3:] == ["saved", "removed", "fetch"]
    inbound = traces["inbound"]["hops"]
    ids = [h["queue_id"] for h in inbound if h["stage"] in ("submitted", "received")]
    assert ids == ["7C73C16801A", "82E03168026"]
    assert traces["inbound"]["delivered"] == ["bob@projet.dz"]


def test_wire_facts_are_attached_to_the_hops_that_made_the_connection() -> None:
    d, summary = _load("star")
    summary = copy.deepcopy(summary)
    summary["wire"] = [
        {
            "flow": "tcp 10.0.0.100:48418 > 10.0.0.10:587",
            "link": "pc1-s1",
            "tls": True,
            "mode": "starttls",
            "version": "TLSv1.3",
            "cipher": "TLS_AES_256_GCM_SHA384",
        },
        {
            "flow": "tcp 10.0.0.101:40000 > 10.0.0.10:993",
            "link": "pc2-s1",
            "tls": True,
            "mode": "implicit",
            "version": "TLSv1.3",
        },
        {"flow": "udp 10.0.0.100:5353 > 10.0.0.2:53", "link": "pc1-s1"},
    ]
    hops = trace(d, summary)[0]["hops"]
    sub = next(h for h in hops if h["stage"] == "submitted")
    assert [w["link"] for w in sub["wire"]] == ["pc1-s1"]
    imap = next(h for h in hops if h["stage"] == "fetch" and h["protocol"] == "imap")
    assert imap["wire"][0]["mode"] == "implicit"
    assert "wire" not in next(h for h in hops if h["stage"] == "cleanup")


def test_a_report_without_logs_gives_empty_traces(tmp_path: Path) -> None:
    _, summary = _load("star")
    [t] = trace(tmp_path, summary)
    assert t["hops"] == [] and not t["complete"]


def test_a_message_without_queue_id_is_found_by_its_message_id(tmp_path: Path) -> None:
    d, summary = _load("star-fail")
    shutil.copytree(d, tmp_path / "r")
    summary = copy.deepcopy(summary)
    summary["messages"]["hello"]["queue_id"] = None
    [t] = trace(tmp_path / "r", summary)
    assert t["hops"][2]["stage"] == "submitted" and t["hops"][2]["queue_id"] == "75DB4168676"
    assert t["delivered"] == ["bob@projet.dz"]


def test_wire_steps_flows_are_used_when_the_summary_has_no_wire_key() -> None:
    d, summary = _load("star")
    summary = copy.deepcopy(summary)
    flow = {"flow": "tcp 10.0.0.100:48418 > 10.0.0.10:587", "link": "pc1-s1", "mode": "starttls", "version": "TLSv1.3"}
    summary["steps"].append(
        {
            "index": 99,
            "kind": "wire",
            "name": "wire: TLS >= 1.2",
            "status": "passed",
            "details": {"flows": [flow, dict(flow)]},
        }
    )
    sub = next(h for h in trace(d, summary)[0]["hops"] if h["stage"] == "submitted")
    assert sub["wire"] == [flow]


def test_each_hop_names_its_role_from_the_mua_to_the_mda_and_back() -> None:
    traces = _by_label("dmz")
    out = traces["outbound"]
    assert [(h["stage"], h["role"]) for h in out["hops"]] == [
        ("sent", "MUA"),
        ("connect", "MSA"),  # submission, port 587
        ("submitted", "MSA"),
        ("cleanup", "MSA"),
        ("queued", "MTA"),
        ("mx", "MTA"),
        ("relay", "MTA"),
        ("removed", "MTA"),
        ("connect", "MTA"),  # the partner's server, port 25
        ("received", "MTA"),
        ("cleanup", "MTA"),  # accepting a relayed message is the MTA's part
        ("queued", "MTA"),
        ("delivery", "MDA"),  # LMTP into Dovecot
        ("saved", "MDA"),
        ("removed", "MTA"),
        ("fetch", "MUA"),
    ]
    assert out["roles"] == [
        {"role": "MUA", "node": "pc1"},
        {"role": "MSA", "node": "mail"},
        {"role": "MTA", "node": "mail"},
        {"role": "MTA", "node": "ext-mail"},
        {"role": "MDA", "node": "ext-mail"},
        {"role": "MUA", "node": "ext-pc", "via": "IMAP"},
    ]
    fetch = out["hops"][-1]
    assert fetch["node"] == "ext-mail" and fetch["role_node"] == "ext-pc"  # logged by Dovecot, done by the client
    assert "fetches it over IMAP" in fetch["role_note"] and "LMTP" in out["hops"][12]["role_note"]
    assert [r["role"] for r in traces["inbound"]["roles"]] == ["MUA", "MSA", "MTA", "MTA", "MDA", "MUA"]


def test_the_mua_is_the_send_steps_host_and_links_to_its_step() -> None:
    d, summary = _load("dmz")
    summary = copy.deepcopy(summary)
    summary["messages"]["outbound"]["on"] = "laptop"  # the send step records its host (runs since issue 14)
    [mua] = [h for h in trace(d, summary)[0]["hops"] if h["stage"] == "sent"]
    assert (mua["node"], mua["role_node"], mua["step"]) == ("laptop", "laptop", 10)
    assert mua["text"] == "alice@projet.dz's mail client submits it to mail.projet.dz:587 over TLSv1.3"


def test_local_delivery_roles_and_a_message_never_submitted(tmp_path: Path) -> None:
    [t] = [t for t in trace(*_load("star")) if t["label"] == "welcome"]
    assert [r["role"] + " " + r["node"] for r in t["roles"]] == [
        "MUA pc1",
        "MSA mail",
        "MTA mail",
        "MDA mail",
        "MUA pc2",
        "MUA pc1",
    ]
    _, summary = _load("star")
    [empty] = trace(tmp_path, summary)  # no logs: no submission found, so no MUA hop either
    assert empty["hops"] == [] and empty["roles"] == []


def test_a_hop_gets_its_own_clients_connection_not_every_one_to_its_server() -> None:
    d, summary = _load("star")
    summary = copy.deepcopy(summary)
    mine = {"flow": "tcp 10.0.0.100:48418 > 10.0.0.10:587", "path": [{"link": "pc1-s1"}], "protocol": "smtp"}
    other = {"flow": "tcp 10.0.0.101:51000 > 10.0.0.10:587", "path": [{"link": "pc2-s1"}], "protocol": "smtp"}
    summary["wire"] = {"mail_flows": [other, mine]}  # the form runs write since issue 14
    sub = next(h for h in trace(d, summary)[0]["hops"] if h["stage"] == "submitted")
    assert [(w["flow"], w["link"]) for w in sub["wire"]] == [(mine["flow"], "pc1-s1")]


def test_a_connection_renamed_by_nat_is_found_by_the_name_each_end_saw() -> None:
    d, summary = _load("dmz")
    summary = copy.deepcopy(summary)
    relay = {
        "flow": "tcp 203.0.113.2:40000 > 198.51.100.10:25",  # as the TLS analysis listed it first
        "protocol": "smtp",
        "path": [
            {"link": "mail-s2", "flow": "tcp 10.0.1.10:40000 > 198.51.100.10:25"},
            {"link": "fw-s3", "flow": "tcp 203.0.113.2:40000 > 198.51.100.10:25"},
        ],
    }
    other = {
        "flow": "tcp 198.51.100.100:5000 > 198.51.100.10:25",
        "protocol": "smtp",
        "path": [{"link": "ext-pc-s4", "flow": "tcp 198.51.100.100:5000 > 198.51.100.10:25"}],
    }
    summary["wire"] = {"mail_flows": [other, relay]}
    hops = {t["label"]: t for t in trace(d, summary)}["outbound"]["hops"]
    sent = next(h for h in hops if h["stage"] == "relay")
    got = next(h for h in hops if h["stage"] == "received" and h["node"] == "ext-mail")
    # the sending server matched the name on its own link, the receiving one the NATed name:
    # both hops carry the one connection, named as its first link saw it, never the other client's
    for h in (sent, got):
        assert [(w["flow"], w["link"]) for w in h["wire"]] == [("tcp 10.0.1.10:40000 > 198.51.100.10:25", "mail-s2")]
