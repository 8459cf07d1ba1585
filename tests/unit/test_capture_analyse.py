"""The pcap analysers on real captures of the default lab (tests/data/pcap/star/) and of
a client behind a NAT router (tests/data/pcap/nat/).

``facts.json`` beside the pcaps holds what the clients and tcpdump themselves reported
during the capture (tests/data/pcap/make_pcaps.py): the tests compare the analysis of
the packets with that independent truth.  No root needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.capture.analyse import analyse_captures, dhcp, dns, nat, nat_mapping, path, plaintext_credentials, tls_facts
from lab.capture.pcap import C2S, Flow, Parsed, iter_records, parse

DATA = Path(__file__).resolve().parents[1] / "data" / "pcap"
STAR, NAT = DATA / "star", DATA / "nat"
LINKS = ["dhcp-s1", "dns-s1", "mail-s1", "pc1-s1", "pc2-s1"]


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    return json.loads((STAR / "facts.json").read_text())


@pytest.fixture(scope="module")
def star() -> dict[str, Parsed]:
    return {link: parse(STAR / f"{link}.pcap") for link in LINKS}


@pytest.fixture(scope="module")
def keylog() -> Path:
    return STAR / "keylog.txt"


def mail_flow(p: Parsed, port: int, *, nth: int = 0) -> Flow:
    found = [f for f in p.flows if f.proto == 6 and f.sport == port]
    assert len(found) > nth, f"{p.link}: {len(found)} flow(s) to port {port}: {[f.name for f in p.flows]}"
    return found[nth]


def step(facts: dict[str, Any], kind: str, nth: int = 0) -> dict[str, Any]:
    return [s for s in facts["steps"] if s["kind"] == kind][nth]["details"]  # type: ignore[no-any-return]


def packet_bytes(pcap: Path, number: int) -> bytes:
    """Packet ``number`` (1-based) read independently of the flow code."""
    p = parse(pcap)
    for n, _, start, caplen in iter_records(p.pcap):
        if n == number:
            return p.pcap.data[start : start + caplen]
    raise AssertionError(f"{pcap} has no packet {number}")


# -- the reader ----------------------------------------------------------------------------
@pytest.mark.parametrize("link", LINKS)
def test_every_packet_tcpdump_counted_is_read(link: str, facts: dict[str, Any], star: dict[str, Parsed]) -> None:
    stats = next(c for c in facts["captures"] if c["link"] == link)
    assert stats["dropped"] == 0
    assert star[link].packets == stats["packets"], f"{link}: tcpdump wrote {stats['packets']}"
    assert not star[link].truncated


def test_flows_agree_with_scapy(star: dict[str, Parsed]) -> None:
    """An independent decoder (scapy) finds the same TCP/UDP flows with the same packet counts."""
    scapy_all = pytest.importorskip("scapy.all")
    counts: dict[frozenset[Any], int] = {}
    for pkt in scapy_all.rdpcap(str(STAR / "mail-s1.pcap")):
        if scapy_all.IP in pkt and (scapy_all.TCP in pkt or scapy_all.UDP in pkt):
            l4 = pkt[scapy_all.TCP] if scapy_all.TCP in pkt else pkt[scapy_all.UDP]
            key = frozenset(
                {
                    (pkt[scapy_all.IP].src, l4.sport),
                    (pkt[scapy_all.IP].dst, l4.dport),
                    "tcp" if scapy_all.TCP in pkt else "udp",
                }
            )
            counts[key] = counts.get(key, 0) + 1
    ours = {
        frozenset({(f.key[1], f.key[2]), (f.key[3], f.key[4]), f.key[0]}): f.packets
        for f in star["mail-s1"].flows
        if f.proto in (6, 17)
    }
    assert ours == counts


def test_flow_dict_is_plain_data(star: dict[str, Parsed]) -> None:
    f = mail_flow(star["pc1-s1"], 587)
    d = f.to_dict()
    json.dumps(d)
    assert d["proto"] == "tcp" and d["server"] == "10.0.0.10" and d["server_port"] == 587
    assert d["c2s"]["flags"] == "S" and d["c2s"]["ttls"] == [64]
    assert d["s2c"]["flags"] == "SR"  # aiosmtplib closes after QUIT without reading: Postfix resets
    assert d["packets"] == d["c2s"]["packets"] + d["s2c"]["packets"]
    assert d["first"] <= d["last"]


# -- TLS -------------------------------------------------------------------------------------
def test_submission_587_is_starttls_tls13_with_the_clients_cipher(
    star: dict[str, Parsed], facts: dict[str, Any], keylog: Path
) -> None:
    sent = step(facts, "send")
    f = mail_flow(star["pc1-s1"], 587)
    t = tls_facts(f, keylog)
    assert t["tls"] and t["mode"] == "starttls"
    assert t["version"] == sent["tls_version"] == "TLSv1.3"
    assert t["cipher"] == sent["cipher"]
    assert t["sni"] == "mail.projet.dz"
    assert t["starttls_reply"].startswith("220 2.0.0 Ready to start TLS")
    assert f.c2s[: t["starttls_at"]].endswith(b"STARTTLS\r\n")
    assert f.c2s[t["starttls_at"]] == 0x16  # a TLS handshake record starts there
    assert t["starttls_reply_packet"] < t["tls_packet"]
    assert t["handshake_complete"]


def test_tls13_certificate_needs_the_key_log(star: dict[str, Parsed], facts: dict[str, Any], keylog: Path) -> None:
    f = mail_flow(star["pc1-s1"], 587)
    hidden = tls_facts(f)
    assert hidden["cert_visible"] is False and "key log" in hidden["cert_note"]
    shown = tls_facts(f, keylog)
    assert shown["cert_visible"] and shown["decrypted"]
    assert shown["cert_cn"] == "mail.projet.dz"
    assert shown["cert_san"] == step(facts, "send")["peer_san"]


def test_a_wrong_key_log_is_reported_not_trusted(star: dict[str, Parsed], keylog: Path, tmp_path: Path) -> None:
    f = mail_flow(star["pc1-s1"], 587)
    wrong = tmp_path / "keylog.txt"
    wrong.write_text(
        "".join(
            " ".join(parts[:2] + ["00" * (len(parts[2]) // 2)]) + "\n"
            for parts in (ln.split() for ln in keylog.read_text().splitlines() if not ln.startswith("#"))
        )
    )
    t = tls_facts(f, wrong)
    assert t["cert_visible"] is False and "does not decrypt" in t["cert_note"]


def test_tls12_certificate_is_read_in_clear(star: dict[str, Parsed], facts: dict[str, Any]) -> None:
    want = facts["extra"]["tls12_imaps"]
    t12 = [t for t in (tls_facts(f) for f in star["pc1-s1"].flows if f.kept) if t["version"] == "TLSv1.2"]
    assert len(t12) == 1
    t = t12[0]
    assert t["mode"] == "implicit" and t["flow"].endswith(":993")
    assert t["cipher_openssl"] == want["cipher"]
    assert t["cipher"] == "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    assert t["cert_visible"] and t["cert_cn"] == want["peer_subject"] and t["cert_san"] == want["peer_san"]


@pytest.mark.parametrize("port, link, reply", [(143, "pc2-s1", "OK Begin TLS"), (110, "pc1-s1", "+OK Begin TLS")])
def test_imap_and_pop3_starttls_are_split_at_the_servers_reply(
    port: int, link: str, reply: str, star: dict[str, Parsed], keylog: Path
) -> None:
    flows = [tls_facts(f, keylog) for f in star[link].flows if f.proto == 6 and f.sport == port]
    t = next(t for t in flows if t["mode"] == "starttls")
    assert reply in t["starttls_reply"]
    assert t["version"] == "TLSv1.3" and t["cert_cn"] == "mail.projet.dz"


@pytest.mark.parametrize("port", [993, 995, 465])
def test_implicit_tls_ports(port: int, star: dict[str, Parsed]) -> None:
    t = tls_facts(mail_flow(star["mail-s1"], port))
    assert t["tls"] and t["mode"] == "implicit" and t["starttls_at"] is None
    assert t["version"] in ("TLSv1.3", "TLSv1.2")


def test_a_plaintext_session_is_not_tls(star: dict[str, Parsed]) -> None:
    f = mail_flow(star["mail-s1"], 25)
    t = tls_facts(f)
    assert t["tls"] is False and t["mode"] is None and t["protocol"] == "smtp"


# -- credentials in clear (the failures the analyser must catch) ------------------------------------
@pytest.fixture(scope="module")
def findings(star: dict[str, Parsed]) -> list[dict[str, Any]]:
    return plaintext_credentials(star["mail-s1"].flows)


def test_raw_imap_login_is_caught_with_its_packet(findings: list[dict[str, Any]], facts: dict[str, Any]) -> None:
    hit = [f for f in findings if f["command"] == "IMAP LOGIN"]
    assert len(hit) == 1, findings
    h = hit[0]
    assert h["link"] == "mail-s1" and h["user"] == "bob@projet.dz"
    assert h["client"] == facts["extra"]["plain_imap_login"]["client"]
    assert b"a1 LOGIN bob@projet.dz bob-secret" in packet_bytes(STAR / "mail-s1.pcap", h["packet"])
    assert "bob-secret" not in json.dumps(h), "the report must not repeat the password"
    assert h["server_reply"].startswith("a1 NO")
    assert h["reply_packet"] > h["packet"]


def test_refused_smtp_auth_still_counts(findings: list[dict[str, Any]], facts: dict[str, Any]) -> None:
    plain = next(f for f in findings if f["command"] == "SMTP AUTH PLAIN")
    assert plain["server_port"] == 25 and plain["user"] == "alice@projet.dz"
    assert plain["server_reply"] == facts["extra"]["plain_smtp_auth_plain_25"]["replies"][2]  # 503: refused
    assert b"AUTH PLAIN " in packet_bytes(STAR / "mail-s1.pcap", plain["packet"])
    login = next(f for f in findings if f["command"] == "SMTP AUTH LOGIN")
    assert login["server_port"] == 587 and login["user"] == "alice@projet.dz"
    assert login["server_reply"].startswith("530")


def test_pop3_user_pass(findings: list[dict[str, Any]]) -> None:
    pop = next(f for f in findings if f["command"] == "POP3 USER/PASS")
    assert pop["user"] == "bob@projet.dz" and pop["server_reply"].startswith("-ERR")


def test_only_the_deliberate_plaintext_sessions_are_flagged(
    findings: list[dict[str, Any]], star: dict[str, Parsed], keylog: Path
) -> None:
    """The scenario's own logins (inside STARTTLS or implicit TLS) raise nothing."""
    assert sorted(f["command"] for f in findings) == [
        "IMAP LOGIN",
        "POP3 USER/PASS",
        "SMTP AUTH LOGIN",
        "SMTP AUTH PLAIN",
    ]
    flagged = {f["flow"] for f in findings}
    tls_flows = {t["flow"] for t in (tls_facts(f, keylog) for f in star["mail-s1"].flows if f.kept) if t["tls"]}
    assert tls_flows and not flagged & tls_flows


# -- DHCP, DNS, path -----------------------------------------------------------------------------
@pytest.mark.parametrize("node", ["pc1", "pc2"])
def test_dhcp_dora_for_each_client(node: str, star: dict[str, Parsed], facts: dict[str, Any]) -> None:
    mac = facts["nodes"][node]["mac"]
    d = dhcp(star["dhcp-s1"])
    c = d["clients"][mac]
    assert c["dora"], c["sequence"]
    assert c["sequence"][:4] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]
    assert c["address"] == facts["leases"][node]["address"]
    assert c["server"] == facts["nodes"]["dhcp"]["ip"]
    ack = [m for m in c["messages"] if m["type"] == "ACK"][-1]
    assert ack["router"] == [facts["leases"][node]["router"]] and ack["dns"] == [facts["leases"][node]["dns"]]


def test_dns_mx_answer(star: dict[str, Parsed], facts: dict[str, Any]) -> None:
    tx = dns(star["pc1-s1"])
    mx = [t for t in tx if t["qtype"] == "MX" and t["qname"] == "projet.dz."]
    assert len(mx) == 1
    assert mx[0]["rcode"] == "NOERROR" and mx[0]["answers"] == step(facts, "dns", 0)["answers"]
    assert mx[0]["server"] == facts["nodes"]["dns"]["ip"] and mx[0]["authoritative"]
    assert mx[0]["response_packet"] > mx[0]["query_packet"]
    ptr = [t for t in dns(star["pc2-s1"]) if t["qtype"] == "PTR"]
    assert ptr and ptr[0]["answers"] == ["mail.projet.dz."]


def test_switched_lan_path(star: dict[str, Parsed]) -> None:
    """pc1's submission crosses pc1's and mail's ports only, with no router on the way."""
    f = mail_flow(star["pc1-s1"], 587)
    p = path(star, f.key)
    assert [x["link"] for x in p["links"]] == ["pc1-s1", "mail-s1"]
    assert sorted(p["missing"]) == ["dhcp-s1", "dns-s1", "pc2-s1"]
    assert p["hops"] == [{"from": "pc1-s1", "to": "mail-s1", "routers": 0}]
    assert p["links"][0]["ttl_c2s"] == [64] and p["client_initial_ttl"] == 64


def test_analyse_captures_is_json(star: dict[str, Parsed], keylog: Path) -> None:
    out = analyse_captures({link: STAR / f"{link}.pcap" for link in LINKS}, keylog)
    text = json.dumps(out)
    assert "bob-secret" not in text and "alice-secret" not in text
    assert len(out["credentials"]) == 8  # 4 sessions, each seen on the client's and mail's port
    assert {t["link"] for t in out["tls"] if t["tls"]} == {"pc1-s1", "pc2-s1", "mail-s1"}


# -- NAT -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def natfacts() -> dict[str, Any]:
    return json.loads((NAT / "facts.json").read_text())


def test_nat_maps_inside_to_outside(natfacts: dict[str, Any]) -> None:
    m = nat(NAT / "c-r.pcap", NAT / "r-s.pcap")
    mapping = nat_mapping(m)
    for t in natfacts["tcp"]:
        outside = mapping[f"tcp {natfacts['client']}:{t['client_port']}"]
        addr, port = outside.split(":")
        assert addr == natfacts["router_outside"] and 20000 <= int(port) <= 20099  # nft: masquerade to :20000-20099
    assert f"udp {natfacts['client']}:{natfacts['udp']['client_port']}" in mapping
    assert {x["kind"] for x in m} == {"snat"}
    assert all(x["ttl_c2s"]["c-r"] == [64] and x["ttl_c2s"]["r-s"] == [63] for x in m)
    assert {x["a"]["proto"] for x in m} == {"tcp", "udp", "icmp"}


def test_path_follows_the_flow_through_nat(natfacts: dict[str, Any]) -> None:
    key = f"tcp {natfacts['client']}:{natfacts['tcp'][0]['client_port']} > {natfacts['server']}:143"
    pcaps = {"r-s": NAT / "r-s.pcap", "c-r": NAT / "c-r.pcap"}
    p = path(pcaps, key)
    assert [x["link"] for x in p["links"]] == ["c-r", "r-s"]
    assert p["links"][1]["translated"] and p["hops"][0]["routers"] == 1
    assert path(pcaps, key, follow_nat=False)["missing"] == ["r-s"]


def test_plaintext_login_seen_behind_and_beyond_the_nat() -> None:
    for link in ("c-r", "r-s"):
        hits = plaintext_credentials(NAT / f"{link}.pcap")
        assert [h["user"] for h in hits] == ["carol"], link
    assert plaintext_credentials(NAT / "r-s.pcap")[0]["client"] == "203.0.113.1"


def test_link_name_defaults_to_the_file_name() -> None:
    assert parse(NAT / "c-r.pcap").link == "c-r"
    assert parse(NAT / "c-r.pcap", link="inside").flows[0].link == "inside"
    f = parse(NAT / "c-r.pcap").flows[0]
    assert f.stream(C2S).packet_at(0) is not None
