"""Topologies the benchmark needs that the repo does not ship, written as YAML files.

* ``star(n)``: one switch, a DNS and a DHCP server and ``n`` DHCP hosts: the output of
  the ``tree`` generator with depth=1, fanout=1, hosts=n (``lab.model.generate.tree``),
  written out as explicit nodes because the generator's ``hosts`` parameter stops at
  64 and the benchmark needs 250.  Same subnet, servers and pool as
  ``topologies/tree.yaml``.
* ``ring(n)``: ``n`` routers in an OSPF ring (hello 1 / dead 4, like
  ``topologies/ring-l3.yaml``), each with its own LAN, switch and one host.

Each function returns the path of a YAML file in ``directory``; load it with
``lab.model.topology.load_topology``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lab.model.generate import tree


def _write(directory: Path, name: str, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120))
    return path


def star(directory: Path, hosts: int) -> Path:
    """A star of ``hosts`` DHCP hosts plus dns and dhcp servers on one switch."""
    if not 1 <= hosts <= 60000:
        raise ValueError(f"hosts must be 1..60000, got {hosts}")
    nodes, links = tree(depth=1, fanout=1, hosts=hosts)
    data: dict[str, Any] = {
        "name": f"star{hosts}",
        "domain": "projet.dz",
        "subnets": {"lan": {"cidr": "10.10.0.0/16", "dhcp": {"server": "dhcp", "pool": "10.10.1.0-10.10.255.254"}}},
        "nodes": {
            "dns": {"role": "dns", "address": "10.10.0.2"},
            "dhcp": {"role": "dhcp", "address": "10.10.0.3"},
            **nodes,
        },
        "links": [{"a": "dns", "b": "s1"}, {"a": "dhcp", "b": "s1"}, *links],
    }
    return _write(directory, f"star{hosts}", data)


def ring(directory: Path, routers: int) -> Path:
    """``routers`` routers in a ring, OSPF; router i has LAN 10.1.i.0/24 with host hi (.10)."""
    if not 3 <= routers <= 60:
        raise ValueError(f"routers must be 3..60, got {routers}")
    subnets: dict[str, Any] = {}
    nodes: dict[str, Any] = {}
    ring_links: list[dict[str, Any]] = []
    lan_links: list[dict[str, Any]] = []
    for i in range(1, routers + 1):
        subnets[f"lan{i}"] = {"cidr": f"10.1.{i}.0/24", "gateway": f"10.1.{i}.1"}
        nodes[f"r{i}"] = {"role": "router", "interfaces": {f"lan{i}": f"10.1.{i}.1"}}
    for i in range(1, routers + 1):
        nodes[f"s{i}"] = {"role": "switch", "subnet": f"lan{i}"}
    for i in range(1, routers + 1):
        nodes[f"h{i}"] = {"role": "host", "address": f"10.1.{i}.10"}
    for i in range(1, routers + 1):
        j = i % routers + 1
        ring_links.append(
            {"a": f"r{i}", "b": f"r{j}", "subnet": f"10.255.{(4 * (i - 1)) // 256}.{(4 * (i - 1)) % 256}/30"}
        )
        lan_links.append({"a": f"r{i}", "b": f"s{i}"})
        lan_links.append({"a": f"h{i}", "b": f"s{i}"})
    data = {
        "name": f"ring{routers}-l3",
        "domain": "projet.dz",
        "routing": {"mode": "ospf", "hello": 1, "dead": 4},
        "subnets": subnets,
        "nodes": nodes,
        "links": ring_links + lan_links,
    }
    return _write(directory, f"ring{routers}", data)
