"""Wire assertions: what the captured packets prove, checked after the last step.

Each assertion becomes a result like a step's (kind ``wire``), so reports and JUnit
show it; a failure names the link, the flow and the packet.
"""

from __future__ import annotations

from typing import Any

from lab.capture import analyse as A
from lab.model import scenario as S
from lab.model.plan import Plan
from lab.model.tlspolicy import weakness
from lab.scenario.context import Outcome, failed, passed
from lab.scenario.wire_vpn import tunnel_check

VERSION_RANK = {"SSLv3": 0, "TLSv1.0": 1, "TLSv1.1": 2, "TLSv1.2": 3, "TLSv1.3": 4}


def check(
    wire: S.Wire,
    analysis: dict[str, Any],
    plan: Plan,
    links: list[dict[str, Any]],
    pcaps: dict[str, Any],
    macs: dict[str, str],
) -> list[tuple[str, Outcome]]:
    outcomes: list[Outcome] = []
    if wire.tls is not None:
        outcomes.append(_tls(wire.tls, analysis))
    if wire.suites is not None:
        outcomes.append(_suites(wire.suites, analysis))
    if wire.no_plaintext_auth:
        outcomes.append(_creds(analysis))
    if wire.no_plaintext_mail:
        outcomes.append(_mail(analysis))
    if wire.ssh:
        outcomes.append(_ssh(analysis))
    outcomes += [_path(pth, plan, links, pcaps) for pth in wire.path]
    if wire.nat is not None:
        outcomes.append(_nat(wire.nat.node, links, pcaps))
    if wire.dhcp is not None:
        outcomes.append(_dhcp(wire.dhcp, analysis, plan, macs))
    outcomes += [_proxied(p, plan, pcaps) for p in wire.proxied]
    outcomes += [tunnel_check(t, plan, pcaps) for t in wire.tunnel]
    out = list(zip(wire.check_names(), outcomes, strict=True))
    return out


def _tls(t: S.WireTls, analysis: dict[str, Any]) -> Outcome:
    want = VERSION_RANK[f"TLSv{t.min_version}"]
    on_ports = [f for f in analysis["tls"] if _server_port(f["flow"]) in t.ports]
    # a connection where the client sent nothing (a port probe) carried no mail
    flows = [f for f in on_ports if f.get("client_bytes", 1) > 0]
    probes = sorted({f["flow"] for f in on_ports if f.get("client_bytes", 1) == 0})
    if not flows:
        return failed(f"no flow on ports {t.ports} was captured: nothing proves TLS")
    # the same connection is captured on every link it crosses: one capture that missed the
    # server's half of a handshake (the client's ClientHello is there) is a gap in that
    # capture, not plaintext, when another link saw the handshake complete
    complete = {f["flow"] for f in flows if f.get("tls")}
    gaps = sorted({f"{f['link']}: {f['flow']}" for f in flows if _gap(f) and f["flow"] in complete})
    flows = [f for f in flows if not (_gap(f) and f["flow"] in complete)]
    # a ClientHello the server answered with no ServerHello on any link: a handshake it
    # refused (a scanner trying suites the policy does not have), no data crossed
    refused = [f for f in flows if not f.get("tls") and f.get("client_versions")]
    flows = [f for f in flows if f not in refused]
    bad = []
    for f in flows:
        if not f.get("tls") and f.get("mode"):
            bad.append(
                f"{f['link']}: {f['flow']} began TLS but no handshake completed on any link ({f.get('handshake')})"
            )
        elif not f.get("tls"):
            bad.append(f"{f['link']}: {f['flow']} is plaintext")
        elif VERSION_RANK.get(str(f.get("version")), -1) < want:
            bad.append(f"{f['link']}: {f['flow']} negotiated {f.get('version')} (packet {f.get('tls_packet')})")
    facts = [
        {
            k: f.get(k)
            for k in (
                "link",
                "flow",
                "mode",
                "version",
                "cipher",
                "sni",
                "cert_subject",
                "cert_san",
                "cert_issuer",
                "cert_serial",
            )
        }
        for f in flows
    ]
    if bad:
        return failed(f"{len(bad)} of {len(flows)} flow(s) fail: " + "; ".join(bad[:5]), flows=facts, probes=probes)
    versions = sorted({str(f.get("version")) for f in flows})
    extra = f"; {len(probes)} connection(s) without client data ignored" if probes else ""
    extra += f"; {len(refused)} handshake(s) the server refused (a scanner's probes)" if refused else ""
    if gaps:
        extra += f"; {len(gaps)} capture(s) missed a handshake another link saw complete"
    return passed(
        f"{len(flows)} flow(s), all TLS ({', '.join(versions)}){extra}", flows=facts, probes=probes, capture_gaps=gaps
    )


def _gap(f: dict[str, Any]) -> bool:
    """The client's TLS record is in this capture, the server's answer is not."""
    return not f.get("tls") and f.get("mode") == "implicit" and f.get("server_bytes", 0) == 0


def _suites(w: S.WireSuites, analysis: dict[str, Any]) -> Outcome:
    flows = [
        f for f in analysis["tls"] if _server_port(f["flow"]) in w.ports and f.get("tls") and f.get("client_bytes", 1)
    ]
    if not flows:
        return failed(f"no TLS flow on ports {w.ports} was captured: nothing proves the suites")
    bad, facts = [], []
    for f in flows:
        chosen = f.get("cipher_openssl") or f.get("cipher") or "?"
        why = weakness(str(f.get("version")), chosen) if f.get("version") else "no ServerHello"
        facts.append({k: f.get(k) for k in ("link", "flow", "version", "cipher", "client_ciphers")})
        if why:
            bad.append(f"{f['link']}: {f['flow']} chose {f.get('version')} {chosen}: {why}")
    chosen_set = sorted({f"{f.get('version')} {f.get('cipher')}" for f in flows})
    offered = sorted({c for f in flows for c in f.get("client_ciphers") or []})
    if bad:
        return failed(
            f"{len(bad)} of {len(flows)} flow(s) break the {w.policy} policy: " + "; ".join(bad[:5]), flows=facts
        )
    return passed(
        f"{len(flows)} flow(s); chosen: {', '.join(chosen_set)}; {len(offered)} suite(s) offered by the clients",
        flows=facts,
        offered=offered,
    )


def _mail(analysis: dict[str, Any]) -> Outcome:
    found = analysis.get("plaintext_mail", [])
    if found:
        first = found[0]
        subjects = sorted({str(f.get("subject")) for f in found})
        return failed(
            f"{len(subjects)} message(s) crossed in clear (seen on {len(found)} link capture(s)), first: "
            f"{first.get('subject')!r} on {first.get('link')} packet {first.get('packet')} ({first.get('flow')})",
            findings=found,
            subjects=subjects,
        )
    return passed("no SMTP flow sent DATA before TLS")


def _creds(analysis: dict[str, Any]) -> Outcome:
    found = analysis["credentials"]
    if found:
        first = found[0]
        return failed(
            f"{len(found)} credential(s) in clear, first: {first.get('what')} on {first.get('link')} "
            f"packet {first.get('packet')} ({first.get('flow')})",
            findings=found,
        )
    return passed("no AUTH, LOGIN, USER/PASS before TLS, nor an HTTP password in clear, on any link")


def _ssh(analysis: dict[str, Any]) -> Outcome:
    flows = [f for f in analysis.get("ssh", []) if f["client"]["bytes"] and f["server"]["bytes"]]
    if not flows:
        return failed("no SSH flow was captured: nothing proves it")
    bad = [f for f in flows if not f["encrypted"] or f["readable"]]
    facts = [
        {
            "link": f["link"],
            "flow": f["flow"],
            "client": f["client"]["banner"],
            "server": f["server"]["banner"],
            "encrypted": f["encrypted"],
            "readable_after_kex": f["client"]["readable_after_kex"] + f["server"]["readable_after_kex"],
        }
        for f in flows
    ]
    if bad:
        f = bad[0]
        why = "no key exchange completed" if not f["encrypted"] else "readable text after the key exchange"
        return failed(f"{len(bad)} of {len(flows)} SSH flow(s): {why} ({f['link']}: {f['flow']})", flows=facts)
    banners = sorted({str(f["server"]["banner"]) for f in flows})
    return passed(
        f"{len(flows)} SSH flow(s): version exchange ({', '.join(banners)}), key exchange, then nothing readable",
        flows=facts,
    )


def _server_port(flow: str) -> int:
    try:
        return int(flow.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return -1


def _path(pth: S.WirePath, plan: Plan, links: list[dict[str, Any]], pcaps: dict[str, Any]) -> Outcome:
    src_ips = {i.ip for i in plan.nodes[pth.from_].interfaces if i.ip}
    dst_ips = {i.ip for i in plan.nodes[pth.to].interfaces if i.ip}
    subnet_of = {lk["link"]: lk["subnet"] for lk in links}
    key = None
    for _link, pcap in pcaps.items():
        for f in A._parsed(pcap).flows:
            k = f.key
            if k[0] == "tcp" and k[1] in src_ips and k[3] in dst_ips and k[4] == pth.port:
                if key is None or f.first_ts < key[1]:
                    key = (k, f.first_ts)
    if key is None:
        return failed(f"no TCP flow from {pth.from_} to {pth.to}:{pth.port} was captured on any link")
    res = A.path(pcaps, key[0])
    # only where the client's packets went: with asymmetric routes the replies take other links
    forward = [e for e in res["links"] if e.get("c2s_packets", 0) > 0]
    seen_subnets: list[str] = []
    for entry in forward:
        sub = subnet_of.get(entry["link"])
        if sub and (not seen_subnets or seen_subnets[-1] != sub):
            seen_subnets.append(sub)
    want_subnets = [v for v in pth.via if v in plan.topology.subnets]
    want_routers = [v for v in pth.via if v not in plan.topology.subnets]
    it = iter(seen_subnets)
    in_order = all(any(s == w for s in it) for w in want_subnets)
    ttls = [max(e["ttl_c2s"]) for e in forward if e["ttl_c2s"]]
    crossed = (max(ttls) - min(ttls)) if ttls else 0
    replies = sorted({e["link"] for e in res["links"] if e.get("c2s_packets", 0) == 0})
    details = {
        "flow": res["flow"],
        "links": res["links"],
        "subnets": seen_subnets,
        "routers_crossed": crossed,
        "replies_only_on": replies,
    }
    if not in_order:
        return failed(
            f"{res['flow']} crossed {' -> '.join(seen_subnets) or 'nothing'}, expected {' -> '.join(want_subnets)}",
            **details,
        )
    if want_routers and crossed != len(want_routers):
        return failed(
            f"{res['flow']}: the TTL fell by {crossed} across the captures, "
            f"expected {len(want_routers)} router(s) ({', '.join(want_routers)})",
            **details,
        )
    return passed(f"{res['flow']} crossed {' -> '.join(seen_subnets)}; TTL -{crossed}", **details)


def _nat(node: str, links: list[dict[str, Any]], pcaps: dict[str, Any]) -> Outcome:
    mine = [lk["link"] for lk in links if node in lk["ends"] and lk["link"] in pcaps]
    matches = []
    for i, a in enumerate(mine):
        for b in mine[i + 1 :]:
            for m in A.nat(pcaps[a], pcaps[b]):
                if m.get("kind") in ("snat", "dnat"):
                    m["links"] = [a, b]
                    matches.append(m)
    if not matches:
        return failed(f"no flow was seen rewritten across {node} (links {', '.join(mine)})")
    first = matches[0]
    return passed(
        f"{len(matches)} flow(s) translated by {node}, e.g. {first['a']['flow']} on {first['a']['link']} "
        f"is {first['b']['flow']} on {first['b']['link']} ({first['kind']})",
        matches=matches[:50],
        mapping=A.nat_mapping(matches),
    )


def _dhcp(d: S.WireDhcp, analysis: dict[str, Any], plan: Plan, macs: dict[str, str]) -> Outcome:
    hosts = [n.name for n in plan.nodes.values() if n.dhcp] if d.clients == "all" else list(d.clients)
    seen: dict[str, dict[str, Any]] = {}
    for link in analysis["links"].values():
        for mac, c in (link.get("dhcp") or {}).get("clients", {}).items():
            if c.get("dora"):
                seen[mac.lower()] = c
    missing = [h for h in hosts if macs.get(h, "").lower() not in seen]
    details = {"clients": {h: seen.get(macs.get(h, "").lower(), {}) for h in hosts}}
    if missing:
        return failed(f"no complete DISCOVER/OFFER/REQUEST/ACK for {', '.join(missing)}", **details)
    return passed(f"{len(hosts)} client(s) did DISCOVER, OFFER, REQUEST, ACK", **details)


def _proxied(p: S.WireProxied, plan: Plan, pcaps: dict[str, Any]) -> Outcome:
    """client -> proxy and proxy -> server as two connections; none from client to server."""
    fixed = {r.node: r.address for sc in plan.scopes for r in sc.reservations}  # DHCP hosts' leases
    ips = {
        n: {i.ip for i in plan.nodes[n].interfaces if i.ip} | ({fixed[n]} if n in fixed else set())
        for n in (p.client, p.proxy, p.server)
    }
    port = plan.topology.data.proxies[p.proxy].port if p.proxy in plan.topology.data.proxies else 3128
    to_proxy, from_proxy, direct = [], [], []
    for link, pcap in pcaps.items():
        for f in A._parsed(pcap).flows:
            proto, c, _cp, srv, sp = f.key
            if proto != "tcp":
                continue
            where = {"link": link, "flow": f.name, "packets": f.packets}
            if c in ips[p.client] and srv in ips[p.proxy] and sp == port:
                to_proxy.append(where)
            elif c in ips[p.proxy] and srv in ips[p.server]:
                from_proxy.append(where)
            elif c in ips[p.client] and srv in ips[p.server] and f.pk[1] > 0:
                direct.append(where)
    details = {"client_to_proxy": to_proxy, "proxy_to_server": from_proxy, "direct": direct}
    if direct:
        return failed(
            f"{len(direct)} connection(s) went from {p.client} straight to {p.server}, e.g. {direct[0]['flow']}",
            **details,
        )
    if not to_proxy:
        return failed(f"no connection from {p.client} to {p.proxy}:{port} was captured", **details)
    if not from_proxy:
        return failed(f"no connection from {p.proxy} to {p.server} was captured", **details)
    return passed(
        f"{len({x['flow'] for x in to_proxy})} connection(s) {p.client} -> {p.proxy}:{port} and "
        f"{len({x['flow'] for x in from_proxy})} {p.proxy} -> {p.server}, none {p.client} -> {p.server}",
        **details,
    )
