"""Generated topologies: a file says ``generate: {tree: {depth: 2, fanout: 3}}`` and
the nodes, subnets and links are made here, before validation, so the same checks
apply.  Parameters from a scenario (``params:``) or the command line override the
file's.  Generated parts point at the ``generate`` key in error messages.
"""

from __future__ import annotations

from typing import Any

from lab.errors import InputError
from lab.model.topology import MAX_NODES
from lab.model.yamlload import Located

KINDS: dict[str, dict[str, tuple[int, int, int]]] = {
    # parameter: (default, min, max)
    "tree": {"depth": (2, 1, 6), "fanout": (3, 1, 16), "hosts": (2, 0, 1000)},
}


def expand(src: Located, params: dict[str, Any]) -> None:
    data = src.data
    gen = data.pop("generate")
    for key in ("nodes", "links", "subnets"):
        if key in data and not isinstance(data[key], (dict if key != "links" else list)):
            raise InputError(
                problems=[src.problem((key,), f"'{key}' must be a {'list' if key == 'links' else 'mapping'}")]
            )
    where = ("generate",)
    if not isinstance(gen, dict) or len(gen) != 1:
        raise InputError(
            problems=[
                src.problem(
                    where, "generate needs exactly one kind, e.g. {tree: {depth: 2}}", "kinds: " + ", ".join(KINDS)
                )
            ]
        )
    kind, given = next(iter(gen.items()))
    if kind not in KINDS:
        raise InputError(
            problems=[src.problem(where + (kind,), f"unknown generator '{kind}'", "kinds: " + ", ".join(KINDS))]
        )
    given = dict(given or {})
    given.update(params)
    spec = KINDS[kind]
    values: dict[str, int] = {}
    problems = []
    for key, value in given.items():
        if key not in spec:
            problems.append(
                src.problem(where + (kind, key), f"unknown parameter '{key}'", "parameters: " + ", ".join(spec))
            )
            continue
        lo, hi = spec[key][1], spec[key][2]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            problems.append(
                src.problem(where + (kind, key), f"{key} must be a whole number from {lo} to {hi}, got {value!r}")
            )
            continue
        values[key] = value
    if problems:
        raise InputError(problems=problems)
    for key, (default, _, _) in spec.items():
        values.setdefault(key, default)
    count = tree_size(**values)  # before generating: a huge tree is refused, never built
    nodes_in_file = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
    if count + len(nodes_in_file) > MAX_NODES:
        raise InputError(
            problems=[
                src.problem(
                    where + (kind,),
                    f"{count:,} generated nodes is too many for one machine (at most {MAX_NODES:,} in a lab)",
                    "lower depth, fanout or hosts",
                )
            ]
        )
    nodes, links = tree(**values)
    data.setdefault("nodes", {})
    data.setdefault("links", [])
    data.setdefault("subnets", {})
    data["nodes"].update(nodes)
    data["links"].extend(links)
    data["params"] = values
    line, col = src.where(where)
    line_col = (line or 1, col or 1)
    for name in nodes:
        src.marks[("nodes", name)] = line_col
    base = len(data["links"]) - len(links)
    for i in range(len(links)):
        src.marks[("links", base + i)] = line_col


def tree_size(depth: int, fanout: int, hosts: int) -> int:
    """How many nodes ``tree`` makes: sum of fanout^k switches for k < depth, hosts per leaf."""
    switches = sum(fanout**k for k in range(depth))
    return switches + fanout ** (depth - 1) * hosts


def tree(depth: int, fanout: int, hosts: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tree of switches on one subnet ('lan'): the root s1, ``fanout`` children per
    switch down to ``depth`` levels, ``hosts`` DHCP hosts on every leaf switch."""
    nodes: dict[str, Any] = {}
    links: list[dict[str, Any]] = []
    level = ["s1"]
    nodes["s1"] = {"role": "switch", "subnet": "lan"}
    count = 1
    for _ in range(depth - 1):
        nxt = []
        for parent in level:
            for _ in range(fanout):
                count += 1
                name = f"s{count}"
                nodes[name] = {"role": "switch", "subnet": "lan"}
                links.append({"a": parent, "b": name})
                nxt.append(name)
        level = nxt
    h = 0
    for leaf in level:
        for _ in range(hosts):
            h += 1
            name = f"h{h}"
            nodes[name] = {"role": "host", "address": "dhcp"}
            links.append({"a": name, "b": leaf})
    return nodes, links
