"""The layer view on real captures (tests/data/pcap/): each packet of a flow, layer by layer.

The truth to compare with comes from elsewhere: ``facts.json`` (what the clients and
tcpdump reported during the capture), the fast reader's own decoding (``lab.capture.pcap``
and ``netsvc``), or the bytes of a packet read independently.  No root needed.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from lab.capture.appmsgs import clear_messages
from lab.capture.flow import C2S
from lab.capture.layers import ViewSpec, build
from lab.capture.netsvc import dhcp
from lab.capture.pcap import Parsed, iter_records, parse

DATA = Path(__file__).resolve().parents[1] / "data" / "pcap"
STAR, NAT = DATA / "star", DATA / "nat"


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    return json.loads((STAR / "facts.json").read_text())


@pytest.fixture(scope="module")
def star() -> dict[str, Parsed]:
    return {link: parse(STAR / f"{link}.pcap", link=link) for link in ("pc1-s1", "pc2-s1", "dhcp-s1", "dns-s1")}


def _flow(p: Parsed, port: int, nth: int = 0) -> tuple[str, str, int, str, int]:
    found = [f.key for f in p.flows if f.proto == 6 and f.sport == port]
    return found[nth]


def _view(parsed: dict[str, Parsed], link: str, *keys: Any, **kw: Any) -> dict[str, Any]:
    [v] = build(parsed, [ViewSpec("v", link, tuple(keys), **kw)])
    return v


def _texts(v: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(r["n"], m["proto"], m["text"]) for r in v["rows"] for m in r["l7"]]


def test_a_starttls_submission_layer_by_layer(star: dict[str, Parsed], facts: dict[str, Any]) -> None:
    key = _flow(star["pc1-s1"], 587)
    v = _view(star, "pc1-s1", key)
    assert v["linktype"] == "Ethernet" and v["total"] == v["shown"] == len(v["rows"]) and not v["cut"]
    syn, synack = v["rows"][0], v["rows"][1]
    # layer 2: pc1's and the mail server's MACs, as the nodes reported them
    assert syn["l2"] == {
        "src": facts["nodes"]["pc1"]["mac"],
        "dst": facts["nodes"]["mail"]["mac"],
        "type": "IPv4",
        "ethertype": "0x0800",
    }
    # layer 3: addresses, TTL of a Linux sender on its own link, TCP
    assert (syn["l3"]["src"], syn["l3"]["dst"], syn["l3"]["ttl"], syn["l3"]["proto"]) == (
        "10.0.0.100",
        "10.0.0.10",
        64,
        "TCP",
    )
    assert syn["l3"]["len"] == 60 and "DF" in syn["l3"]["flags"]
    # layer 4: the handshake with relative numbers, options on the SYNs only
    assert (syn["l4"]["flags"], syn["l4"]["seq"], syn["l4"]["ack"]) == ("SYN", 0, None)
    assert (synack["l4"]["flags"], synack["l4"]["seq"], synack["l4"]["ack"]) == ("SYN ACK", 0, 1)
    assert synack["dir"] == "s2c" and synack["l4"]["sport"] == 587 and "MSS" in synack["l4"]["options"]
    assert v["rows"][2]["l4"]["flags"] == "ACK" and "options" not in v["rows"][2]["l4"]
    # the application: the banner in clear, STARTTLS, then TLS records
    texts = _texts(v)
    banner = facts["steps"][3]["details"]["banner"]
    assert banner == "220 mail.projet.dz ESMTP Postfix"
    first = texts[0]
    assert first[1:] == ("SMTP", banner)
    assert next(r for r in v["rows"] if r["n"] == first[0])["dir"] == "s2c"
    words = [t for _, p, t in texts if p == "SMTP"]
    assert "STARTTLS" in words and "220 2.0.0 Ready to start TLS" in words
    tls = [(n, t) for n, p, t in texts if p == "TLS"]
    assert tls[0][1].startswith("Handshake (record TLSv1.0") and "ClientHello: SNI mail.projet.dz" in tls[0][1]
    hello = next(m for r in v["rows"] for m in r["l7"] if m.get("handshake") == "ClientHello")
    assert hello["sni"] == "mail.projet.dz" and "TLSv1.3" in hello["offers"]
    server = next(m for r in v["rows"] for m in r["l7"] if m.get("handshake") == "ServerHello")
    tls_step = facts["steps"][3]["details"]
    assert (server["version"], server["cipher"]) == (tls_step["tls_version"], tls_step["cipher"])
    assert any("ChangeCipherSpec" in t for _, t in tls)
    assert any(t.startswith("ApplicationData") and "encrypted" in t for _, t in tls)
    # nothing after STARTTLS is read as SMTP
    starttls_at = next(n for n, p, t in texts if t == "220 2.0.0 Ready to start TLS")
    assert all(p == "TLS" for n, p, _ in texts if n > starttls_at)


def test_tls12_shows_the_certificate_in_clear(star: dict[str, Parsed], facts: dict[str, Any]) -> None:
    v = _view(star, "pc1-s1", _flow(star["pc1-s1"], 993))
    texts = [t for _, p, t in _texts(v) if p == "TLS"]
    assert "ServerHello: chose TLSv1.2" in texts[1]
    subject = facts["extra"]["tls12_imaps"]["peer_subject"]
    assert any(t.startswith("Handshake") and f"Certificate (in clear before TLS 1.3): {subject}" in t for t in texts)
    assert any("encrypted (Finished)" in t for t in texts)  # TLS 1.2's Finished follows ChangeCipherSpec


def test_passwords_sent_in_clear_are_starred(star: dict[str, Parsed]) -> None:
    login = _view(star, "pc2-s1", _flow(star["pc2-s1"], 143, 1))
    pop = _view(star, "pc2-s1", _flow(star["pc2-s1"], 110))
    both = json.dumps([login, pop])
    assert "bob-secret" not in both
    assert any(t == "a1 LOGIN bob@projet.dz ********" for _, _, t in _texts(login))
    assert any(t == "PASS ********" for _, _, t in _texts(pop))
    # the server's warning stays as it came
    assert any("the password was exposed" in t for _, _, t in _texts(login))


def test_dhcp_exchange_of_one_client(star: dict[str, Parsed], facts: dict[str, Any]) -> None:
    p = star["dhcp-s1"]
    mac = facts["nodes"]["pc1"]["mac"]
    seen = dhcp(p)["clients"][mac]  # the fast reader's own DHCP decoder: the cross-check
    packets = frozenset(m["packet"] for m in seen["messages"])
    v = _view(
        star,
        "dhcp-s1",
        ("udp", "0.0.0.0", 68, "255.255.255.255", 67),
        ("udp", facts["leases"]["pc1"]["address"], 68, facts["nodes"]["dhcp"]["ip"], 67),
        only=packets,
    )
    assert [r["n"] for r in v["rows"]] == sorted(packets) and v["total"] == 4
    msgs = [r["l7"][0] for r in v["rows"]]
    assert [m["what"] for m in msgs] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]
    discover = v["rows"][0]
    assert msgs[0]["xid"] == seen["messages"][0]["xid"] and msgs[0]["chaddr"] == mac
    assert discover["l2"]["dst"] == "ff:ff:ff:ff:ff:ff" and discover["l3"]["src"] == "0.0.0.0"
    assert (discover["l4"]["sport"], discover["l4"]["dport"]) == (68, 67) and discover["dir"] == "c2s"
    assert msgs[3]["yiaddr"] == facts["leases"]["pc1"]["address"] and v["rows"][3]["dir"] == "s2c"
    assert all(m["xid"] == msgs[0]["xid"] for m in msgs)


def test_dns_query_and_answer(star: dict[str, Parsed], facts: dict[str, Any]) -> None:
    p = star["dns-s1"]
    key = next(f.key for f in p.flows if f.key[1] == "10.0.0.100" and f.key[4] == 53 and f.packets == 4)
    v = _view(star, "dns-s1", key)
    msgs = [r["l7"][0] for r in v["rows"]]
    q = next(m for m in msgs if m["what"] == "query" and m["qtype"] == "A")
    a = next(m for m in msgs if m["what"] == "response" and m["id"] == q["id"])
    assert q["qname"] == "mail.projet.dz."
    assert a["rcode"] == "NOERROR" and a["answers"] == [f"A {facts['nodes']['mail']['ip']}"]
    assert all(r["l4"]["proto"] == "UDP" and 53 in (r["l4"]["sport"], r["l4"]["dport"]) for r in v["rows"])


def test_a_long_flow_is_cut_and_says_so(star: dict[str, Parsed]) -> None:
    key = _flow(star["pc1-s1"], 587)
    [v] = build(star, [ViewSpec("v", "pc1-s1", (key,))], cap=10)
    assert v["shown"] == 10 and v["cut"] and v["total"] > 10
    assert f"the first 10 of {v['total']} packets; the pcap has them all" in v["notes"]


def _raw_ip_copy(src: Path, dst: Path) -> None:
    """The same packets as a TUN device would have them: no Ethernet header (link type 101)."""
    p = parse(src)
    out = bytearray(p.pcap.data[:20]) + struct.pack("<I", 101)
    for _, rec, at, caplen in iter_records(p.pcap):
        sec, frac, _, wire = struct.unpack_from("<IIII", p.pcap.data, rec)
        out += struct.pack("<IIII", sec, frac, caplen - 14, wire - 14) + p.pcap.data[at + 14 : at + caplen]
    dst.write_bytes(bytes(out))


def test_behind_nat_and_without_ethernet(tmp_path: Path) -> None:
    facts = json.loads((NAT / "facts.json").read_text())
    _raw_ip_copy(NAT / "c-r.pcap", tmp_path / "tun.pcap")
    parsed = {"tun": parse(tmp_path / "tun.pcap", link="tun"), "r-s": parse(NAT / "r-s.pcap", link="r-s")}
    login = next(f.key for f in parsed["tun"].flows if f.proto == 6 and f.cport == facts["tcp"][0]["client_port"])
    ping = next(f.key for f in parsed["tun"].flows if f.proto == 1)
    v, icmp = build(parsed, [ViewSpec("a", "tun", (login,)), ViewSpec("b", "tun", (ping,))])
    assert v["linktype"] == "raw IP" and all(r["l2"] is None for r in v["rows"])
    assert any("no Ethernet header" in n for n in v["notes"])
    assert v["rows"][0]["l3"]["src"] == facts["client"] and v["rows"][0]["l4"]["flags"] == "SYN"
    sent = [t for r in v["rows"] if r["dir"] == "c2s" for _, t in [(m["proto"], m["text"]) for m in r["l7"]]]
    assert sent == ["a1 LOGIN carol ********", "a2 LOGOUT"]
    assert [r["l4"]["type"] for r in icmp["rows"]][:2] == ["echo-request", "echo-reply"]
    assert {r["l3"]["proto"] for r in icmp["rows"]} == {"ICMP"}


def test_a_mail_in_clear_is_one_message_and_auth_answers_are_starred() -> None:
    data = (
        b"EHLO pc1\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\nMAIL FROM:<a@b>\r\nDATA\r\n"
        b"Subject: hi\r\n\r\nbody line\r\n.\r\nQUIT\r\n"
    )
    msgs = clear_messages(data, len(data), "smtp", C2S)
    texts = [m.text for m in msgs]
    assert texts[:3] == ["EHLO pc1", "AUTH LOGIN", "******** (a SASL answer: base64, not encryption)"]
    assert "c2VjcmV0" not in " ".join(texts) and "YWxpY2U=" not in " ".join(texts)
    assert "(the mail itself: 26 bytes, Subject: hi)" in texts and texts[-2:] == [".", "QUIT"]
    assert [m.offset for m in msgs] == sorted(m.offset for m in msgs)


VPN = DATA / "vpn"


@pytest.fixture(scope="module")
def vpn() -> tuple[dict[str, Parsed], dict[str, Any]]:
    facts = json.loads((VPN / "facts.json").read_text())
    links = ("rb-isp", "rb-vpn0", "student-vpn0")
    return {lk: parse(VPN / f"{lk}.pcap", link=lk) for lk in links}, facts


def _tunnel(facts: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for k, v in facts["tunnels"].items() if f"tunnel {name} " in k)


def test_outside_the_tunnel_only_openvpn_between_its_two_ends(vpn: tuple[dict[str, Parsed], dict[str, Any]]) -> None:
    parsed, facts = vpn
    from lab.capture.analyse import flow_key

    outer = _tunnel(facts, "campus")["tunnel"][0]
    v = _view(parsed, outer["link"], flow_key(outer["flow"]), hint="openvpn")
    assert v["total"] == outer["packets"] and v["linktype"] == "Ethernet"
    ends = {flow_key(outer["flow"])[1], flow_key(outer["flow"])[3]}
    assert {r["l3"]["src"] for r in v["rows"]} == ends and {r["l4"]["proto"] for r in v["rows"]} == {"UDP"}
    ops = [m["what"] for r in v["rows"] for m in r["l7"]]
    assert {m["proto"] for r in v["rows"] for m in r["l7"]} == {"OpenVPN"}
    assert "P_CONTROL_V1" in ops and "P_DATA_V2" in ops  # its TLS handshake, then the encrypted packets
    client_reset = next(r for r in v["rows"] for m in r["l7"] if m["what"].startswith("P_CONTROL_HARD_RESET_CLIENT"))
    assert client_reset["dir"] == "c2s"  # turned around: the client is the end that asked first
    assert "EHLO" not in json.dumps(v) and "10.30.1." not in json.dumps(v)  # no inner text, no inner address


def test_inside_the_tunnel_the_same_mail_without_ethernet(vpn: tuple[dict[str, Parsed], dict[str, Any]]) -> None:
    parsed, facts = vpn
    from lab.capture.analyse import flow_key

    relay = next(x for x in _tunnel(facts, "campus")["inside"] if x["flow"].startswith("tcp"))
    v = _view(parsed, relay["link"], flow_key(relay["flow"]))
    assert v["linktype"] == "raw IP" and all(r["l2"] is None for r in v["rows"])
    assert v["rows"][0]["l3"]["src"] == flow_key(relay["flow"])[1] and v["rows"][0]["l4"]["dport"] == 25
    smtp = [t for _, p, t in _texts(v) if p == "SMTP"]
    assert smtp[0] == "220 mail-a.projet.dz ESMTP Postfix" and "STARTTLS" in smtp
    assert "ClientHello: no SNI" in json.dumps(v)  # Postfix's SMTP client names no server
    student = next(x for x in _tunnel(facts, "roadwarrior")["inside"] if x["flow"].startswith("tcp"))
    s = _view(parsed, student["link"], flow_key(student["flow"]))
    assert s["total"] == student["packets"] and facts["messages"]["home"]["on"] == "student"
    hello = next(m for r in s["rows"] for m in r["l7"] if m.get("handshake") == "ClientHello")
    assert hello["sni"] == facts["messages"]["home"]["server"]
    synack = s["rows"][1]
    assert synack["l4"]["flags"] == "SYN ACK" and "MSS 1400" in synack["l4"]["options"]  # lowered in the tunnel
