"""lab.model.plan: zones, records, DHCP scopes and mail hosts derived from a topology."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.model.load import load_topology
from lab.model.plan import Plan, Record, Zone, make_plan, reverse_zone


def zone(plan: Plan, name: str) -> Zone:
    found = [z for z in plan.zones if z.name == name]
    assert len(found) == 1, f"zones: {[z.name for z in plan.zones]}"
    return found[0]


def records(z: Zone, rtype: str) -> set[tuple[str, str]]:
    return {(r.owner, r.value) for r in z.records if r.type == rtype}


class TestStarPlan:
    def test_nodes(self, star_plan: Plan) -> None:
        mail = star_plan.nodes["mail"]
        assert (mail.fqdn, mail.ip, mail.prefixlen, mail.gateway, mail.subnet) == (
            "mail.projet.dz",
            "10.0.0.10",
            24,
            "10.0.0.1",
            "lan",
        )
        assert mail.dns_servers == ["10.0.0.2"] and mail.search == "projet.dz" and not mail.dhcp
        pc1 = star_plan.nodes["pc1"]
        assert pc1.dhcp and pc1.ip is None and pc1.prefixlen == 24 and pc1.fqdn == "pc1.projet.dz"
        s1 = star_plan.nodes["s1"]
        assert (s1.role, s1.ip, s1.subnet) == ("switch", None, "lan")

    def test_zone_names_and_servers(self, star_plan: Plan) -> None:
        assert [(z.name, z.server) for z in star_plan.zones] == [("projet.dz", "dns"), ("0.0.10.in-addr.arpa", "dns")]

    def test_forward_zone(self, star_plan: Plan) -> None:
        z = zone(star_plan, "projet.dz")
        assert records(z, "NS") == {("@", "dns.projet.dz.")}
        # static nodes, and DHCP hosts at their reservation (the same address every run)
        assert records(z, "A") == {
            ("dns", "10.0.0.2"),
            ("dhcp", "10.0.0.3"),
            ("mail", "10.0.0.10"),
            ("pc1", "10.0.0.100"),
            ("pc2", "10.0.0.101"),
        }
        assert records(z, "MX") == {("@", "10 mail.projet.dz.")}
        assert z.records[0] == Record("@", "NS", "dns.projet.dz.")  # NS first, after the SOA

    def test_reverse_zone(self, star_plan: Plan) -> None:
        z = zone(star_plan, "0.0.10.in-addr.arpa")
        assert records(z, "NS") == {("@", "dns.projet.dz.")}
        assert records(z, "PTR") == {
            ("2", "dns.projet.dz."),
            ("3", "dhcp.projet.dz."),
            ("10", "mail.projet.dz."),
            ("100", "pc1.projet.dz."),
            ("101", "pc2.projet.dz."),
        }

    def test_dhcp_scope(self, star_plan: Plan) -> None:
        (s,) = star_plan.scopes
        assert (s.server, s.subnet, s.cidr, s.pool_start, s.pool_end) == (
            "dhcp",
            "lan",
            "10.0.0.0/24",
            "10.0.0.100",
            "10.0.0.199",
        )
        assert s.routers == ["10.0.0.1"]
        assert s.dns_servers == ["10.0.0.2"]
        assert (s.domain, s.lease_time) == ("projet.dz", 3600)

    def test_mail(self, star_plan: Plan) -> None:
        assert list(star_plan.mail) == ["mail"]
        host = star_plan.mail["mail"]
        assert (host.node, host.hostname, host.domains) == ("mail", "mail.projet.dz", ["projet.dz"])
        assert [(u.address, u.password) for u in host.users] == [
            ("alice@projet.dz", "alice-secret"),
            ("bob@projet.dz", "bob-secret"),
        ]

    def test_lookups(self, star_plan: Plan) -> None:
        assert star_plan.user("bob@projet.dz") is not None
        assert star_plan.user("carol@projet.dz") is None
        mail = star_plan.nodes["mail"]
        assert star_plan.node_by_fqdn("mail.projet.dz") is mail
        assert star_plan.node_by_fqdn("mail.projet.dz.") is mail
        assert star_plan.node_by_fqdn("mail") is mail
        assert star_plan.node_by_fqdn("mail.example.org") is None


@pytest.mark.parametrize(
    ("cidr", "zone_name"),
    [
        ("10.0.0.0/24", "0.0.10.in-addr.arpa"),
        ("192.168.1.128/25", "1.168.192.in-addr.arpa"),
        ("172.16.0.0/16", "16.172.in-addr.arpa"),
        ("10.0.16.0/20", "0.10.in-addr.arpa"),  # not on an octet boundary: the enclosing /16
        ("10.0.0.0/8", "10.in-addr.arpa"),
    ],
)
def test_reverse_zone_name(cidr: str, zone_name: str) -> None:
    assert reverse_zone(cidr) == zone_name


@pytest.mark.parametrize(
    ("cidr", "gateway", "pool", "addresses", "zone_name"),
    [
        (
            "10.0.0.0/24",
            "10.0.0.1",
            "10.0.0.100-10.0.0.199",
            ("10.0.0.2", "10.0.0.3", "10.0.0.10"),
            "0.0.10.in-addr.arpa",
        ),
        (
            "172.16.0.0/16",
            "172.16.0.1",
            "172.16.1.0-172.16.1.255",
            ("172.16.0.2", "172.16.2.3", "172.16.200.10"),
            "16.172.in-addr.arpa",
        ),
        (
            "10.0.16.0/20",
            "10.0.16.1",
            "10.0.20.1-10.0.20.200",
            ("10.0.16.2", "10.0.17.3", "10.0.31.254"),
            "0.10.in-addr.arpa",
        ),
    ],
    ids=["/24", "/16", "/20"],
)
def test_ptr_owners(
    lan_variant: Callable[..., Path],
    cidr: str,
    gateway: str,
    pool: str,
    addresses: tuple[str, str, str],
    zone_name: str,
) -> None:
    dns, dhcp, mail = addresses
    topo = load_topology(
        lan_variant(
            ("cidr: 10.0.0.0/24", f"cidr: {cidr}"),
            ("gateway: 10.0.0.1", f"gateway: {gateway}"),
            ("pool: 10.0.0.100-10.0.0.199", f"pool: {pool}"),
            ("address: 10.0.0.2}", f"address: {dns}}}"),
            ("address: 10.0.0.3}", f"address: {dhcp}}}"),
            ("address: 10.0.0.10}", f"address: {mail}}}"),
        )
    )
    plan = make_plan(topo)
    z = zone(plan, zone_name)
    ptr = records(z, "PTR")
    assert {v for _, v in ptr} == {
        "dns.projet.dz.",
        "dhcp.projet.dz.",
        "mail.projet.dz.",
        "pc1.projet.dz.",
        "pc2.projet.dz.",
    }
    # owner + zone must be the address's reverse name, for every record
    fixed = {r.node: r.address for sc in plan.scopes for r in sc.reservations}
    for owner, value in ptr:
        ip = plan.nodes[value.split(".")[0]].ip or fixed[value.split(".")[0]]
        assert f"{owner}.{zone_name}" == ipaddress.ip_address(ip).reverse_pointer, (owner, value)
    (scope,) = plan.scopes
    assert (scope.cidr, scope.routers) == (cidr, [gateway])


def test_node_with_its_own_domain(lan_variant: Callable[..., Path]) -> None:
    topo = load_topology(
        lan_variant(
            ("mail: {role: mail, address: 10.0.0.10}", "mail: {role: mail, address: 10.0.0.10, domain: corp.dz}")
        )
    )
    plan = make_plan(topo)
    mail = plan.nodes["mail"]
    assert (mail.fqdn, mail.search) == ("mail.corp.dz", "corp.dz")
    assert [z.name for z in plan.zones] == ["corp.dz", "projet.dz", "0.0.10.in-addr.arpa"]
    corp = zone(plan, "corp.dz")
    assert records(corp, "A") == {("mail", "10.0.0.10")}
    assert records(corp, "NS") == {("@", "dns.projet.dz.")}
    projet = zone(plan, "projet.dz")
    assert ("mail", "10.0.0.10") not in records(projet, "A")
    assert records(projet, "MX") == {("@", "10 mail.corp.dz.")}
    assert ("10", "mail.corp.dz.") in records(zone(plan, "0.0.10.in-addr.arpa"), "PTR")
    assert plan.mail["mail"].hostname == "mail.corp.dz"
    assert plan.node_by_fqdn("mail.corp.dz") is mail


def test_scope_without_gateway_has_no_routers(lan_variant: Callable[..., Path]) -> None:
    plan = make_plan(load_topology(lan_variant(("    gateway: 10.0.0.1\n", ""))))
    (scope,) = plan.scopes
    assert scope.routers == []
    assert plan.nodes["mail"].gateway is None


def test_mail_node_without_domain_still_has_a_host(lan_variant: Callable[..., Path]) -> None:
    path = lan_variant(
        (
            "  pc2:  {role: host, address: dhcp}",
            "  pc2:  {role: host, address: dhcp}\n  mx2:  {role: mail, address: 10.0.0.11}",
        ),
        ("  - {a: pc2,  b: s1}\n", "  - {a: pc2,  b: s1}\n  - {a: mx2,  b: s1}\n"),
    )
    plan = make_plan(load_topology(path))
    assert plan.mail["mx2"].domains == [] and plan.mail["mx2"].users == []
    assert plan.mail["mx2"].hostname == "mx2.projet.dz"


def test_every_address_the_lab_uses_has_a_name() -> None:
    """DHCP hosts at their reservation, and the firewall's public (NAT) address named after
    the mail server whose public A it is, on the DNS server the outside asks."""
    plan = make_plan(load_topology(Path(__file__).resolve().parents[2] / "topologies" / "dmz.yaml"))
    wan = zone(plan, "113.0.203.in-addr.arpa")
    assert wan.server == "ext-dns", "outside mail servers look the masqueraded address up there"
    assert ("2", "mail.projet.dz.") in records(wan, "PTR")
    public = next(z for z in plan.zones if z.name == "projet.dz" and z.server == "ext-dns")
    assert ("mail", "203.0.113.2") in records(public, "A"), "forward-confirmed"
    lan = zone(plan, "0.0.10.in-addr.arpa")
    assert ("100", "pc1.projet.dz.") in records(lan, "PTR")
    # the other servers find the reverse zones they do not hold through their lab root
    assert any(f.zone == "113.0.203.in-addr.arpa" for f in plan.forwards["dns"])
