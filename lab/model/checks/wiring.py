"""Check phases about names, nodes and how they are wired: links, switch loops, interfaces."""

from __future__ import annotations

from lab.errors import Problem
from lab.model import mailconfig
from lab.model.checks.context import SIMPLE_NAME, Ctx
from lab.model.policy import ROUTING_ROLES
from lab.model.schema import suggest
from lab.model.topology import DOMAIN_RE, NAME_RE
from lab.model.yamlload import PathKey


def names(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in t.name) or not t.name.strip() or len(t.name) > 64:
        out.append(c.p(("name",), "the name must be one line of 1-64 printable characters"))
    if not DOMAIN_RE.fullmatch(t.domain):
        out.append(c.p(("domain",), f"'{t.domain}' is not a DNS domain name", "lower case, e.g. projet.dz"))
    for name in t.subnets:
        if not NAME_RE.fullmatch(name):
            out.append(c.p(("subnets", name), f"subnet name '{name}' is not a simple name", SIMPLE_NAME))
    for name, node in t.nodes.items():
        if not NAME_RE.fullmatch(name):
            out.append(c.p(("nodes", name), f"node name '{name}' is not a simple name", SIMPLE_NAME))
        if node.domain is not None and not DOMAIN_RE.fullmatch(node.domain):
            out.append(c.p(("nodes", name, "domain"), f"'{node.domain}' is not a DNS domain name"))
    return out


def nodes(c: Ctx) -> list[Problem]:
    out = []
    for name, node in c.t.nodes.items():
        where = ("nodes", name)
        if node.role == "switch":
            out += _switch(c, name)
            continue
        if node.subnet is not None:
            out.append(
                c.p(
                    where + ("subnet",),
                    "only switches carry a subnet; a node takes the subnet of its switch",
                    "remove 'subnet' and link the node to a switch",
                )
            )
        if node.config is not None and node.role != "mail":
            out.append(c.p(where + ("config",), "only mail nodes take 'config'", "remove 'config'"))
        elif node.config is not None:
            for section, settings in node.config.sections().items():
                for r in mailconfig.check(section, settings):
                    out.append(c.p(where + ("config", section, r.key), r.message, r.hint))
        for key in ("hub", "stp"):
            if getattr(node, key):
                out.append(c.p(where + (key,), f"only switches have '{key}'", f"remove '{key}'"))
        if node.interfaces is not None and node.role not in ROUTING_ROLES:
            out.append(
                c.p(
                    where + ("interfaces",),
                    "only routers and firewalls have several interfaces",
                    "give this node one 'address'",
                )
            )
        elif node.interfaces is not None and node.address is not None:
            out.append(c.p(where + ("address",), "give either 'address' or 'interfaces', not both"))
        elif node.address is None and node.interfaces is None and node.role not in ROUTING_ROLES:
            out.append(c.p(where, "this node needs 'address': a static IPv4 address or 'dhcp'"))
        elif node.address == "dhcp" and node.role != "host":
            out.append(
                c.p(
                    where + ("address",),
                    f"a {node.role} server needs a static address",
                    "clients must be able to find it",
                )
            )
    return out


def _switch(c: Ctx, name: str) -> list[Problem]:
    node, where, out = c.t.nodes[name], ("nodes", name), []
    if node.address is not None:
        out.append(c.p(where + ("address",), "a switch has no address", "remove 'address'"))
    if node.interfaces is not None:
        out.append(c.p(where + ("interfaces",), "a switch has no addresses", "remove 'interfaces'"))
    if node.config is not None:
        out.append(c.p(where + ("config",), "only mail nodes take 'config'", "remove 'config'"))
    if node.subnet is None:
        out.append(
            c.p(
                where,
                "a switch needs 'subnet': the subnet it carries",
                "one of: " + ", ".join(c.t.subnets) if c.t.subnets else None,
            )
        )
    elif node.subnet not in c.t.subnets and f"subnets.{node.subnet}" not in c.broken:
        out.append(c.p(where + ("subnet",), f"unknown subnet '{node.subnet}'", suggest(node.subnet, list(c.t.subnets))))
    return out


_LINK_MESSAGES: dict[str, tuple[str, str | None]] = {
    "self": ("link from '{node}' to itself", None),
    "duplicate": ("'{a}' and '{b}' are already linked by links[{first}]", None),
    "switch-subnets": (
        "switches '{a}' ({sa}) and '{b}' ({sb}) carry different subnets",
        "only a router joins two subnets",
    ),
    "switch-impair": (
        "loss and delay go on a link with a node at one end",
        "put them on the link of the host or router whose traffic should suffer",
    ),
    "needs-subnet": (
        "'{a}' and '{b}' are linked without a switch: the link needs 'subnet'",
        "name a subnet, or write a CIDR like 10.255.0.0/30",
    ),
}


def links(c: Ctx) -> list[Problem]:
    out = []
    for issue in c.w.issues:
        link = c.t.links[issue.link]
        here: PathKey = ("links", issue.link)
        d = {"a": link.a, "b": link.b, **issue.detail}
        if issue.kind == "unknown-node":
            out += c.unknown_node(here + (d["end"],), d["node"])
        elif issue.kind == "switch-subnet-given":
            out.append(
                c.p(
                    here + ("subnet",), "a link to a switch takes the switch's subnet", "remove 'subnet' from this link"
                )
            )
        elif issue.kind == "bad-cidr":
            out.append(c.p(here + ("subnet",), d["message"], d["hint"] or None))
        elif issue.kind == "unknown-subnet":
            if f"subnets.{d['subnet']}" not in c.broken:
                out.append(
                    c.p(
                        here + ("subnet",),
                        f"unknown subnet '{d['subnet']}'",
                        suggest(d["subnet"], list(c.w.subnets)) or "name a subnet, or write a CIDR like 10.255.0.0/30",
                    )
                )
        else:
            message, hint = _LINK_MESSAGES[issue.kind]
            out.append(c.p(here, message.format(**d), hint))
    return out


def switch_loops(c: Ctx) -> list[Problem]:
    """A loop of switches floods every broadcast for ever unless each of them runs STP."""
    parent: dict[str, str] = {}
    tree: dict[str, list[str]] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    out = []
    for i, a, b in c.w.switch_links:
        if root(a) != root(b):
            parent[root(a)] = root(b)
            tree.setdefault(a, []).append(b)
            tree.setdefault(b, []).append(a)
            continue
        loop = _tree_path(tree, a, b)
        without = [s for s in loop if not c.t.nodes[s].stp]
        if without:
            out.append(
                c.p(
                    ("links", i),
                    f"this link closes a loop of switches ({' - '.join(loop)}) and "
                    f"{', '.join(repr(s) for s in without)} run(s) no spanning tree",
                    "frames would circle for ever: set stp: true on every switch of the loop, or remove a link",
                )
            )
    return out


def _tree_path(tree: dict[str, list[str]], a: str, b: str) -> list[str]:
    prev: dict[str, str | None] = {a: None}
    queue = [a]
    while queue:
        cur = queue.pop(0)
        if cur == b:
            break
        for nxt in tree.get(cur, []):
            if nxt not in prev:
                prev[nxt] = cur
                queue.append(nxt)
    path: list[str] = []
    cur2: str | None = b
    while cur2 is not None:
        path.append(cur2)
        cur2 = prev.get(cur2)
    return path[::-1]


def interfaces(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    links_of: dict[str, list[int]] = {}
    for i, lk in enumerate(t.links):
        links_of.setdefault(lk.a, []).append(i)
        links_of.setdefault(lk.b, []).append(i)
    some_link_broken = any(b.startswith("links[") for b in c.broken)
    for name, node in t.nodes.items():
        if node.role == "switch":
            continue
        mine = c.w.interfaces[name]
        if not mine:
            if name not in links_of and not some_link_broken:
                out.append(c.p(("nodes", name), f"node '{name}' has no link", f"add a link from '{name}' to a switch"))
            continue
        if len(mine) > 1 and node.role not in ROUTING_ROLES:
            out.append(
                c.p(
                    ("links", mine[1].link),
                    f"node '{name}' has more than one link",
                    "only routers and firewalls have several interfaces: use role router",
                )
            )
            continue
        broken_links = some_link_broken or any(i not in c.w.link_subnet for i in links_of.get(name, []))
        if len(mine) == 1 and node.role in ROUTING_ROLES and not broken_links:
            out.append(
                c.p(
                    ("nodes", name),
                    f"{node.role} '{name}' has a single interface: it joins nothing",
                    "a router joins two subnets or more: link it to another, or make it a host",
                )
            )
        if len(mine) > 1 and node.interfaces is None and node.address is not None:
            out.append(
                c.p(
                    ("nodes", name, "address"),
                    f"'{name}' joins {len(mine)} subnets: it needs an address on each",
                    "replace 'address' with interfaces: {" + ", ".join(f"{i.subnet}: ..." for i in mine) + "}",
                )
            )
            continue
        seen_sub: dict[str, int] = {}
        for itf in mine:
            if itf.subnet in seen_sub:
                out.append(
                    c.p(
                        ("links", itf.link),
                        f"'{name}' is linked twice to subnet '{itf.subnet}'",
                        f"links[{seen_sub[itf.subnet]}] already joins it",
                    )
                )
            seen_sub[itf.subnet] = itf.link
        for sub_name in node.interfaces or {}:
            if sub_name not in seen_sub and not broken_links:
                out.append(
                    c.p(
                        ("nodes", name, "interfaces", sub_name),
                        f"'{name}' has no link to subnet '{sub_name}'"
                        if sub_name in c.w.subnets
                        else f"unknown subnet '{sub_name}'",
                        suggest(sub_name, list(seen_sub)) or "link it to a switch of that subnet",
                    )
                )
    return out
