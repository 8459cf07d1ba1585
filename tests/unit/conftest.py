"""Fixtures for the fast unit tests: no root, no network, no daemons.

Every fixture here only reads the repository or writes under pytest's ``tmp_path``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.model.load import load_topology
from lab.model.plan import Plan, make_plan
from lab.model.topology import Topology

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def star() -> Topology:
    return load_topology(REPO / "topologies" / "star.yaml")


@pytest.fixture(scope="session")
def star_plan(star: Topology) -> Plan:
    return make_plan(star)


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented YAML text to ``tmp_path/name`` and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


LAN_TOPOLOGY = (DATA / "good" / "lan.yaml").read_text()


@pytest.fixture
def lan_variant(write_yaml: Callable[[str, str], Path]) -> Callable[..., Path]:
    """A copy of tests/data/good/lan.yaml with textual replacements applied.

    Each replacement must match, so a test cannot silently test the unmodified file.
    """

    def variant(*subs: tuple[str, str], name: str = "topo.yaml") -> Path:
        text = LAN_TOPOLOGY
        for old, new in subs:
            assert old in text, f"replacement target not found: {old!r}"
            text = text.replace(old, new, 1)
        return write_yaml(name, text)

    return variant
