"""Scenario files: a topology plus an ordered list of steps.

Each step is a mapping with one action key (``send``, ``fetch``, ``dns``, ``expect``,
``wait_for``) holding that action's parameters, and optionally a ``name``::

    - name: alice submits a message for bob
      send: {on: pc1, login: alice@projet.dz, to: [bob@projet.dz], message: m1}

Every reference (hosts, users, servers, message labels) is checked against the
topology before anything is built.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.errors import InputError, Problem
from lab.model.plan import Plan, make_plan
from lab.model.actions import *  # noqa: F401,F403  (the step models, re-exported)
from lab.model.actions import ACTIONS, Wire
from lab.model.schema import parse, suggest
from lab.model.topology import Topology, load_topology
from lab.model.yamlload import Located, load_file



class Step:
    def __init__(self, index: int, kind: str, name: str, params: Any, line: int | None):
        self.index = index
        self.kind = kind
        self.name = name
        self.params = params
        self.line = line

    def __repr__(self) -> str:
        return f"Step({self.index}, {self.kind}, {self.name!r})"


class Scenario:
    def __init__(self, path: Path, name: str, description: str, topology: Topology,
                 plan: Plan, steps: list[Step], src: Located, capture: bool = True, wire: "Wire | None" = None):
        self.capture = capture
        self.wire = wire
        self.path = path
        self.name = name
        self.description = description
        self.topology = topology
        self.plan = plan
        self.steps = steps
        self.src = src


TOP_KEYS = ("name", "description", "topology", "routing", "params", "capture", "wire", "steps")


def load_scenario(path: str | Path, topology: str | Path | None = None) -> Scenario:
    """Load and check a scenario.  ``topology`` replaces the one the file names: the
    same scenario graded against a student's topology."""
    src = load_file(path)
    p = src.problem
    data = src.data
    if not isinstance(data, dict):
        raise InputError(problems=[p((), "a scenario must be a mapping with name, topology, steps")])
    problems: list[Problem] = []
    for key in data:
        if key not in TOP_KEYS:
            problems.append(p((key,), f"unknown key '{key}'", suggest(key, TOP_KEYS) or "allowed: " + ", ".join(TOP_KEYS)))
    for key in ("topology", "steps"):
        if key not in data:
            problems.append(p((), f"missing key '{key}'"))
    if problems:
        raise InputError(problems=problems)
    if not isinstance(data["topology"], str):
        raise InputError(problems=[p(("topology",), "must be a path to a topology file")])
    topo_path = Path(topology).resolve() if topology is not None else (Path(src.file).parent / data["topology"]).resolve()
    if not topo_path.exists():
        raise InputError(problems=[p(("topology",), f"no such file: {topo_path}",
                                     "the path is relative to the scenario file")])
    routing = data.get("routing")
    if routing is not None and routing not in ("static", "ospf", "rip"):
        raise InputError(problems=[p(("routing",), f"unknown routing mode {routing!r}",
                                     "one of: static, ospf, rip (it replaces the topology's mode)")])
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise InputError(problems=[p(("params",), "must be a mapping of generator parameters, e.g. {depth: 2}")])
    topology = load_topology(topo_path, routing=routing, params=params)
    plan = make_plan(topology)
    raw_steps = data["steps"]
    if not isinstance(raw_steps, list) or not raw_steps:
        raise InputError(problems=[p(("steps",), "must be a non-empty list of steps")])
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps):
        where = ("steps", i)
        if not isinstance(raw, dict):
            problems.append(p(where, "a step must be a mapping like {send: {...}}"))
            continue
        kinds = [k for k in raw if k != "name"]
        if len(kinds) != 1:
            problems.append(p(where, "a step needs exactly one action key besides 'name'"
                              + (f", found: {', '.join(kinds)}" if kinds else ""),
                              "actions: " + ", ".join(ACTIONS)))
            continue
        kind = kinds[0]
        if kind not in ACTIONS:
            problems.append(p(where + (kind,), f"unknown step kind '{kind}'",
                              suggest(kind, list(ACTIONS)) or "actions: " + ", ".join(ACTIONS)))
            continue
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            problems.append(p(where + ("name",), "a step name must be text"))
            continue
        body = raw[kind] if raw[kind] is not None else {}
        try:
            params = parse(ACTIONS[kind], body, src, where + (kind,))
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        steps.append(Step(i, kind, name or _default_name(kind, params), params, src.where(where)[0]))
    if problems:
        raise InputError(problems=problems)
    problems.extend(_check_refs(steps, plan, src))
    capture = data.get("capture", True)
    if not isinstance(capture, bool):
        problems.append(p(("capture",), "capture is true (every link, the default) or false"))
    wire = None
    if data.get("wire") is not None:
        try:
            wire = parse(Wire, data["wire"], src, ("wire",))
        except InputError as exc:
            problems.extend(exc.problems)
        else:
            problems.extend(_check_wire(wire, plan, src))
            if capture is False:
                problems.append(p(("wire",), "wire assertions need captures", "remove 'capture: false'"))
    if problems:
        raise InputError(problems=problems)
    return Scenario(Path(src.file), str(data.get("name") or Path(src.file).stem),
                    str(data.get("description") or ""), topology, plan, steps, src, bool(capture), wire)


def _check_wire(w: Wire, plan: Plan, src: Located) -> list[Problem]:
    out = []
    nodes = plan.nodes
    subnets = set(plan.topology.subnets)
    for i, pth in enumerate(w.path):
        where = ("wire", "path", i)
        for key, ref in (("from", pth.from_), ("to", pth.to)):
            if ref not in nodes or nodes[ref].role == "switch":
                out.append(src.problem(where + (key,), f"unknown node '{ref}'", suggest(ref, list(nodes))))
        for j, item in enumerate(pth.via):
            if item not in subnets and not (item in nodes and nodes[item].forwards):
                out.append(src.problem(where + ("via", j), f"'{item}' is neither a subnet nor a router",
                                       suggest(item, sorted(subnets) + [n.name for n in plan.routers()])))
    if w.nat is not None and (w.nat.node not in nodes or not nodes[w.nat.node].forwards):
        out.append(src.problem(("wire", "nat", "node"), f"'{w.nat.node}' is not a router or firewall",
                               suggest(w.nat.node, [n.name for n in plan.routers()])))
    if w.dhcp is not None and isinstance(w.dhcp.clients, list):
        dhcp_hosts = [n.name for n in nodes.values() if n.dhcp]
        for j, c in enumerate(w.dhcp.clients):
            if c not in dhcp_hosts:
                out.append(src.problem(("wire", "dhcp", "clients", j), f"'{c}' is not a DHCP host",
                                       suggest(c, dhcp_hosts)))
    return out


def _default_name(kind: str, s: Any) -> str:
    return str(s.title()).replace("  ", " ")


def _check_refs(steps: list[Step], plan: Plan, src: Located) -> list[Problem]:
    out: list[Problem] = []
    nodes = plan.nodes
    hosts = [n for n, v in nodes.items() if v.role != "switch"]
    labels: set[str] = set()
    for st in steps:
        s = st.params
        where = ("steps", st.index, st.kind)
        for key in ("on", "node", "name"):
            ref = getattr(s, key, None)
            if ref is not None and ref in nodes and ref not in hosts:
                out.append(src.problem(where + (key,), f"'{ref}' is a {nodes[ref].role}: steps run on hosts",
                                       "name a host, e.g. " + ", ".join(hosts[:3])))
            elif ref is not None and ref not in hosts:
                out.append(src.problem(where + (key,), f"unknown node '{ref}'", suggest(ref, hosts)))
        server = getattr(s, "server", None)
        if server is not None and plan.node_by_fqdn(server) is None and not _is_ip(server):
            names = [v.fqdn for v in nodes.values()] + hosts
            out.append(src.problem(where + ("server",), f"'{server}' is neither a node nor a host name of the topology",
                                   suggest(server, names)))
        if st.kind in ("send", "fetch"):
            login = s.login
            if login is not None and s.password is None and plan.user(login) is None:
                out.append(src.problem(where + ("login",), f"'{login}' is not a user of the topology",
                                       "give 'password' too, or add the user under domains"))
        if st.kind == "flood":
            if s.message in labels:
                out.append(src.problem(where + ("message",), f"label '{s.message}' is used by an earlier send"))
            labels.add(s.message)
            if s.password is None and plan.user(s.login) is None:
                out.append(src.problem(where + ("login",), f"'{s.login}' is not a user of the topology"))
        if st.kind in ("flush", "log") or (st.kind == "wait_for" and s.condition == "deferred"):
            if s.node in nodes and nodes[s.node].role != "mail":
                out.append(src.problem(where + ("node",), f"'{s.node}' is not a mail node"))
        if st.kind == "log" and s.message not in labels:
            out.append(src.problem(where + ("message",), f"no earlier send has message label '{s.message}'"))
        if st.kind == "firewall_matrix":
            t = plan.topology.data
            if s.node not in t.firewalls:
                out.append(src.problem(where + ("node",), f"'{s.node}' is not a firewall with a policy",
                                       suggest(s.node, list(t.firewalls))))
            from lab.model.topology import PORT_RE
            for j, port in enumerate(s.ports):
                m = PORT_RE.match(port)
                if not m or not m.group(1) or m.group(3):
                    out.append(src.problem(where + ("ports", j), f"'{port}' is not a single port", "write tcp/25 or udp/53"))
        if st.kind == "send":
            for j, rcpt in enumerate(s.to):
                if "@" not in rcpt:
                    out.append(src.problem(where + ("to", j), f"'{rcpt}' is not a mail address"))
            if s.login is None and s.sender is None:
                out.append(src.problem(where, "a send without 'login' needs 'from'"))
            if s.message:
                if s.message in labels:
                    out.append(src.problem(where + ("message",), f"label '{s.message}' is used by an earlier send"))
                labels.add(s.message)
        elif st.kind in ("fetch", "expect", "wait_for", "log"):
            label = getattr(s, "message", None)
            if label is not None and label not in labels:
                out.append(src.problem(where + ("message",), f"no earlier send has message label '{label}'",
                                       suggest(label, labels) if labels else "label a send step with 'message'"))
        if st.kind in ("link", "impair"):
            for end in ("a", "b"):
                if getattr(s, end) not in nodes:
                    out.append(src.problem(where + (end,), f"unknown node '{getattr(s, end)}'",
                                           suggest(getattr(s, end), list(nodes))))
            t = plan.topology.data
            if s.a in nodes and s.b in nodes and not any({lk.a, lk.b} == {s.a, s.b} for lk in t.links):
                out.append(src.problem(where, f"there is no link between '{s.a}' and '{s.b}'"))
        if st.kind in ("ping", "path", "probe", "wait_for") and getattr(s, "to", None) is not None:
            to = s.to
            if plan.node_by_fqdn(to) is None and not _is_ip(to) and not (plan.node_by_fqdn(to.split(".")[0]) and "." in to):
                out.append(src.problem(where + ("to",), f"'{to}' is neither a node, a host name nor an address",
                                       suggest(to, hosts)))
        if st.kind == "path" and s.via:
            for j, r in enumerate(s.via):
                if r not in nodes or not nodes[r].forwards:
                    out.append(src.problem(where + ("via", j), f"'{r}' is not a router of the topology",
                                           suggest(r, [n.name for n in plan.routers()])))
        if st.kind == "sniff":
            for j, h in enumerate(s.between):
                if h not in hosts:
                    out.append(src.problem(where + ("between", j), f"unknown node '{h}'", suggest(h, hosts)))
        if st.kind == "service":
            out.extend(_check_daemon(s, plan, src, where))
        if st.kind in ("expect", "wait_for") and getattr(s, "mailbox", None):
            if plan.user(s.mailbox) is None:
                out.append(src.problem(where + ("mailbox",), f"'{s.mailbox}' is not a mailbox of the topology"))
        if st.kind == "wait_for" and s.condition == "queue_empty" and s.node and nodes.get(s.node) \
                and nodes[s.node].role != "mail":
            out.append(src.problem(where + ("node",), f"'{s.node}' is not a mail node"))
    return out


DAEMON_ROLES = {"postfix": ("mail",), "dovecot": ("mail",), "named": ("dns",), "kea-dhcp4": ("dhcp",),
                "frr": ("router", "firewall"), "nftables": ("firewall",)}


def _check_daemon(s: Any, plan: Plan, src: Located, where: tuple[Any, ...]) -> list[Problem]:
    node = plan.nodes.get(s.node)
    if node is None:
        return []
    roles = DAEMON_ROLES[s.daemon]
    if node.role not in roles:
        return [src.problem(where + ("daemon",), f"'{s.node}' ({node.role}) runs no {s.daemon}",
                            f"{s.daemon} runs on: " + ", ".join(n.name for n in plan.nodes.values() if n.role in roles))]
    if s.daemon == "frr" and plan.topology.routing.mode == "static":
        return [src.problem(where + ("daemon",), "routing is static: no FRR runs in this topology")]
    return []


def _is_ip(text: str) -> bool:
    import ipaddress
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False
