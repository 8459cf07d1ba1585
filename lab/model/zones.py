"""DNS derived from a topology: zones with their records, and how each server finds the others."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from lab.model.mtasts import STS_HOST, STS_RECORD
from lab.model.nodeplan import NodePlan
from lab.model.topology import Subnet, TopologyFile

#: the DKIM selector of every lab domain (its key is made per run)
DKIM_SELECTOR = "lab"


@dataclass(frozen=True)
class Record:
    """One resource record.  ``key`` names a value made per run at deploy (the plan cannot
    know it): ``dkim:<domain>`` (the DKIM public key), ``tlsa:<mail node>`` (the SHA-256
    of its TLS key), ``ds:<dns node>:<zone>`` (the zone's signing key), ``sts:<domain>`` (the MTA-STS
    policy's id, new every run); ``value`` is
    then empty until the deploy fills it in."""

    owner: str
    type: str
    value: str
    key: str | None = None


def txt_strings(text: str) -> str:
    """A TXT value as zone-file text: quoted strings of at most 255 characters."""
    chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    quoted = ['"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks]
    return quoted[0] if len(quoted) == 1 else "( " + " ".join(quoted) + " )"


@dataclass
class Zone:
    name: str  # "projet.dz" or "0.0.10.in-addr.arpa"
    server: str  # node name of the authoritative server
    records: list[Record] = field(default_factory=list)


@dataclass
class Forward:
    """Another lab domain a DNS server must find: delegated from its own lab root."""

    zone: str
    servers: list[str]
    ns: str = ""  # the authoritative server's host name
    server: str = ""  # its node name (whose key signs the zone: the DS the parent publishes)


def reverse_zone(cidr: str) -> str:
    """The in-addr.arpa zone on an octet boundary that holds this subnet."""
    net = ipaddress.IPv4Network(cidr)
    octets = str(net.network_address).split(".")
    keep = max(1, min(3, net.prefixlen // 8))
    return ".".join(reversed(octets[:keep])) + ".in-addr.arpa"


class Servers:
    """Which DNS node serves which domain: the one a mail domain names, or the only one."""

    def __init__(self, t: TopologyFile):
        self.t = t
        self.nodes = [n for n, v in t.nodes.items() if v.role == "dns"]

    def for_domain(self, domain: str) -> str | None:
        md = self.t.domains.get(domain)
        if md and md.dns:
            return md.dns
        return self.nodes[0] if len(self.nodes) == 1 else None


def zones(
    t: TopologyFile, subnets: dict[str, Subnet], nodes: dict[str, NodePlan], fixed: dict[str, str] | None = None
) -> tuple[list[Zone], dict[str, list[Forward]]]:
    """Every zone, and what each DNS server's lab root delegates.  ``fixed``: the
    addresses DHCP hands out by reservation (node -> address): they get A and PTR records."""
    servers = Servers(t)
    fixed = fixed or {}
    addr = {n.name: n.ip or fixed.get(n.name) for n in nodes.values()}
    forward = _forward_zones(t, nodes, servers, addr)
    public = _public_zones(t, nodes)
    reverse = _reverse_zones(t, subnets, nodes, servers, fixed)
    every = list(forward.values()) + public + reverse
    # every DNS server finds the other lab domains and reverse zones through a lab root
    # zone of its own that delegates them to their servers, so mail relays between sites
    # find their MX, a peer's address has its name, and nothing is asked outside the lab
    delegations: dict[str, list[Forward]] = {}
    for srv in servers.nodes:
        mine = {z.name for z in every if z.server == srv}
        for z in [*forward.values(), *reverse]:
            if z.name not in mine and z.server != srv and nodes[z.server].ip:
                delegations.setdefault(srv, []).append(
                    Forward(z.name, [str(nodes[z.server].ip)], nodes[z.server].fqdn, z.server)
                )
    return every, delegations


def _forward_zones(
    t: TopologyFile, nodes: dict[str, NodePlan], servers: Servers, addr: dict[str, str | None]
) -> dict[str, Zone]:
    """Every domain named by a node or a mail domain, with its NS, A and MX records."""
    out: dict[str, Zone] = {}
    for dom in sorted({n.domain or t.domain for n in t.nodes.values()} | set(t.domains)):
        srv = servers.for_domain(dom)
        if srv is not None:
            out[dom] = Zone(dom, srv, [Record("@", "NS", f"{nodes[srv].fqdn}.")])
    for n in nodes.values():
        ip = addr.get(n.name)
        if ip is not None and n.role != "switch" and n.domain in out:
            out[n.domain].records.append(Record(n.name, "A", ip))
            for alias in t.nodes[n.name].aliases:
                out[n.domain].records.append(Record(alias, "A", ip))
    for dom, md in t.domains.items():
        if dom in out:
            out[dom].records.append(Record("@", "MX", f"10 {nodes[md.mail].fqdn}."))
            out[dom].records += trust_records(t, dom, nodes)
            if t.security.mta_sts and addr.get(md.mail):
                out[dom].records.append(Record(STS_HOST, "A", str(addr[md.mail])))
    return out


def trust_records(t: TopologyFile, dom: str, nodes: dict[str, NodePlan]) -> list[Record]:
    """SPF, DMARC and the DKIM key of a mail domain (with filtering), the TLSA of its MX (with DANE).

    SPF names the MX's own address and, behind NAT, the public one its mail leaves from."""
    sec, md = t.security, t.domains[dom]
    mx = nodes[md.mail]
    out = []
    if sec.filtering:
        ips = [ip for ip in (mx.ip, md.public.address if md.public else None) if ip]
        spf = " ".join(["v=spf1", *(f"ip4:{ip}" for ip in dict.fromkeys(ips)), "-all"])
        out += [
            Record("@", "TXT", spf),
            Record("_dmarc", "TXT", f"v=DMARC1; p={sec.dmarc}; adkim=r; aspf=r"),
            Record(f"{DKIM_SELECTOR}._domainkey", "TXT", "", key=f"dkim:{dom}"),
        ]
    if sec.mta_sts:
        out.append(Record(STS_RECORD, "TXT", "", key=f"sts:{dom}"))
    if sec.dane and mx.fqdn.endswith("." + dom):
        out.append(Record(f"_25._tcp.{mx.fqdn[: -len(dom) - 1]}", "TLSA", "", key=f"tlsa:{mx.name}"))
    return out


def _public_zones(t: TopologyFile, nodes: dict[str, NodePlan]) -> list[Zone]:
    """Split horizon: the outside copy of a domain names its MX at the public (NATed) address."""
    out = []
    for dom, md in t.domains.items():
        if md.public is None:
            continue
        mx = nodes[md.mail]
        pz = Zone(
            dom,
            md.public.dns,
            [Record("@", "NS", f"{nodes[md.public.dns].fqdn}."), Record("@", "MX", f"10 {mx.fqdn}.")],
        )
        if mx.fqdn.endswith("." + dom):
            pz.records.append(Record(mx.fqdn[: -len(dom) - 1], "A", md.public.address))
        pz.records += trust_records(t, dom, nodes)
        if t.security.mta_sts:  # the policy host is the MX, seen outside at its public address
            pz.records.append(Record(STS_HOST, "A", md.public.address))
        out.append(pz)
    return out


def _reverse_zones(
    t: TopologyFile, subnets: dict[str, Subnet], nodes: dict[str, NodePlan], servers: Servers, fixed: dict[str, str]
) -> list[Zone]:
    """PTR records for every address the lab uses (static ones, and DHCP reservations).

    A subnet with a DNS server on it is that server's; a public subnet (the internet side
    of a NAT: outside mail servers look up the masqueraded address) is served where the
    outside looks (the public copy of a domain); else by the first server naming its hosts.
    """
    members: dict[str, list[tuple[NodePlan, str]]] = {}
    for n in nodes.values():
        for i in n.interfaces:
            ip = i.ip or (fixed.get(n.name) if i.dhcp else None)
            if ip:
                members.setdefault(i.subnet, []).append((n, ip))
    public_names = {md.public.address: nodes[md.mail].fqdn for md in t.domains.values() if md.public is not None}
    rev: dict[str, Zone] = {}
    for sub_name, sub in subnets.items():
        here = members.get(sub_name)
        if not here:
            continue
        local = sorted(n.name for n, _ in here if n.role == "dns")
        ask = (lambda d: _outside(t, d, servers)) if _public(sub.cidr) else servers.for_domain
        named = sorted({s for s in (ask(n.domain) for n, _ in here) if s})
        srv = local[0] if local else named[0] if named else (servers.nodes[0] if servers.nodes else None)
        if srv is None:
            continue
        zname = reverse_zone(sub.cidr)
        zone = rev.setdefault(zname, Zone(zname, srv, [Record("@", "NS", f"{nodes[srv].fqdn}.")]))
        depth = 4 - (len(zname.split(".")) - 2)
        for n, ip in here:
            owner = ".".join(reversed(ip.split(".")[-depth:]))
            # a domain's public (NAT) address names its mail server, whose public A is that
            # address: outside servers see the masqueraded mail with a name that checks out
            name = public_names.get(ip, n.fqdn)
            zone.records.append(Record(owner, "PTR", f"{name}."))
    return list(rev.values())


_RFC1918 = [ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def _public(cidr: str) -> bool:
    net = ipaddress.IPv4Network(cidr)
    return not any(net.subnet_of(p) for p in _RFC1918)


def _outside(t: TopologyFile, domain: str, servers: Servers) -> str | None:
    """The DNS server the outside asks about ``domain``: its public copy's, else its own."""
    md = t.domains.get(domain)
    if md is not None and md.public is not None:
        return md.public.dns
    return servers.for_domain(domain)
