"""lab.model.scenario: the default scenario loads; step kinds and references are checked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lab.errors import InputError
from lab.model import scenario as S
from lab.model.scenario import Dns, Expect, Fetch, Scenario, Send, WaitFor, load_scenario

HEAD = "name: t\ntopology: {topology}\nsteps:\n"
SEND = "  - send: {on: pc1, server: mail.projet.dz, login: alice@projet.dz, to: [bob@projet.dz], message: m1}\n"


@pytest.fixture
def scenario_file(write_yaml: Callable[[str, str], Path], repo: Path) -> Callable[[str], Path]:
    """A scenario over tests/data/good/lan.yaml with the given step lines."""

    def make(steps: str) -> Path:
        return write_yaml("scn.yaml", HEAD.format(topology=repo / "tests/data/good/lan.yaml") + steps)

    return make


def problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as info:
        load_scenario(path)
    return [str(p).split(": ", 1)[1] for p in info.value.problems]


@pytest.fixture(scope="module")
def scn(repo: Path) -> Scenario:
    return load_scenario(repo / "scenarios" / "star.yaml")


class TestDefault:
    def test_header(self, scn: Scenario) -> None:
        assert scn.name == "star"
        assert scn.description.startswith("campus LAN")
        assert scn.topology.name == "campus-star"
        assert scn.plan.nodes["mail"].ip == "10.0.0.10"

    def test_steps(self, scn: Scenario) -> None:
        assert [s.kind for s in scn.steps] == [
            "dns",
            "dns",
            "dns",
            "send",
            "wait_for",
            "expect",
            "fetch",
            "fetch",
            "wait_for",
        ]
        assert [s.index for s in scn.steps] == list(range(9))
        assert scn.steps[3].name == "alice submits a message to bob (and a copy to herself)"
        assert scn.steps[0].name == "pc1: dns MX projet.dz"
        assert scn.steps[6].name == "pc2: fetch bob@projet.dz over imaps from mail.projet.dz"
        assert scn.steps[8].name == "wait for queue_empty"

    def test_step_lines_point_at_the_step(self, scn: Scenario) -> None:
        lines = scn.path.read_text().splitlines()
        for st in scn.steps:
            assert st.line is not None
            assert lines[st.line - 1].lstrip().startswith("- "), st

    def test_params(self, scn: Scenario) -> None:
        send = scn.steps[3].params
        assert isinstance(send, Send)
        assert (send.port, send.tls, send.login, send.message) == (587, "starttls", "alice@projet.dz", "welcome")
        assert send.to == ["bob@projet.dz", "alice@projet.dz"]
        assert send.body.startswith("Hi Bob,\n")
        assert isinstance(scn.steps[0].params, Dns) and scn.steps[0].params.expect == ["10 mail.projet.dz."]
        assert isinstance(scn.steps[4].params, WaitFor) and scn.steps[4].params.timeout == 15
        assert isinstance(scn.steps[5].params, Expect) and scn.steps[5].params.headers == {
            "Subject": "Welcome to the lab"
        }
        fetch = scn.steps[7].params
        assert isinstance(fetch, Fetch) and (fetch.protocol, fetch.port) == ("pop3s", None)


class TestAccepted:
    def test_good_corpus_scenario(self, repo: Path) -> None:
        scn = load_scenario(repo / "tests/data/good/scenario.yaml")
        assert [s.kind for s in scn.steps] == ["dns", "send", "wait_for", "expect", "fetch"]
        assert scn.steps[1].name == "alice writes to bob"

    def test_topology_path_is_relative_to_the_scenario(self, tmp_path: Path, repo: Path) -> None:
        (tmp_path / "topo").mkdir()
        (tmp_path / "topo" / "lan.yaml").write_text((repo / "tests/data/good/lan.yaml").read_text())
        (tmp_path / "s").mkdir()
        (tmp_path / "s" / "x.yaml").write_text("topology: ../topo/lan.yaml\nsteps:\n" + SEND)
        scn = load_scenario(tmp_path / "s" / "x.yaml")
        assert scn.name == "x"  # defaults to the file's stem
        assert scn.topology.path == (tmp_path / "topo" / "lan.yaml").resolve()

    def test_from_alias_and_servers_by_ip_or_node(self, scenario_file: Callable[[str], Path]) -> None:
        scn = load_scenario(
            scenario_file(
                "  - send: {on: pc1, server: 10.0.0.10, from: alice@projet.dz, to: [bob@projet.dz]}\n"
                "  - send: {on: pc2, server: mail, port: 25, tls: none, from: x@example.org, to: [bob@projet.dz]}\n"
            )
        )
        assert [s.params.sender for s in scn.steps] == ["alice@projet.dz", "x@example.org"]

    def test_unknown_login_with_explicit_password(self, scenario_file: Callable[[str], Path]) -> None:
        scn = load_scenario(
            scenario_file(
                "  - fetch: {on: pc2, server: mail.projet.dz, login: carol@projet.dz, password: x, reject: true}\n"
            )
        )
        assert scn.steps[0].params.reject is True

    def test_step_with_only_defaults(self, scenario_file: Callable[[str], Path]) -> None:
        scn = load_scenario(scenario_file(SEND + "  - wait_for: {condition: queue_empty, node: mail}\n"))
        assert scn.steps[1].params.timeout == 15


class TestRejected:
    def test_unknown_step_kind(self, scenario_file: Callable[[str], Path]) -> None:
        assert problems(scenario_file("  - fech: {on: pc1}\n")) == [
            "steps[0].fech: unknown step kind 'fech'\n  hint: did you mean 'fetch'?"
        ]

    def test_unknown_step_kind_far_from_any(self, scenario_file: Callable[[str], Path]) -> None:
        assert problems(scenario_file("  - teleport: {on: pc1}\n")) == [
            "steps[0].teleport: unknown step kind 'teleport'\n  hint: actions: " + ", ".join(S.ACTIONS)
        ]

    def test_unknown_host(self, scenario_file: Callable[[str], Path]) -> None:
        assert problems(scenario_file("  - dns: {on: mial, query: projet.dz}\n")) == [
            "steps[0].dns.on: unknown node 'mial'\n  hint: did you mean 'mail'?"
        ]

    def test_a_switch_cannot_run_a_step(self, scenario_file: Callable[[str], Path]) -> None:
        found = problems(scenario_file("  - dns: {on: s1, query: projet.dz}\n"))
        assert found == [
            "steps[0].dns.on: 's1' is a switch: steps run on hosts\n  hint: name a host, e.g. dns, dhcp, mail"
        ]

    def test_unknown_server(self, scenario_file: Callable[[str], Path]) -> None:
        assert problems(scenario_file("  - fetch: {on: pc2, server: imap.projet.dz, login: bob@projet.dz}\n")) == [
            "steps[0].fetch.server: 'imap.projet.dz' is neither a node nor a host name of the topology\n"
            "  hint: did you mean 'mail.projet.dz'?"
        ]

    def test_unknown_login(self, scenario_file: Callable[[str], Path]) -> None:
        assert problems(
            scenario_file("  - send: {on: pc1, server: mail, login: eve@projet.dz, to: [bob@projet.dz]}\n")
        ) == [
            "steps[0].send.login: 'eve@projet.dz' is not a user of the topology\n"
            "  hint: give 'password' too, or add the user under domains"
        ]

    def test_label_used_before_its_send(self, scenario_file: Callable[[str], Path]) -> None:
        found = problems(scenario_file("  - expect: {mailbox: bob@projet.dz, message: m1}\n" + SEND))
        assert found == [
            "steps[0].expect.message: no earlier send has message label 'm1'\n  hint: label a send step with 'message'"
        ]

    def test_unknown_label_suggests_a_close_one(self, scenario_file: Callable[[str], Path]) -> None:
        found = problems(
            scenario_file(SEND.replace("m1", "welcome") + "  - expect: {mailbox: bob@projet.dz, message: welcom}\n")
        )
        assert found == [
            "steps[1].expect.message: no earlier send has message label 'welcom'\n  hint: did you mean 'welcome'?"
        ]

    def test_duplicate_label(self, scenario_file: Callable[[str], Path]) -> None:
        assert problems(scenario_file(SEND + SEND)) == ["steps[1].send.message: label 'm1' is used by an earlier send"]

    def test_send_without_login_or_from(self, scenario_file: Callable[[str], Path]) -> None:
        assert problems(scenario_file("  - send: {on: pc1, server: mail, port: 25, to: [bob@projet.dz]}\n")) == [
            "steps[0].send: a send without 'login' needs 'from'"
        ]

    def test_reject_code_range(self, scenario_file: Callable[[str], Path]) -> None:
        found = problems(scenario_file(SEND.replace("message: m1", "reject: {code: 99}")))
        assert found == ["steps[0].send.reject.code: Input should be greater than or equal to 200 (got 99)"]

    def test_dns_rcode_hint(self, scenario_file: Callable[[str], Path]) -> None:
        found = problems(scenario_file("  - dns: {on: pc1, query: x.projet.dz, rcode: NXDOMIAN}\n"))
        assert found[0].startswith("steps[0].dns.rcode: input should be")
        assert found[0].endswith("hint: did you mean 'NXDOMAIN'?")

    def test_step_name_must_be_text(self, scenario_file: Callable[[str], Path]) -> None:
        assert problems(scenario_file("  - name: 5\n    dns: {on: pc1, query: projet.dz}\n")) == [
            "steps[0].name: a step name is one line of text"
        ]

    def test_step_with_only_a_name(self, scenario_file: Callable[[str], Path]) -> None:
        assert problems(scenario_file("  - name: nothing\n")) == [
            "steps[0]: a step needs exactly one action key besides 'name'\n  hint: actions: " + ", ".join(S.ACTIONS)
        ]

    def test_empty_action_body_reports_every_required_key(self, scenario_file: Callable[[str], Path]) -> None:
        assert problems(scenario_file("  - fetch:\n")) == [
            "steps[0].fetch.on: this key is required",
            "steps[0].fetch.server: this key is required",
            "steps[0].fetch.login: this key is required",
        ]

    def test_problems_of_several_steps_are_collected(self, scenario_file: Callable[[str], Path]) -> None:
        found = problems(scenario_file("  - sned: {}\n  - dns: {on: pc1}\n  - expect: {mailbox: bob@projet.dz}\n"))
        assert [f.split(":")[0] for f in found] == ["steps[0].sned", "steps[1].dns.query", "steps[2].expect"]

    def test_topology_must_be_a_path(self, write_yaml: Callable[[str, str], Path]) -> None:
        assert problems(write_yaml("s.yaml", "topology: [a]\nsteps:\n" + SEND)) == [
            "topology: must be a path to a topology file"
        ]

    def test_a_topology_is_not_a_scenario(self, repo: Path) -> None:
        (found,) = problems(repo / "topologies" / "star.yaml")
        assert found.startswith("this is a topology, not a scenario\n  hint: 'lab up ")

    def test_errors_in_the_topology_name_the_topology_file(
        self, write_yaml: Callable[[str, str], Path], tmp_path: Path
    ) -> None:
        write_yaml("t.yaml", "name: t\n")
        with pytest.raises(InputError) as info:
            load_scenario(write_yaml("s.yaml", "topology: t.yaml\nsteps:\n" + SEND))
        assert {p.file for p in info.value.problems} == {str((tmp_path / "t.yaml").resolve())}
