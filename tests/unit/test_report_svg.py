"""The topology diagram: drawn from the plan, every node and subnet named, deterministic."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.model.load import load_topology
from lab.model.plan import Plan, make_plan
from lab.report.svg import ROLES, topology_svg

REPO = Path(__file__).resolve().parents[2]
NS = "{http://www.w3.org/2000/svg}"
TOPOLOGIES = sorted(p.name for p in (REPO / "topologies").glob("*.yaml"))


def _plan(name: str, **params: int) -> Plan:
    return make_plan(load_topology(REPO / "topologies" / name, params=params or None))


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{NS}text")]


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_node_and_subnet_is_drawn(topology: str) -> None:
    plan = _plan(topology)
    root = ET.fromstring(topology_svg(plan))
    drawn = {g.get("data-node"): g.get("class") for g in root.iter(f"{NS}g") if g.get("data-node")}
    assert set(drawn) == set(plan.nodes)
    for name, node in plan.nodes.items():
        assert f"t-{node.role}" in (drawn[name] or ""), f"{name} not drawn as a {node.role}"
    texts = " ".join(_texts(root))
    for cidr in plan.subnets.values():
        assert str(cidr) in texts, f"subnet {cidr} not labelled"
    links = [e for e in root.iter() if "t-link" in (e.get("class") or "").split()]
    assert len(links) == len(plan.topology.data.links)


def test_interfaces_are_labelled_with_their_addresses() -> None:
    texts = _texts(ET.fromstring(topology_svg(_plan("dmz.yaml"))))
    for label in ("eth0 10.0.0.1", "eth1 10.0.1.1", "eth2 203.0.113.2", "eth0 10.0.1.10", "eth0 dhcp"):
        assert label in texts


def test_leases_fill_in_dhcp_addresses() -> None:
    texts = _texts(ET.fromstring(topology_svg(_plan("star.yaml"), leases={"pc1": "10.0.0.101"})))
    assert "eth0 10.0.0.101 dhcp" in texts
    assert "eth0 dhcp" in texts  # pc2 has no lease given


def test_roles_have_distinct_glyphs_and_a_legend() -> None:
    svg = topology_svg(_plan("dmz.yaml"))
    legend = ET.fromstring(svg).find(f".//{NS}g[@class='t-legend']")
    assert legend is not None
    names = ["".join(t.itertext()) for t in legend.iter(f"{NS}text") if t.get("class") == "t-leg"]
    assert names == [r for r in ROLES if r in {n.role for n in _plan("dmz.yaml").nodes.values()}]


def test_the_drawing_is_deterministic_and_escapes_its_title() -> None:
    plan = _plan("mesh.yaml")
    assert topology_svg(plan) == topology_svg(_plan("mesh.yaml"))
    svg = topology_svg(plan, title='<lab & "co">')
    assert "&lt;lab &amp; &quot;co&quot;&gt;" in svg
    ET.fromstring(svg)


def test_a_generated_tree_of_about_sixty_nodes_stays_drawable() -> None:
    plan = _plan("tree.yaml", depth=3, fanout=4, hosts=2)
    assert len(plan.nodes) >= 50
    root = ET.fromstring(topology_svg(plan))
    assert len([g for g in root.iter(f"{NS}g") if g.get("data-node")]) == len(plan.nodes)
    # leaves are stacked in columns, so the picture stays far narrower than one row of hosts
    assert float(root.get("width", "0")) < 120 * len(plan.nodes)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_link_labels_do_not_overlap(topology: str) -> None:
    """Interface and subnet labels (drawn over everything) never sit on one another."""
    from lab.report.svg import text_width

    root = ET.fromstring(topology_svg(_plan(topology)))
    layer = next(g for g in root.iter(f"{NS}g") if g.get("class") == "t-labels")
    boxes = []
    for t in layer.iter(f"{NS}text"):
        x, y, text = float(t.get("x", 0)), float(t.get("y", 0)), "".join(t.itertext())
        w = text_width(text, 10)
        anchor = t.get("text-anchor", "start")
        left = x - w / 2 if anchor == "middle" else x - w if anchor == "end" else x
        boxes.append((left, y - 9, left + w, y + 2, text))
    clashes = [
        (a[4], b[4])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]
    assert not clashes, clashes[:5]
