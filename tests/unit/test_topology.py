"""lab.model.topology: the shipped topology loads; checks report located problems."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from lab.errors import InputError
from lab.model.load import load_topology
from lab.model.topology import Topology


def problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as info:
        load_topology(path)
    return [str(p).split(": ", 1)[1] for p in info.value.problems]  # without file:line:col


class TestStar:
    def test_loads(self, star: Topology) -> None:
        t = star.data
        assert star.name == "campus-star"
        assert t.domain == "projet.dz"
        assert set(t.nodes) == {"s1", "dns", "dhcp", "mail", "pc1", "pc2"}
        assert len(t.links) == 5
        assert t.subnets["lan"].cidr == "10.0.0.0/24"
        assert t.subnets["lan"].gateway == "10.0.0.1"
        assert t.subnets["lan"].dhcp is not None
        assert t.subnets["lan"].dhcp.server == "dhcp"
        assert t.subnets["lan"].dhcp.lease_time == 3600
        assert set(t.domains["projet.dz"].users) == {"alice", "bob"}

    def test_switch_and_subnet_of(self, star: Topology) -> None:
        assert star.switch_of("pc1") == "s1"
        assert star.subnet_of("mail") == "lan"
        assert star.subnet_of("s1") == "lan"

    def test_path_and_marks(self, star: Topology, repo: Path) -> None:
        assert star.path == repo / "topologies" / "star.yaml"
        line, _ = star.src.where(("nodes", "mail"))
        assert "mail: {role: mail" in star.path.read_text().splitlines()[line - 1]

    def test_model_is_frozen(self, star: Topology) -> None:
        with pytest.raises(ValidationError):
            star.data.nodes["mail"].role = "host"  # type: ignore[misc]


class TestAccepted:
    def test_good_corpus_topology(self, repo: Path) -> None:
        assert load_topology(repo / "tests/data/good/lan.yaml").name == "test-lan"

    def test_yaml11_boolean_names_are_node_names(self, lan_variant: Callable[..., Path]) -> None:
        # 'on' and 'yes' are YAML 1.1 booleans; as keys they must stay the names typed
        path = lan_variant(
            ("  pc1:", "  on:"), ("  pc2:", "  yes:"), ("{a: pc1,", '{a: "on",'), ("{a: pc2,", '{a: "yes",')
        )
        t = load_topology(path)
        assert {"on", "yes"} <= set(t.data.nodes)
        assert t.subnet_of("on") == "lan"

    def test_pool_is_normalised(self, lan_variant: Callable[..., Path]) -> None:
        t = load_topology(lan_variant(("pool: 10.0.0.100-10.0.0.199", "pool: 10.0.0.100 - 10.0.0.199")))
        assert t.data.subnets["lan"].dhcp is not None
        assert t.data.subnets["lan"].dhcp.pool == "10.0.0.100-10.0.0.199"

    def test_subnet_without_gateway_or_dhcp(self, lan_variant: Callable[..., Path]) -> None:
        path = lan_variant(
            ("    gateway: 10.0.0.1\n    dhcp:\n      server: dhcp\n      pool: 10.0.0.100-10.0.0.199\n", ""),
            ("pc1:  {role: host, address: dhcp}", "pc1:  {role: host, address: 10.0.0.21}"),
            ("pc2:  {role: host, address: dhcp}", "pc2:  {role: host, address: 10.0.0.22}"),
        )
        # the DHCP server of the file now serves nothing: that is refused (Kea would have no scope)
        with pytest.raises(InputError) as info:
            load_topology(path)
        (p,) = info.value.problems
        assert (p.field, p.message) == ("nodes.dhcp", "DHCP server 'dhcp' serves no subnet")
        path = lan_variant(
            ("    gateway: 10.0.0.1\n    dhcp:\n      server: dhcp\n      pool: 10.0.0.100-10.0.0.199\n", ""),
            ("pc1:  {role: host, address: dhcp}", "pc1:  {role: host, address: 10.0.0.21}"),
            ("pc2:  {role: host, address: dhcp}", "pc2:  {role: host, address: 10.0.0.22}"),
            ("dhcp: {role: dhcp,", "dhcp: {role: host,"),
        )
        t = load_topology(path)
        assert t.data.subnets["lan"].gateway is None and t.data.subnets["lan"].dhcp is None


class TestRejected:
    """Checks the golden corpus does not cover in this form."""

    def test_all_problems_are_collected(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(
            lan_variant(("domain: projet.dz", "domain: PROJET"), ("gateway: 10.0.0.1", "gateway: 10.9.9.9"))
        )
        assert found == [
            "domain: 'PROJET' is not a DNS domain name\n  hint: lower case, e.g. projet.dz",
            "subnets.lan.gateway: gateway 10.9.9.9 is outside 10.0.0.0/24",
        ]

    def test_unquoted_on_as_a_link_end_is_a_located_type_error(self, lan_variant: Callable[..., Path]) -> None:
        path = lan_variant(("  pc1:", "  on:"), ("{a: pc1,", "{a: on,"))
        with pytest.raises(InputError) as info:
            load_topology(path)
        (p,) = info.value.problems
        assert p.field == "links[3].a" and p.line == 23 and p.message == "expected text, got True"
        assert p.hint is not None and "quotes" in p.hint

    def test_switch_with_address(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(lan_variant(("{role: switch, subnet: lan}", "{role: switch, subnet: lan, address: 10.0.0.5}")))
        assert found == ["nodes.s1.address: a switch has no address\n  hint: remove 'address'"]

    def test_host_with_subnet(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(
            lan_variant(("pc1:  {role: host, address: dhcp}", "pc1:  {role: host, address: dhcp, subnet: lan}"))
        )
        assert len(found) == 1 and found[0].startswith("nodes.pc1.subnet: only switches carry a subnet")

    def test_link_to_itself(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(lan_variant(("  - {a: pc2,  b: s1}\n", "  - {a: pc2,  b: s1}\n  - {a: s1,  b: s1}\n")))
        assert found == ["links[5]: link from 's1' to itself"]

    def test_same_link_twice(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(lan_variant(("  - {a: pc2,  b: s1}\n", "  - {a: pc2,  b: s1}\n  - {a: s1,  b: pc2}\n")))
        assert found == ["links[5]: 's1' and 'pc2' are already linked by links[4]"]

    def test_switches_of_different_subnets(self, lan_variant: Callable[..., Path]) -> None:
        path = lan_variant(
            (
                "      pool: 10.0.0.100-10.0.0.199\n",
                "      pool: 10.0.0.100-10.0.0.199\n  dmz:\n    cidr: 10.0.1.0/24\n",
            ),
            (
                "  s1:   {role: switch, subnet: lan}\n",
                "  s1:   {role: switch, subnet: lan}\n  s2:   {role: switch, subnet: dmz}\n",
            ),
            ("  - {a: pc2,  b: s1}\n", "  - {a: pc2,  b: s1}\n  - {a: s1,  b: s2}\n"),
        )
        found = problems(path)
        assert found == [
            "links[5]: switches 's1' (lan) and 's2' (dmz) carry different subnets\n"
            "  hint: only a router joins two subnets"
        ]

    def test_dhcp_server_on_another_subnet(self, lan_variant: Callable[..., Path]) -> None:
        path = lan_variant(
            (
                "      pool: 10.0.0.100-10.0.0.199\n",
                "      pool: 10.0.0.100-10.0.0.199\n  dmz:\n    cidr: 10.0.1.0/24\n",
            ),
            (
                "  s1:   {role: switch, subnet: lan}\n",
                "  s1:   {role: switch, subnet: lan}\n  s2:   {role: switch, subnet: dmz}\n",
            ),
            ("dhcp: {role: dhcp, address: 10.0.0.3}", "dhcp: {role: dhcp, address: 10.0.1.3}"),
            ("{a: dhcp, b: s1}", "{a: dhcp, b: s2}"),
        )
        found = problems(path)
        assert found == [
            "subnets.lan.dhcp.server: DHCP server 'dhcp' is not on subnet 'lan'\n"
            "  hint: this version has no DHCP relay: put the server on the subnet it serves"
        ]

    def test_lan_too_small(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(lan_variant(("cidr: 10.0.0.0/24", "cidr: 10.0.0.0/31")))
        assert found == ["subnets.lan.cidr: '10.0.0.0/31' is too small for a LAN\n  hint: use a /30 or larger"]

    def test_lease_time_bounds(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(
            lan_variant(("pool: 10.0.0.100-10.0.0.199", "pool: 10.0.0.100-10.0.0.199\n      lease_time: 30"))
        )
        assert found == ["subnets.lan.dhcp.lease_time: Input should be greater than or equal to 60 (got 30)"]

    def test_broadcast_address(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(lan_variant(("address: 10.0.0.10}", "address: 10.0.0.255}")))
        assert found == ["nodes.mail.address: 10.0.0.255 is the network or broadcast address of 10.0.0.0/24"]

    def test_bad_subnet_name(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(lan_variant(("  lan:\n", "  LAN_1:\n"), ("subnet: lan}", "subnet: LAN_1}")))
        assert found[0].startswith("subnets.LAN_1: subnet name 'LAN_1' is not a simple name")

    def test_bad_node_name(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(lan_variant(("  pc1:", "  PC_1:"), ("{a: pc1,", "{a: PC_1,")))
        assert found[0].startswith("nodes.PC_1: node name 'PC_1' is not a simple name")

    def test_mail_domain_unknown_node(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(lan_variant(("    mail: mail\n", "    mail: mial\n")))
        assert found == ["domains.projet.dz.mail: unknown node 'mial'\n  hint: did you mean 'mail'?"]

    def test_bad_mail_domain_name(self, lan_variant: Callable[..., Path]) -> None:
        found = problems(lan_variant(("domains:\n  projet.dz:", "domains:\n  projet:")))
        assert found == ["domains.projet: 'projet' is not a DNS domain name"]


# --- bugs: the topology is wrong but the loader does not say so, or says it badly -----


def test_gateway_inside_dhcp_pool_is_rejected(lan_variant: Callable[..., Path]) -> None:
    with pytest.raises(InputError) as info:
        load_topology(lan_variant(("gateway: 10.0.0.1", "gateway: 10.0.0.150")))
    (p,) = info.value.problems
    assert p.field in ("subnets.lan.gateway", "subnets.lan.dhcp.pool")
    assert "pool" in p.message


@pytest.mark.parametrize(
    ("old", "new", "field", "hint"),
    [
        ("mail: {role: mail, address:", "mail: {role: mail, adress:", "nodes.mail.adress", "did you mean 'address'?"),
        ("    gateway: 10.0.0.1", "    gatway: 10.0.0.1", "subnets.lan.gatway", "did you mean 'gateway'?"),
        ("      pool: 10.0.0.100", "      pol: 10.0.0.100", "subnets.lan.dhcp.pol", "did you mean 'pool'?"),
        ("    dns: dns\n", "    dsn: dns\n", "domains.projet.dz.dsn", "did you mean 'dns'?"),
    ],
    ids=["node", "subnet", "dhcp", "mail-domain"],
)
def test_unknown_key_in_named_entries_gets_a_hint(
    lan_variant: Callable[..., Path], old: str, new: str, field: str, hint: str
) -> None:
    with pytest.raises(InputError) as info:
        load_topology(lan_variant((old, new)))
    unknown = [p for p in info.value.problems if p.message.startswith("unknown key")]
    assert [(p.field, p.hint) for p in unknown] == [(field, hint)]
